export { fsTools, type WorkspaceOptions } from './fs-tools.js';
export { httpFetchTool, type HttpFetchOptions } from './http-fetch.js';
export { probeShellSandbox, shellTool, type SandboxProbe, type ShellOptions } from './shell.js';
export { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool, type ToolContext, type ToolPolicy } from './tool.js';
