import type { ToolDefinition } from '@errand/protocols';

/** Tools the agent answers itself, without a tool runner. */
export const BuiltInTool = {
  UpdatePlan: 'update_plan',
  AskHuman: 'ask_human',
  Delegate: 'delegate',
} as const;

const taskSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'in_progress', 'done', 'failed'] },
    children: { type: 'array', items: { $ref: '#/$defs/task' } },
  },
  required: ['id', 'title', 'status'],
};

export const BUILT_IN_TOOLS: readonly ToolDefinition[] = [
  {
    name: BuiltInTool.UpdatePlan,
    description:
      'Replace your task list: a tree of tasks, each with an id, a title and a status (pending, in_progress, done, failed). Keep it current; people watch it.',
    parameters: { type: 'object', $defs: { task: taskSchema }, properties: { tasks: { type: 'array', items: { $ref: '#/$defs/task' } } }, required: ['tasks'] },
  },
  {
    name: BuiltInTool.AskHuman,
    description: 'Ask the person who gave you the goal a question and wait (hours or days if need be) for the answer. Use it only when you cannot go on without them.',
    parameters: { type: 'object', properties: { question: { type: 'string' } }, required: ['question'] },
  },
  {
    name: BuiltInTool.Delegate,
    description: 'Hand a self-contained sub-goal to a new agent and wait for its result.',
    parameters: {
      type: 'object',
      properties: { goal: { type: 'string' }, agent: { type: 'string', description: 'agent definition to run (optional)' } },
      required: ['goal'],
    },
  },
];

export const BUILT_IN_NAMES: ReadonlySet<string> = new Set(BUILT_IN_TOOLS.map((t) => t.name));
