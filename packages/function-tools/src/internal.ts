// For tool-runners and tests: recognise and load modules of function tools.
export { checkToolName, FUNCTION_TOOL, isFunctionTool } from './define-tool.js';
export { loadToolModules, toolsOfModule, type ToolModule } from './load.js';
