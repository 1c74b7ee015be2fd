export { fsTools, workspacePathParts, type WorkspaceOptions } from './fs-tools.js';
export { hostAllowed, httpFetchTool, type HttpFetchOptions } from './http-fetch.js';
export { probeShellSandbox, SANDBOX_WORKSPACE, shellTool, type SandboxProbe, type ShellOptions } from './shell.js';
export { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool, type ToolContext, type ToolPolicy } from './tool.js';
