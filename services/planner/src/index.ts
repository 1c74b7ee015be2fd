export { plannerService } from './service.js';
export { parseConfig, type PlannerConfig } from './config.js';
