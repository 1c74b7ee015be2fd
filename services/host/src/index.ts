export { hostService } from './service.js';
export { parseConfig, type HostConfig } from './config.js';
