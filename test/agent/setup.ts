import { startMockLlm, type MockLlm, type MockStep } from '@errand/llm';
import { MESSAGE_VERSION, type AgentRecord, type ToolDefinition } from '@errand/protocols';
import { createDeployment, startTestToolRunner, type Deployment, type TestServer, type TestToolRunner, type ToolBehaviour } from '@errand/testing';

/** A deployment running a host and a planner against a scripted model, plus test tool runners. */
export interface AgentWorld {
  d: Deployment;
  mock: MockLlm;
  tools: Record<string, TestToolRunner>;
  startServices(): Promise<void>;
  stop(): Promise<void>;
}

export async function world(srv: TestServer, steps: MockStep[], tools: Record<string, ToolBehaviour> = {}): Promise<AgentWorld> {
  const mock = await startMockLlm({ steps });
  const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
  const runners: Record<string, TestToolRunner> = {};
  for (const [name, behaviour] of Object.entries(tools)) runners[name] = await startTestToolRunner(d, name, behaviour);
  const startServices = async () => {
    await Promise.all([d.start('host'), d.start('planner')]);
  };
  await startServices();
  return {
    d,
    mock,
    tools: runners,
    startServices,
    async stop() {
      await Promise.all(Object.values(runners).map((r) => r.stop()));
      await d.stopAll();
      await mock.close();
    },
  };
}

export function toolDef(name: string, description = `the ${name} tool`): ToolDefinition {
  return { name, description, parameters: { type: 'object', properties: {}, additionalProperties: true } };
}

/** The agent's statechart context, as persisted. */
export function contextOf(r: AgentRecord): Record<string, unknown> {
  return (r.snapshot as { context: Record<string, unknown> }).context;
}
export function stateOf(r: AgentRecord): unknown {
  return (r.snapshot as { value: unknown }).value;
}

export function control(agentId: string, action: 'cancel' | 'pause' | 'resume') {
  return { v: MESSAGE_VERSION, kind: 'control', agentId, action, at: Date.now() } as const;
}

/** A promise and its resolver, to hold a tool call until the test lets it finish. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}
