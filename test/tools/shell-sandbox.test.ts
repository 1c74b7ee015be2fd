// The shell tool as a real tool-runner process serves it: what the model gets back from commands
// that try to read the runner's environment and the host's files. Real nats-server, real services,
// real bwrap; the model is the scripted OpenAI-compatible server on loopback.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';

const HIDDEN = 'h1-runner-only-value-7c1e';
const OUTSIDE = 'h1-outside-file-content-93ab';
let srv: TestServer;
let outside: string;
beforeAll(async () => {
  srv = await startTestServer();
  outside = await mkdtemp(join(tmpdir(), 'errand-e2e-outside-'));
  await writeFile(join(outside, 'secret.txt'), OUTSIDE);
});
afterAll(async () => {
  await srv?.stop();
  await rm(outside, { recursive: true, force: true });
});

describe('shell through the tool-runner', () => {
  it("runs in the sandbox: the model sees only the named variables, not the runner's, and no host file", async () => {
    const workspace = await mkdtemp(join(tmpdir(), 'errand-e2e-ws-'));
    const mock = await startMockLlm({
      steps: [
        {
          reply: {
            toolCalls: [
              { name: 'shell', arguments: { command: 'env' } },
              { name: 'shell', arguments: { command: 'cat', args: ['/etc/passwd', join(outside, 'secret.txt')] } },
            ],
          },
        },
        {
          expect: { contains: ['H1_NAMED=passed-on', 'PWD=/workspace', 'sandbox:x:1000', 'No such file or directory'], notContains: [HIDDEN, OUTSIDE, 'H1_HIDDEN', workspace] },
          reply: { content: 'Looked around.' },
        },
      ],
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_WORKSPACE: workspace } });
    try {
      await Promise.all([d.start('host'), d.start('planner')]);
      await d.start('tool-runner', {
        ERRAND_SHELL_ALLOW: 'env,cat',
        ERRAND_SHELL_ENV: 'H1_NAMED',
        H1_NAMED: 'passed-on',
        H1_HIDDEN: HIDDEN,
        ERRAND_TOOL_SETTINGS: JSON.stringify({ shell: { policy: 'auto' } }),
      });
      const agentId = await d.submit({ goal: 'Look around the machine' });
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(mock.failures).toEqual([]);
      expect(done.output).toMatchObject({ answer: 'Looked around.' });
    } finally {
      await d.stopAll();
      await mock.close();
      await rm(workspace, { recursive: true, force: true });
    }
  });
});
