import type { ResourceOptions } from '@errand/protocols';
import { createDeployment, inputMessage, startTestToolRunner, type Deployment as BaseDeployment, type TestProcess, type TestServer } from '@errand/testing';

/** A deployment with host shortcuts, for the host's own tests. */
export interface Deployment extends BaseDeployment {
  startHost(env?: Record<string, string>): Promise<TestProcess>;
  spawnHost(env?: Record<string, string>): TestProcess;
  stopHosts(): Promise<void>;
}

export async function deploy(srv: TestServer, resources: Partial<ResourceOptions> = {}): Promise<Deployment> {
  const d = await createDeployment(srv, { resources, env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  return Object.assign(d, {
    startHost: (env?: Record<string, string>) => d.start('host', env),
    spawnHost: (env?: Record<string, string>) => d.spawn('host', env),
    stopHosts: () => d.stopAll(),
  });
}

export const echoToolRunner = (d: BaseDeployment, tool = 'echo') => startTestToolRunner(d, tool);
export { inputMessage };
