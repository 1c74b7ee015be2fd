export { hostService, loadAgents } from './service.js';
export { parseConfig, type HostConfig } from './config.js';
