import { z } from 'zod';
import { ToolDefinitionSchema } from './messages.js';

/**
 * The tool catalog in the `errand_tools` bucket: `tool.<name>` says what a tool is and how it may
 * be used; `runner.<id>` says which tools a live runner serves (its heartbeat keeps it fresh).
 */

export const TOOL_POLICIES = ['auto', 'ask', 'deny'] as const;
export type ToolPolicyName = (typeof TOOL_POLICIES)[number];

export const CatalogToolSchema = z.object({
  v: z.literal(1),
  definition: ToolDefinitionSchema,
  /** auto: runs; ask: a person approves each call with its exact arguments; deny: never offered. */
  policy: z.enum(TOOL_POLICIES),
  /** Safe to run again after a runner died mid-call. */
  idempotent: z.boolean(),
  destructive: z.boolean(),
  /** A call whose arguments have all these values needs approval even under `auto`. */
  askIfArgs: z.record(z.string(), z.unknown()).optional(),
  timeoutMs: z.number().int().positive(),
  /** `builtin`, or `mcp:<server>`. */
  source: z.string(),
  updatedAt: z.number().int().nonnegative(),
});
export type CatalogTool = z.infer<typeof CatalogToolSchema>;

export const CatalogRunnerSchema = z.object({
  v: z.literal(1),
  runnerId: z.string().min(1),
  tools: z.array(z.string()),
  heartbeatAt: z.number().int().nonnegative(),
  /** How often it heartbeats: a runner silent for three intervals is gone. */
  heartbeatMs: z.number().int().positive(),
  host: z.string(),
  pid: z.number().int(),
});
export type CatalogRunner = z.infer<typeof CatalogRunnerSchema>;

export const catalogKeys = {
  tool: (name: string) => `tool.${name}`,
  runner: (runnerId: string) => `runner.${runnerId}`,
  tools: 'tool.>',
  runners: 'runner.>',
} as const;
