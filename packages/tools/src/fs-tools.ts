import { lstat, mkdir, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool } from './tool.js';

export interface WorkspaceOptions {
  /** The folder every path is relative to; nothing outside it is reachable. */
  root: string;
  /** Largest file `fs_read` returns, in bytes. */
  maxReadBytes: number;
  maxWriteBytes: number;
}

/**
 * Resolves a model-given path inside the workspace. Refuses absolute paths, `..` segments, and any
 * path whose real location (after following symlinks of the existing part) is outside the root.
 */
export async function resolveInWorkspace(root: string, path: string): Promise<string> {
  if (isAbsolute(path)) throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' is absolute; give a path relative to the workspace`);
  if (path.split(/[\\/]/).includes('..')) throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' contains '..'; paths must stay inside the workspace`);
  const realRoot = await realpath(root);
  const target = resolve(realRoot, path);
  // Follow symlinks of the longest part that exists: a link may lead out.
  let existing = target;
  for (;;) {
    try {
      await lstat(existing);
      break;
    } catch {
      const parent = dirname(existing);
      if (parent === existing) break;
      existing = parent;
    }
  }
  const real = await realpath(existing);
  const rel = relative(realRoot, join(real, relative(existing, target)));
  if (rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' leads outside the workspace (through a symlink)`);
  }
  return join(realRoot, rel);
}

const pathParam = { type: 'string', description: 'a path relative to the workspace' };

export function fsTools(o: WorkspaceOptions): Tool[] {
  const fsList: Tool = {
    definition: { name: 'fs_list', description: 'List the entries of a folder in the workspace.', parameters: { type: 'object', properties: { path: pathParam }, required: [] } },
    idempotent: true,
    destructive: false,
    defaultPolicy: 'auto',
    timeoutMs: 10_000,
    async run(args) {
      const a = objectArgs(args ?? {}, 'fs_list');
      const dir = await resolveInWorkspace(o.root, typeof a.path === 'string' && a.path ? a.path : '.');
      try {
        const entries = await readdir(dir, { withFileTypes: true });
        return entries.map((e) => ({ name: e.name, type: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'file' })).sort((x, y) => x.name.localeCompare(y.name));
      } catch {
        throw new ToolError(ToolErrorCode.NotFound, `no folder '${String(a.path ?? '.')}' in the workspace`);
      }
    },
  };
  const fsRead: Tool = {
    definition: { name: 'fs_read', description: 'Read a text file from the workspace.', parameters: { type: 'object', properties: { path: pathParam }, required: ['path'] } },
    idempotent: true,
    destructive: false,
    defaultPolicy: 'auto',
    timeoutMs: 10_000,
    async run(args) {
      const path = stringArg(objectArgs(args, 'fs_read'), 'path', 'fs_read');
      const file = await resolveInWorkspace(o.root, path);
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) throw new ToolError(ToolErrorCode.NotFound, `no file '${path}' in the workspace`);
      if (info.size > o.maxReadBytes) throw new ToolError(ToolErrorCode.TooLarge, `'${path}' is ${info.size} bytes; fs_read returns at most ${o.maxReadBytes}`);
      return readFile(file, 'utf8');
    },
  };
  const fsWrite: Tool = {
    definition: {
      name: 'fs_write',
      description: 'Write a text file in the workspace, creating folders as needed. To replace an existing file, pass overwrite: true (a person approves that).',
      parameters: { type: 'object', properties: { path: pathParam, content: { type: 'string' }, overwrite: { type: 'boolean' } }, required: ['path', 'content'] },
    },
    // Writing the same content twice leaves the same file.
    idempotent: true,
    destructive: true,
    defaultPolicy: 'auto',
    // Replacing a file destroys what was there: that needs a person.
    askIfArgs: { overwrite: true },
    timeoutMs: 10_000,
    async run(args) {
      const a = objectArgs(args, 'fs_write');
      const path = stringArg(a, 'path', 'fs_write');
      if (typeof a.content !== 'string') throw new ToolError(ToolErrorCode.InvalidArguments, "fs_write: 'content' must be a string");
      if (Buffer.byteLength(a.content) > o.maxWriteBytes) throw new ToolError(ToolErrorCode.TooLarge, `fs_write writes at most ${o.maxWriteBytes} bytes`);
      const file = await resolveInWorkspace(o.root, path);
      await mkdir(dirname(file), { recursive: true });
      const existed = await stat(file).then(() => true, () => false);
      if (existed && a.overwrite !== true) {
        throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' exists; to replace it, call fs_write again with overwrite: true (a person will be asked)`);
      }
      await writeFile(file, a.content);
      return { path, bytes: Buffer.byteLength(a.content), replaced: existed };
    },
  };
  const fsDelete: Tool = {
    definition: { name: 'fs_delete', description: 'Delete a file from the workspace.', parameters: { type: 'object', properties: { path: pathParam }, required: ['path'] } },
    idempotent: true,
    destructive: true,
    defaultPolicy: 'ask',
    timeoutMs: 10_000,
    async run(args) {
      const path = stringArg(objectArgs(args, 'fs_delete'), 'path', 'fs_delete');
      const file = await resolveInWorkspace(o.root, path);
      const info = await lstat(file).catch(() => undefined);
      if (!info) return { path, deleted: false };
      if (info.isDirectory()) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is a folder; fs_delete deletes files`);
      await rm(file);
      return { path, deleted: true };
    },
  };
  return [fsList, fsRead, fsWrite, fsDelete];
}
