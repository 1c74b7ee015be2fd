import { createHash } from 'node:crypto';

/**
 * The hashes that bind an approval to exactly what a person was shown. `approvalHash` is the
 * `argsHash` of an approval request (all the calls it asks about, in order); `callHash` names one
 * call, and is what a `tool.request`'s approval evidence carries and a tool-runner recomputes from
 * the arguments it is about to run. Both hash canonical JSON (keys sorted, no whitespace), so the
 * same arguments hash the same whatever their key order or wire format.
 */

/** A tool call an approval request asks about. */
export interface ApprovalCall {
  readonly tool: string;
  readonly args: unknown;
}

/** JSON with object keys sorted; `undefined` object members are left out and `undefined` itself is `null`, as JSON would. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const o = value as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The hash of one call: the tool's name and its exact arguments (sha256 hex of canonical JSON). */
export function callHash(tool: string, args: unknown): string {
  return sha256(canonicalJson({ tool, args }));
}

/** The `argsHash` of an approval request over `calls`, in order (sha256 hex of their canonical JSON). */
export function approvalHash(calls: readonly ApprovalCall[]): string {
  return sha256(canonicalJson(calls.map((c) => ({ tool: c.tool, args: c.args }))));
}
