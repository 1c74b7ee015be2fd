import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseMockScript, startMockLlm } from '@errand/llm';
import type { GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { CliError, printJson } from '../output.js';
import { parsePort } from './options.js';

interface MockLlmOptions extends GlobalOptions {
  script: string;
  port: number;
}

export function registerMockLlm(program: Command): void {
  program
    .command('mock-llm')
    .description('serve a scripted model over HTTP, speaking the OpenAI chat-completions protocol (streaming and not)')
    .requiredOption('--script <file>', 'the script: {"steps": [{"reply": {...}} | {"error": {"status": 500}}, ...]}')
    .option('--port <port>', 'port on 127.0.0.1 (0: any free port)', parsePort, 0)
    .addHelpText(
      'after',
      `
Each request takes the first unused step whose "match" (if any) occurs in its messages. A step
answers with "reply" (content and/or toolCalls) or "error" (status, retryAfterSeconds, code), can
check the request with "expect": {"contains": [...], "notContains": [...]}, and can wait "delayMs".

Example script:
  {"steps": [
    {"error": {"status": 500}},
    {"reply": {"toolCalls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}},
    {"expect": {"contains": ["Oslo"]}, "reply": {"content": "It snows in Oslo."}}
  ]}

Examples:
  $ errand mock-llm --script demo.json --port 4010
  $ OPENAI_BASE_URL=http://127.0.0.1:4010/v1 node services/planner/dist/main.js`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<MockLlmOptions>();
      let script;
      try {
        script = parseMockScript(JSON.parse(await readFile(opts.script, 'utf8')));
      } catch (err) {
        throw new CliError(ExitCode.Usage, `cannot use the script ${opts.script}: ${(err as Error).message}`);
      }
      const mock = await startMockLlm(script, { port: opts.port });
      if (opts.json) printJson({ ok: true, url: mock.url, steps: script.steps.length });
      else process.stdout.write(`mock-llm serving ${script.steps.length} scripted steps at ${mock.url} (Ctrl-C to stop)\nOPENAI_BASE_URL=${mock.url}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await mock.close();
      if (!opts.json) {
        process.stdout.write(`stopped after ${mock.requests.length} requests; ${mock.remaining()} steps unused\n`);
        for (const f of mock.failures) process.stdout.write(`  failure: ${f}\n`);
      }
      if (mock.failures.length) process.exitCode = ExitCode.Failed;
    });
}
