export { notifierService } from './service.js';
export { parseConfig, type NotifierConfig } from './config.js';
