// The public door of @errand/function-tools: define a tool as a function. What a runner uses to
// load modules of tools is in `./internal.ts` (`@errand/function-tools/internal`).
export { defineTool, FunctionToolError, FunctionToolErrorCode, type FunctionTool, type ToolRunContext, type ToolSpec } from './define-tool.js';
export { ToolError, ToolErrorCode, type ToolPolicy } from '@errand/tools';
