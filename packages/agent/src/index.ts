import { defineAgent } from '@errand/core';
import { agentMachine, agentMachineV1, agentMachineV2, agentMachineV3 } from './machine.js';

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
  // 4: costs rounded to a nano-dollar and written with the digits small amounts need; an approved
  //    limit gets its allowance again (a wall-clock limit asked again at once after a slow approval).
  // 3: it says what it waits for a person to do (`errand.wait`): status `waiting`, `record.waiting`.
  // 2: one watchdog timer per agent bounds its tool calls (1 armed a durable timer per call).
  version: 4,
  description: 'plans with an LLM, acts through tools, corrects itself, asks people when it must',
  machine: agentMachine,
  // Snapshots of 1, 2 and 3 fit: 1's running calls have their own `tool.deadline` timers, which 4
  // still handles; a question 1 or 2 asked is not in `record.waiting`, and is answered as before.
  migrations: { 1: (snapshot) => snapshot, 2: (snapshot) => snapshot, 3: (snapshot) => snapshot },
});

/**
 * `assistant@3`, the same chart counting money to the cent and doubling a limit a person let it
 * pass: registered beside 4 so that agents it started finish on it and its journals replay step
 * by step.
 */
export const assistantV3 = defineAgent({
  id: 'assistant',
  version: 3,
  description: assistant.description,
  machine: agentMachineV3,
  migrations: { 1: (snapshot) => snapshot, 2: (snapshot) => snapshot },
});

/**
 * `assistant@2`, the same chart without `errand.wait`: registered beside 3 and 4 so that agents it
 * started finish on it and its journals (which say `running` while it waited for a person)
 * replay step by step.
 */
export const assistantV2 = defineAgent({
  id: 'assistant',
  version: 2,
  description: assistant.description,
  machine: agentMachineV2,
  migrations: { 1: (snapshot) => snapshot },
});

/**
 * `assistant@1`, the same chart with a durable deadline timer per tool call: registered beside 2,
 * 3 and 4 so that agents it started finish on it and its journals replay step by step.
 */
export const assistantV1 = defineAgent({
  id: 'assistant',
  version: 1,
  description: assistant.description,
  machine: agentMachineV1,
});

export const agents = [assistant, assistantV3, assistantV2, assistantV1];
