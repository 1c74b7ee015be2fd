export { ErrandConfigSchema, loadErrandConfig, McpServerConfigSchema, type ErrandConfig, type McpServerConfig } from './config.js';
export { connectMcpServer, namespacedToolName, type McpToolSource } from './mcp-tools.js';
export { createErrandMcpServer } from './errand-server.js';
