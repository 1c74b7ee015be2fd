import { startMockLlm, type MockLlm, type MockStep } from '@errand/llm';
import { createDeployment, startTestToolRunner, type Deployment, type TestProcess, type TestServer, type TestToolOptions, type TestToolRunner, type ToolBehaviour } from '@errand/testing';

export const ALICE = { name: 'alice', token: 'alice-token-0123456789abcdef' };
export const BOB = { name: 'bob', token: 'bob-token-0123456789abcdefgh' };
export const TOKENS = `${ALICE.name}:${ALICE.token},${BOB.name}:${BOB.token}`;

/** A deployment with a host and planner against a scripted model, test tool runners, and a gateway process. */
export interface GatewayWorld {
  d: Deployment;
  mock: MockLlm;
  tools: Record<string, TestToolRunner>;
  gateway: TestProcess;
  base: string;
  /** Starts (again) the gateway process, on `port` when given. */
  startGateway(port?: number): Promise<void>;
  /** fetch with Alice's bearer token. */
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  stop(): Promise<void>;
}

export const urlOf = (readyLine: string): string => (JSON.parse(readyLine) as { url: string }).url;

export async function gatewayWorld(
  srv: TestServer,
  options: { steps?: MockStep[]; tools?: Record<string, { behaviour: ToolBehaviour; policy?: TestToolOptions['policy'] }>; env?: Record<string, string>; services?: ('host' | 'planner')[] } = {},
): Promise<GatewayWorld> {
  const mock = await startMockLlm({ steps: options.steps ?? [] });
  const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_GATEWAY_TOKENS: TOKENS, ERRAND_GATEWAY_KEEPALIVE_MS: '500', ...options.env } });
  const tools: Record<string, TestToolRunner> = {};
  for (const [name, t] of Object.entries(options.tools ?? {})) tools[name] = await startTestToolRunner(d, name, t.behaviour, t.policy ? { policy: t.policy } : {});
  await Promise.all((options.services ?? ['host', 'planner']).map((s) => d.start(s)));
  const world: GatewayWorld = {
    d,
    mock,
    tools,
    gateway: undefined as unknown as TestProcess,
    base: '',
    async startGateway(port) {
      world.gateway = await d.start('gateway', port ? { ERRAND_GATEWAY_PORT: String(port) } : {});
      world.base = urlOf(await world.gateway.waitForLine(/"msg":"gateway ready"/));
    },
    api(path, init = {}) {
      const { json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (!headers.has('Authorization')) headers.set('Authorization', `Bearer ${ALICE.token}`);
      if (json !== undefined) headers.set('Content-Type', 'application/json');
      return fetch(`${world.base}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json), method: rest.method ?? 'POST' } : {}) });
    },
    async stop() {
      await Promise.all(Object.values(tools).map((t) => t.stop()));
      await d.stopAll();
      await mock.close();
    },
  };
  await world.startGateway();
  return world;
}

/** One server-sent event as read off the wire. */
export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads server-sent events from `response` until `until` says stop (or `timeoutMs`); comments are
 * counted in `comments`. The reader is cancelled at the end, so the connection closes.
 */
export async function readSse(response: Response, until: (events: SseEvent[]) => boolean, timeoutMs = 30_000): Promise<{ events: SseEvent[]; comments: string[] }> {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const e: SseEvent = { data: '' };
        const data: string[] = [];
        let any = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          else if (line.startsWith('id:')) ((e.id = line.slice(3).trim()), (any = true));
          else if (line.startsWith('event:')) ((e.event = line.slice(6).trim()), (any = true));
          else if (line.startsWith('data:')) (data.push(line.slice(5).replace(/^ /, '')), (any = true));
        }
        if (any) events.push({ ...e, data: data.join('\n') });
        if (until(events)) break;
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return { events, comments };
}
