import { describe, expect, it } from 'vitest';
import { toolsForGoal, type LiveTool } from '@errand/runtime/internal';

const tool = (name: string, policy: 'auto' | 'ask' | 'deny', runners = ['r1']): LiveTool => ({
  v: 1,
  definition: { name, description: name, parameters: {} },
  policy,
  idempotent: true,
  destructive: false,
  timeoutMs: 5000,
  source: 'builtin',
  updatedAt: 0,
  runners,
});

describe('the tools a goal gets', () => {
  const catalog = [tool('fs_read', 'auto'), tool('fs_delete', 'ask'), tool('shell', 'deny'), tool('orphan', 'auto', [])];

  it('are the live ones that are not denied, with the ask policies and time limits', () => {
    const t = toolsForGoal(catalog, undefined);
    expect(t.definitions.map((d) => d.name)).toEqual(['fs_read', 'fs_delete']);
    expect(t.policies).toEqual({ fs_delete: 'ask' });
    expect(t.timeouts).toEqual({ fs_read: 5000, fs_delete: 5000 });
  });

  it('are limited to the names the goal allows; a goal can make a policy stricter, never looser', () => {
    expect(toolsForGoal(catalog, ['fs_read']).definitions.map((d) => d.name)).toEqual(['fs_read']);
    const t = toolsForGoal(catalog, undefined, { fs_read: 'ask', fs_delete: 'deny', shell: 'auto' });
    expect(t.definitions.map((d) => d.name)).toEqual(['fs_read']);
    expect(t.policies).toEqual({ fs_read: 'ask' });
  });
});
