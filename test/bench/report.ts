import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * Writes a benchmark's rows to test/bench/results/<name>.json and .md (a table under the title and
 * the machine it ran on) and prints the markdown.
 */
export async function writeReport<R>(name: string, title: string, natsVersion: string, rows: readonly R[], table: { header: string[]; align: string[]; cells(row: R): (string | number)[] }): Promise<void> {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, nats: natsVersion, at: new Date().toISOString() };
  await writeFile(`${dir}${name}.json`, `${JSON.stringify({ machine, rows }, null, 2)}\n`);
  const md = [
    `# ${title} (${machine.at})`,
    '',
    `Node ${machine.node}, ${machine.cpus} cores (${machine.cpu}), nats-server ${machine.nats}.`,
    '',
    `| ${table.header.join(' | ')} |`,
    `| ${table.align.join(' | ')} |`,
    ...rows.map((r) => `| ${table.cells(r).join(' | ')} |`),
    '',
  ].join('\n');
  await writeFile(`${dir}${name}.md`, md);
  process.stdout.write(`\n${md}\n`);
}
