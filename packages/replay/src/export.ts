import { createHash } from 'node:crypto';
import { messageSchemas, patternRedactor, type AgentRecord, type AgentStatus, type Redactor } from '@errand/protocols';
import type { AgentDefinition } from '@errand/core';
import { canonical } from './canonical.js';
import { ReplayError, ReplayErrorCode } from './errors.js';
import { orderJournal, type JournalEntry } from './fold.js';

export const EXPORT_FORMAT = 'errand-export';
export const EXPORT_VERSION = 1;

/** The first line of an export file. */
export interface ExportHeader {
  readonly type: 'header';
  readonly format: typeof EXPORT_FORMAT;
  readonly version: number;
  readonly agentId: string;
  readonly prefix: string;
  readonly machine: { readonly id: string; readonly version: number };
  /** {@link definitionHash} of the definition registered where the export was written, if it was. */
  readonly definitionHash: string | undefined;
  readonly origin: { readonly agentId: string; readonly step: number } | undefined;
  readonly exportedAt: string;
  readonly steps: number;
}

/** A snapshot kept at a checkpoint (the stored record's, at its step). */
export interface ExportCheckpoint {
  readonly type: 'snapshot';
  readonly step: number;
  readonly status: AgentStatus;
  readonly snapshot: unknown;
  readonly output?: unknown;
  readonly error?: unknown;
}

export interface ExportedRun {
  readonly header: ExportHeader;
  readonly journal: readonly JournalEntry[];
  readonly checkpoints: readonly ExportCheckpoint[];
}

/**
 * A stable fingerprint of an agent definition: its id, version and machine configuration (the
 * JSON of `machine.config`, so implementations passed as functions are not part of it).
 */
export function definitionHash(def: Pick<AgentDefinition, 'id' | 'version' | 'machine'>): string {
  const config = JSON.stringify(canonical(def.machine.config)) ?? 'null';
  return `sha256:${createHash('sha256').update(`${def.id}@${def.version}\n${config}`).digest('hex')}`;
}

/**
 * An export file: JSON lines — the header, every journal entry (each step once), then the stored
 * snapshot as a checkpoint. Every string in it (keys included) has API keys and other secrets
 * redacted — the usual formats always, the process's own secrets with `redactor` — so the file
 * can be shared.
 */
export function writeExport(input: {
  agentId: string;
  prefix: string;
  journal: readonly JournalEntry[];
  record: Pick<AgentRecord, 'machine' | 'step' | 'status' | 'snapshot' | 'output' | 'error' | 'origin'> | undefined;
  definition: Pick<AgentDefinition, 'id' | 'version' | 'machine'> | undefined;
  now?: Date;
  /** The secrets to remove beyond the usual formats (`@errand/service` `processRedactor`). */
  redactor?: Redactor;
}): string {
  const journal = orderJournal(input.journal);
  const last = journal.at(-1);
  const machine = input.record?.machine ?? last?.machine;
  if (!machine || !last) throw new ReplayError(ReplayErrorCode.EmptyJournal, `agent ${input.agentId} has no journal to export`, { agentId: input.agentId });
  const header: ExportHeader = {
    type: 'header',
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    agentId: input.agentId,
    prefix: input.prefix,
    machine: { id: machine.id, version: machine.version },
    definitionHash: input.definition ? definitionHash(input.definition) : undefined,
    origin: input.record?.origin,
    exportedAt: (input.now ?? new Date()).toISOString(),
    steps: journal.length,
  };
  const lines: unknown[] = [header, ...journal.map((entry) => ({ type: 'step', entry }))];
  if (input.record) {
    const r = input.record;
    const checkpoint: ExportCheckpoint = { type: 'snapshot', step: r.step, status: r.status, snapshot: r.snapshot, ...(r.output !== undefined ? { output: r.output } : {}), ...(r.error ? { error: r.error } : {}) };
    lines.push(checkpoint);
  }
  const redactor = input.redactor ?? patternRedactor;
  return `${lines.map((l) => JSON.stringify(redactor.redactDeep(canonical(l)))).join('\n')}\n`;
}

/** Reads an export file. Throws {@link ReplayError} `ERR_BAD_EXPORT` naming the line that is wrong. */
export function readExport(text: string): ExportedRun {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const bad = (n: number, why: string) => new ReplayError(ReplayErrorCode.BadExport, `not an Errand export (line ${n}): ${why}; write one with \`errand export <agentId> -o FILE\``);
  const parsed = lines.map((l, i) => {
    try {
      return JSON.parse(l) as { type?: string; [k: string]: unknown };
    } catch {
      throw bad(i + 1, 'not JSON');
    }
  });
  const header = parsed[0] as unknown as ExportHeader | undefined;
  if (!header || header.type !== 'header' || header.format !== EXPORT_FORMAT) throw bad(1, 'the first line is not an export header');
  if (header.version > EXPORT_VERSION) throw bad(1, `export version ${header.version} is newer than this errand reads (${EXPORT_VERSION}); upgrade errand`);
  const journal: JournalEntry[] = [];
  const checkpoints: ExportCheckpoint[] = [];
  parsed.slice(1).forEach((line, i) => {
    if (line.type === 'step') {
      const check = messageSchemas['event.step'].safeParse(line.entry);
      if (!check.success) throw bad(i + 2, `invalid journal entry: ${check.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join(', ')}`);
      journal.push(check.data);
    } else if (line.type === 'snapshot') {
      checkpoints.push(line as unknown as ExportCheckpoint);
    }
    // Other line types (a newer writer's) are skipped.
  });
  return { header, journal, checkpoints };
}
