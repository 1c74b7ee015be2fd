export { hostService, loadAgents } from './service.js';
export { agentModulesOf, DEFAULT_AGENT_MODULES, parseConfig, type HostConfig } from './config.js';
