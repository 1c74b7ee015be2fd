export { gatewayService } from './service.js';
export { parseConfig, parseTokens, DEFAULT_AGENT_MODULES, type GatewayConfig, type GatewayUser } from './config.js';
export { createGatewayApp, MAX_BODY_BYTES, type GatewayApp, type GatewayDeps } from './app.js';
export { openApiDocument } from './openapi.js';
export { GatewayErrorCode, HttpError } from './errors.js';
export { CSRF_HEADER, SESSION_COOKIE } from './auth.js';
