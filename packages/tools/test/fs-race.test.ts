// The fs tools against a workspace that changes under them: another process swaps a folder for a
// symlink to the outside as fast as it can while fs_write and fs_read run; nothing may land
// outside, nothing outside may be read, and no error may show a host path.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsTools, ToolError, type Tool } from '@errand/tools';

let root: string;
let outside: string;
let tools: Record<string, Tool>;
const ctx = () => ({ signal: new AbortController().signal, key: 'a:1:0' });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'errand-race-ws-'));
  outside = await mkdtemp(join(tmpdir(), 'errand-race-outside-'));
  tools = Object.fromEntries(fsTools({ root, maxReadBytes: 1000, maxWriteBytes: 1000 }).map((t) => [t.definition.name, t]));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

// Runs in its own process for 2 s: sub is a real folder, then a symlink to the outside, and back.
const SWAPPER = `
const { renameSync, symlinkSync, unlinkSync, mkdirSync, rmSync } = require('node:fs');
const [sub, parked, outside] = process.argv.slice(1);
mkdirSync(sub, { recursive: true });
process.stdout.write('ready\\n');
const end = Date.now() + 2000;
let swaps = 0;
// fs_write may make a new sub folder in a gap: the swap then removes it and tries again.
const retry = (f) => {
  for (let i = 0; ; i++) {
    try { return f(); } catch (err) { if (i === 1000) throw err; }
    try { rmSync(sub, { recursive: true, force: true }); } catch {}
  }
};
while (Date.now() < end) {
  renameSync(sub, parked);
  retry(() => symlinkSync(outside, sub));
  unlinkSync(sub);
  retry(() => renameSync(parked, sub));
  swaps++;
}
process.stdout.write('swaps ' + swaps + '\\n');
`;

describe('fs tools under a symlink race', () => {
  it('never write outside the workspace, nor read from it, while a folder is swapped for a symlink', async () => {
    await writeFile(join(outside, 'secret.txt'), 'outside secret');
    const swapper = spawn(process.execPath, ['-e', SWAPPER, join(root, 'sub'), join(root, 'parked'), outside], { stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    const exited = new Promise<number | null>((r) => swapper.once('exit', r));
    await new Promise<void>((resolve) =>
      swapper.stdout.on('data', (c: Buffer) => {
        said += c.toString();
        if (said.includes('ready')) resolve();
      }),
    );
    let written = 0;
    let refused = 0;
    const reasons = new Set<string>();
    let running = true;
    void exited.then(() => (running = false));
    for (let i = 0; running && i < 100_000; i++) {
      try {
        await tools.fs_write!.run({ path: `sub/f-${i}.txt`, content: 'x' }, ctx());
        written++;
      } catch (err) {
        expect(err).toBeInstanceOf(ToolError);
        refused++;
        reasons.add(`${(err as ToolError).code}: ${(err as Error).message.replace(/f-\d+/, 'f-N')}`);
        expect((err as Error).message).not.toContain(root);
        expect((err as Error).message).not.toContain(outside);
      }
      const read = await tools.fs_read!.run({ path: 'sub/secret.txt' }, ctx()).catch((err: ToolError) => err.message);
      expect(read).not.toBe('outside secret');
    }
    expect(await exited).toBe(0);
    expect(said).toMatch(/swaps [1-9]/);
    expect(await readdir(outside)).toEqual(['secret.txt']);
    expect(written).toBeGreaterThan(0);
    expect(written + refused).toBeGreaterThan(10);
    expect([...reasons].filter((r) => !/^(ERR_OUTSIDE_WORKSPACE|ERR_NOT_FOUND|ERR_FS_CHANGED):/.test(r))).toEqual([]);
  });

  it('a dangling symlink is refused without showing the workspace path', async () => {
    await symlink(join(root, 'nowhere', 'x.txt'), join(root, 'dangling'));
    await mkdir(join(root, 'linked'));
    await symlink(join(root, 'nowhere'), join(root, 'linked', 'dir'));
    for (const [tool, args] of [
      ['fs_read', { path: 'dangling' }],
      ['fs_write', { path: 'dangling', content: 'x' }],
      ['fs_write', { path: 'dangling', content: 'x', overwrite: true }],
      ['fs_write', { path: 'linked/dir/new.txt', content: 'x' }],
      ['fs_list', { path: 'linked/dir' }],
    ] as const) {
      const err = await tools[tool]!.run(args, ctx()).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ToolError);
      expect((err as ToolError).code).toBe('ERR_OUTSIDE_WORKSPACE');
      expect((err as ToolError).message).toMatch(/goes through a symlink/);
      expect((err as ToolError).message).not.toContain(root);
    }
    // Deleting the link removes the link, not what it names.
    expect(await tools.fs_delete!.run({ path: 'dangling' }, ctx())).toEqual({ path: 'dangling', deleted: true });
    expect(await tools.fs_delete!.run({ path: 'dangling' }, ctx())).toEqual({ path: 'dangling', deleted: false });
  });
});
