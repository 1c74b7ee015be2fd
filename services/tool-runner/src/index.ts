export { toolRunnerService } from './service.js';
export { parseConfig, type ToolRunnerConfig } from './config.js';
