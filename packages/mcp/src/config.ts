import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { TOOL_POLICIES } from '@errand/protocols';

/** One MCP server, in the shape Claude Desktop and Cursor use, plus Errand's own settings. */
export const McpServerConfigSchema = z
  .object({
    /** stdio: the program and its arguments. */
    command: z.string().optional(),
    args: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional(),
    /** Streamable HTTP: the endpoint and headers (tokens). */
    url: z.string().url().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    /** Per call, for every tool of this server (long tools are normal: the default is 10 minutes). */
    timeoutMs: z.number().int().positive().optional(),
    toolTimeouts: z.record(z.string(), z.number().int().positive()).optional(),
    /** Only these tools of the server are offered to agents (all when absent). */
    allowTools: z.array(z.string()).optional(),
    /** Policies by tool; otherwise `destructiveHint` means `ask` and anything else `auto`. */
    policies: z.record(z.string(), z.enum(TOOL_POLICIES)).optional(),
  })
  .refine((s) => (s.command === undefined) !== (s.url === undefined), { message: 'give either "command" (stdio) or "url" (Streamable HTTP)' });
export type McpServerConfig = z.infer<typeof McpServerConfigSchema>;

export const ErrandConfigSchema = z.object({ mcpServers: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'server names are letters, digits, _ and -'), McpServerConfigSchema).default({}) });
export type ErrandConfig = z.infer<typeof ErrandConfigSchema>;

/** Reads `errand.config.json`; throws with the file, the field and what is wrong. */
export async function loadErrandConfig(path: string): Promise<ErrandConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  const parsed = ErrandConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`config file ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}
