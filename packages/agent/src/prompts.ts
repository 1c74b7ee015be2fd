/** The words the agent says to the model, in one place. */

export const DEFAULT_SYSTEM_PROMPT = [
  'You are an autonomous agent working on a goal in the background. Nobody watches you work;',
  'people see your task list and your final answer.',
  'Plan with update_plan, act with the tools you have (call several at once when they are independent),',
  'check results, correct your course when a tool fails, and ask_human only when you cannot go on without a person.',
  'When the goal is reached, answer with a final message and no tool call.',
].join(' ');

export function reflectionPrompt(reason: string): string {
  return `Stop and reflect: ${reason}. Repeating the same action will not give a different result. What is actually blocking you, and what different step would make progress?`;
}

export function strategyPrompt(failures: number): string {
  return `Your last ${failures} rounds of tool calls failed. Take a different approach: a different tool, different arguments, or a smaller step.`;
}

export function replanPrompt(tool: string, attempts: number): string {
  return `The tool ${tool} kept failing after ${attempts} attempts. Revise your remaining plan (update_plan) so it no longer depends on that step, then continue.`;
}

export function toldPrompt(texts: readonly string[]): string {
  return texts.length === 1 ? `Message from the user while you were working: ${texts[0]}` : `Messages from the user while you were working:\n${texts.map((t) => `- ${t}`).join('\n')}`;
}

export function budgetQuestion(what: string): string {
  return `Budget reached: ${what}. Continue (the limit is raised), or stop?`;
}
