import { constants, existsSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, unlink, type FileHandle } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool } from './tool.js';

export interface WorkspaceOptions {
  /** The folder every path is relative to; nothing outside it is reachable. */
  root: string;
  /** Largest file `fs_read` returns, in bytes. */
  maxReadBytes: number;
  maxWriteBytes: number;
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
// Node has no openat(): a path under /proc/self/fd/<n>/ is looked up in the folder the descriptor
// holds, whatever has happened to the folder's name since — which is what makes the walk race-free.
const PROC_FD = '/proc/self/fd';

/**
 * Splits a model-given path into its components. Refuses absolute paths, `..` segments and NUL;
 * `.` and empty segments are dropped (so `.` is the workspace itself).
 */
export function workspacePathParts(path: string): string[] {
  if (isAbsolute(path)) throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' is absolute; give a path relative to the workspace`);
  if (path.split(/[\\/]/).includes('..')) throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' contains '..'; paths must stay inside the workspace`);
  if (path.includes('\0')) throw new ToolError(ToolErrorCode.InvalidArguments, `the path contains a NUL character`);
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

const at = (dir: FileHandle, name?: string) => (name === undefined ? `${PROC_FD}/${dir.fd}` : `${PROC_FD}/${dir.fd}/${name}`);
const errno = (err: unknown) => (err as NodeJS.ErrnoException).code ?? 'error';

/** Whether `name` in `dir` is a symlink right now (for saying why an open failed). */
async function isLink(dir: FileHandle, name: string): Promise<boolean> {
  return lstat(at(dir, name)).then((s) => s.isSymbolicLink(), () => false);
}

/** What `name` in `dir` is right now, for saying why an open failed. */
async function kindOf(dir: FileHandle, name: string): Promise<'link' | 'file' | 'dir' | 'missing' | 'other'> {
  const s = await lstat(at(dir, name)).catch(() => undefined);
  return !s ? 'missing' : s.isSymbolicLink() ? 'link' : s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
}

function changedRefusal(path: string): ToolError {
  return new ToolError('ERR_FS_CHANGED', `'${path}' changed while in use (a folder was replaced); try again`, true);
}

function symlinkRefusal(path: string, through: string): ToolError {
  return new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' goes through a symlink ('${through}'); the fs tools follow no symlinks, so nothing outside the workspace is reachable`);
}

/**
 * Workspace files through descriptors: the root is opened once per call, every folder below it
 * with O_DIRECTORY|O_NOFOLLOW relative to its parent's descriptor, and the file itself with
 * O_NOFOLLOW relative to its folder's descriptor. No component is ever a symlink at the moment it
 * is used, so swapping a folder for a symlink mid-call cannot send a read or write outside; and
 * the folder written into is checked (through its descriptor) to still be under the root.
 * Errors name the path the model gave, never a host path.
 */
class Workspace {
  constructor(private readonly root: string) {}

  private async openRoot(): Promise<FileHandle> {
    if (!existsSync(PROC_FD)) {
      throw new ToolError('ERR_FS_UNSUPPORTED', 'the fs tools need Linux (/proc/self/fd) to open workspace files without symlink races; this runner has no /proc');
    }
    try {
      return await open(this.root, O_RDONLY | O_DIRECTORY);
    } catch (err) {
      throw new ToolError(ToolErrorCode.NotFound, `the workspace folder cannot be opened (${errno(err)}); the operator should check ERRAND_WORKSPACE`);
    }
  }

  /**
   * Opens the folder `parts` names (creating missing folders when `create`), one component at a
   * time. The caller closes the handle it gets.
   */
  async folder(path: string, parts: readonly string[], create: boolean): Promise<FileHandle> {
    let dir = await this.openRoot();
    const rootReal = await readlink(at(dir));
    try {
      for (let i = 0; i < parts.length; i++) {
        const name = parts[i]!;
        const shown = parts.slice(0, i + 1).join('/');
        if (create) {
          await mkdir(at(dir, name)).catch((err: unknown) => {
            if (errno(err) !== 'EEXIST') throw err;
          });
        }
        let next: FileHandle;
        try {
          next = await open(at(dir, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        } catch (err) {
          const code = errno(err);
          const kind = await kindOf(dir, name);
          if (code === 'ELOOP' || kind === 'link') throw symlinkRefusal(path, shown);
          if (code === 'ENOENT') throw new ToolError(ToolErrorCode.NotFound, `no folder '${shown}' in the workspace`);
          if (code === 'ENOTDIR' && kind !== 'dir' && kind !== 'missing') throw new ToolError(ToolErrorCode.InvalidArguments, `'${shown}' is a file, not a folder`);
          // A symlink at open time (O_NOFOLLOW|O_DIRECTORY says ENOTDIR) that is gone again now.
          if (code === 'ENOTDIR') throw changedRefusal(path);
          throw new ToolError('ERR_FS', `cannot open the folder '${shown}' (${code})`);
        }
        await dir.close();
        dir = next;
      }
      // A folder moved out of the workspace while we held it would still be open: refuse that.
      const real = await readlink(at(dir));
      if (real !== rootReal && !real.startsWith(rootReal.endsWith('/') ? rootReal : `${rootReal}/`)) {
        throw new ToolError(ToolErrorCode.OutsideWorkspace, `'${path}' is no longer inside the workspace (it was moved or deleted while in use)`);
      }
      return dir;
    } catch (err) {
      await dir.close();
      throw err instanceof ToolError ? err : new ToolError('ERR_FS', `cannot use '${path}' in the workspace (${errno(err)})`);
    }
  }

  /** Opens the file `path` names with `flags` (plus O_NOFOLLOW), in its folder; runs `use` and closes both. */
  async withFile<T>(path: string, o: { create: boolean; flags: number; missing: () => ToolError }, use: (file: FileHandle, dir: FileHandle, name: string) => Promise<T>): Promise<T> {
    const parts = workspacePathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is the workspace folder, not a file`);
    const dir = await this.folder(path, parts, o.create).catch((err: unknown) => {
      throw err instanceof ToolError && err.code === ToolErrorCode.NotFound && !o.create ? o.missing() : err;
    });
    try {
      let file: FileHandle;
      try {
        file = await open(at(dir, name), o.flags | O_NOFOLLOW | O_NONBLOCK, 0o644);
      } catch (err) {
        const code = errno(err);
        if (code === 'ELOOP' || (await isLink(dir, name))) throw symlinkRefusal(path, path);
        if (code === 'ENOENT') throw o.missing();
        if (code === 'EISDIR') throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is a folder, not a file`);
        if (code === 'EEXIST') throw new ToolError('EEXIST', `'${path}' exists`);
        if (code === 'ENXIO') throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is not a regular file`);
        throw new ToolError('ERR_FS', `cannot open '${path}' (${code})`);
      }
      try {
        return await use(file, dir, name);
      } finally {
        await file.close();
      }
    } finally {
      await dir.close();
    }
  }

  /** Runs `use` with the folder that holds `path` and the last name of `path`. */
  async inFolderOf<T>(path: string, use: (dir: FileHandle | undefined, name: string) => Promise<T>): Promise<T> {
    const parts = workspacePathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is the workspace folder, not a file`);
    let dir: FileHandle | undefined;
    try {
      dir = await this.folder(path, parts, false);
    } catch (err) {
      if (!(err instanceof ToolError && err.code === ToolErrorCode.NotFound)) throw err;
    }
    try {
      return await use(dir, name);
    } finally {
      await dir?.close();
    }
  }
}

const pathParam = { type: 'string', description: 'a path relative to the workspace' };

export function fsTools(o: WorkspaceOptions): Tool[] {
  const ws = new Workspace(o.root);
  const fsList: Tool = {
    definition: { name: 'fs_list', description: 'List the entries of a folder in the workspace.', parameters: { type: 'object', properties: { path: pathParam }, required: [] } },
    idempotent: true,
    destructive: false,
    defaultPolicy: 'auto',
    timeoutMs: 10_000,
    async run(args) {
      const a = objectArgs(args ?? {}, 'fs_list');
      const path = typeof a.path === 'string' && a.path ? a.path : '.';
      const dir = await ws.folder(path, workspacePathParts(path), false);
      try {
        const entries = await readdir(at(dir), { withFileTypes: true });
        return entries.map((e) => ({ name: e.name, type: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'file' })).sort((x, y) => x.name.localeCompare(y.name));
      } catch (err) {
        throw new ToolError('ERR_FS', `cannot list '${path}' (${errno(err)})`);
      } finally {
        await dir.close();
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
      const missing = () => new ToolError(ToolErrorCode.NotFound, `no file '${path}' in the workspace`);
      return ws.withFile(path, { create: false, flags: O_RDONLY, missing }, async (file) => {
        const info = await file.stat();
        if (!info.isFile()) throw missing();
        if (info.size > o.maxReadBytes) throw new ToolError(ToolErrorCode.TooLarge, `'${path}' is ${info.size} bytes; fs_read returns at most ${o.maxReadBytes}`);
        const buf = Buffer.alloc(info.size);
        const { bytesRead } = await file.read(buf, 0, buf.length, 0);
        return buf.subarray(0, bytesRead).toString('utf8');
      });
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
      const content = a.content;
      if (typeof content !== 'string') throw new ToolError(ToolErrorCode.InvalidArguments, "fs_write: 'content' must be a string");
      if (Buffer.byteLength(content) > o.maxWriteBytes) throw new ToolError(ToolErrorCode.TooLarge, `fs_write writes at most ${o.maxWriteBytes} bytes`);
      const missing = () => new ToolError(ToolErrorCode.NotFound, `no file '${path}' in the workspace`);
      const write = (replace: boolean) =>
        ws.withFile(path, { create: true, flags: replace ? O_WRONLY : O_WRONLY | O_CREAT | O_EXCL, missing }, async (file) => {
          if (!(await file.stat()).isFile()) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is not a regular file`);
          if (replace) await file.truncate(0);
          await file.writeFile(content);
          return { path, bytes: Buffer.byteLength(content), replaced: replace };
        });
      try {
        return await write(false);
      } catch (err) {
        if (!(err instanceof ToolError && err.code === 'EEXIST')) throw err;
      }
      if (a.overwrite !== true) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' exists; to replace it, call fs_write again with overwrite: true (a person will be asked)`);
      return write(true);
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
      return ws.inFolderOf(path, async (dir, name) => {
        const info = dir && (await lstat(at(dir, name)).catch(() => undefined));
        if (!dir || !info) return { path, deleted: false };
        if (info.isDirectory()) throw new ToolError(ToolErrorCode.InvalidArguments, `'${path}' is a folder; fs_delete deletes files`);
        // unlink never follows a symlink: deleting one removes the link, inside the workspace.
        await unlink(at(dir, name)).catch((err: unknown) => {
          throw new ToolError('ERR_FS', `cannot delete '${path}' (${errno(err)})`);
        });
        return { path, deleted: true };
      });
    },
  };
  return [fsList, fsRead, fsWrite, fsDelete];
}
