import { defineAgent } from '@errand/core';
import { agentMachine, agentMachineV1 } from './machine.js';

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
  // 2: one watchdog timer per agent bounds its tool calls (1 armed a durable timer per call).
  version: 2,
  description: 'plans with an LLM, acts through tools, corrects itself, asks people when it must',
  machine: agentMachine,
  // A snapshot of 1 fits: its running calls have their own `tool.deadline` timers, which 2 still handles.
  migrations: { 1: (snapshot) => snapshot },
});

/**
 * `assistant@1`, the same chart with a durable deadline timer per tool call: registered beside 2
 * so that agents it started finish on it and its journals replay step by step.
 */
export const assistantV1 = defineAgent({
  id: 'assistant',
  version: 1,
  description: assistant.description,
  machine: agentMachineV1,
});

export const agents = [assistant, assistantV1];
