export { ErrandConfigSchema, loadErrandConfig, McpServerConfigSchema, type ErrandConfig, type McpServerConfig } from './config.js';
export { connectMcpServer, namespacedToolName, type McpToolSource } from './mcp-tools.js';
export { createErrandMcpServer } from './errand-server.js';
export {
  assertMcpHttpExposure,
  ErrandMcpServeError,
  ErrandMcpServeErrorCode,
  MAX_MCP_BODY_BYTES,
  serveErrandMcpHttp,
  serveErrandMcpStdio,
  type ErrandMcpHttpOptions,
  type ErrandMcpHttpServer,
  type ErrandMcpServing,
  type ErrandMcpStdioOptions,
} from './errand-serve.js';
