import { defineAgent } from '@errand/core';
import { agentMachine } from './machine.js';

export { BuiltInTool } from './built-in-tools.js';
export { type AgentContext, type CallState } from './context.js';
export { compact } from './helpers.js';
export { agentMachine } from './machine.js';
export type { AgentSettings } from './settings.js';
export { DEFAULT_SYSTEM_PROMPT } from './prompts.js';

/**
 * The built-in LLM agent, `assistant`. Goal input it reads: `system` (prompt), `toolDefinitions`,
 * `toolPolicies`, `toolTimeouts`, `toolAskIfArgs` (the tools it may call and how; intake sets them
 * from the tool catalog, never from the submitter), `notify` (rules), `settings` (see
 * `AgentSettings`); budget, model and allowed tool names come from the goal itself.
 */
export const assistant = defineAgent({
  id: 'assistant',
  version: 1,
  description: 'plans with an LLM, acts through tools, corrects itself, asks people when it must',
  machine: agentMachine,
});

export const agents = [assistant];
