// The shipped systemd units and Kubernetes manifests: they parse, name every service with the main
// it really has, and probe the paths and port the services serve — proven by starting a service
// from a unit's ExecStart and probing it as the manifests do. (The nats cluster config is run by
// test/security/deploy-configs.test.ts.)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceNames } from '@errand/protocols';
import { HealthPath } from '@errand/telemetry';
import { createDeployment, freePort, serviceMain, startProcess, startTestServer, type Deployment, type TestProcess, type TestServer } from '@errand/testing';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const deploy = join(root, 'deploy');
const services = Object.keys(serviceMain).sort();
/** Where the units and manifests install the repository. */
const INSTALL = '/opt/errand';

/** A systemd unit as sections of (key, value) pairs, keys repeatable. */
type Unit = Record<string, [string, string][]>;
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: string | undefined;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[([A-Za-z]+)\]$/.exec(line);
    if (head) {
      section = head[1]!;
      unit[section] ??= [];
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`line ${i + 1} is not key=value inside a section: ${raw}`);
    unit[section]!.push([kv[1]!, kv[2]!]);
  }
  return unit;
}
const values = (unit: Unit, section: string, key: string) => (unit[section] ?? []).filter(([k]) => k === key).map(([, v]) => v);
const one = (unit: Unit, section: string, key: string) => values(unit, section, key).at(-1);

/**
 * A YAML document of the block-style subset the manifests use, checked line by line (no YAML
 * parser is installed): no tabs, two-space indentation, every line a `key: value`, `key:`, or a
 * `- ` list item. Returns the top-level keys.
 */
function checkYaml(doc: string, where: string): Map<string, string> {
  const top = new Map<string, string>();
  let prevIndent = 0;
  for (const [i, line] of doc.split('\n').entries()) {
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const at = `${where}:${i + 1}: ${line}`;
    expect(line, at).not.toMatch(/\t/);
    const indent = line.length - line.trimStart().length;
    expect(indent % 2, at).toBe(0);
    expect(indent - prevIndent, at).toBeLessThanOrEqual(4); // a "- key:" item opens two levels
    prevIndent = indent;
    const body = line.trimStart().replace(/^- /, '');
    expect(body, at).toMatch(/^(?:[A-Za-z0-9_./-]+:(?: .+)?|"[^"]*"|[^:#]+|\{\}|\[.*\])$/);
    if (indent === 0) {
      const m = /^([A-Za-z]+):\s*(.*)$/.exec(line);
      if (m) top.set(m[1]!, m[2]!);
    }
  }
  return top;
}

async function manifests(): Promise<{ file: string; docs: string[] }[]> {
  const files = (await readdir(join(deploy, 'k8s'))).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(files.map(async (file) => ({ file, docs: (await readFile(join(deploy, 'k8s', file), 'utf8')).split(/^---$/m) })));
}

/** The block under `key:` (the lines indented deeper than it), from a document. */
function block(doc: string, key: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith(`${key}:`));
  if (start < 0) return '';
  const indent = lines[start]!.length - lines[start]!.trimStart().length;
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (l.trim() && l.length - l.trimStart().length <= indent) break;
    out.push(l);
  }
  return out.join('\n');
}

describe('deploy/systemd', () => {
  it('one unit per service, running its real main, draining on SIGTERM, restarting on failure, hardened', async () => {
    const files = (await readdir(join(deploy, 'systemd'))).filter((f) => f.endsWith('.service')).sort();
    expect(files).toEqual(services.map((s) => `errand-${s}.service`));
    const ports: string[] = [];
    for (const file of files) {
      const name = file.replace(/^errand-/, '').replace(/\.service$/, '') as keyof typeof serviceMain;
      const unit = parseUnit(await readFile(join(deploy, 'systemd', file), 'utf8'));
      expect(Object.keys(unit).sort(), file).toEqual(['Install', 'Service', 'Unit']);
      const exec = one(unit, 'Service', 'ExecStart')!.split(' ');
      expect(exec[0], file).toBe('/usr/bin/node');
      const main = exec[1]!;
      expect(main, file).toBe(`${INSTALL}/services/${name}/dist/main.js`);
      // The same main the test harness runs, built from a source that exists.
      expect(serviceMain[name]).toBe(join(root, main.slice(INSTALL.length + 1)));
      expect(existsSync(join(root, `services/${name}/src/main.ts`)), file).toBe(true);
      expect(one(unit, 'Service', 'KillSignal'), file).toBe('SIGTERM');
      // The workers' drain grace is 10 s; stopping must allow it and the hand-back.
      expect(Number(one(unit, 'Service', 'TimeoutStopSec')), file).toBeGreaterThanOrEqual(20);
      expect(one(unit, 'Service', 'Restart'), file).toBe('on-failure');
      expect(one(unit, 'Service', 'RestartPreventExitStatus'), file).toBe('2');
      expect(one(unit, 'Service', 'NoNewPrivileges'), file).toBe('yes');
      expect(one(unit, 'Service', 'ProtectSystem'), file).toBe('strict');
      expect(one(unit, 'Service', 'User') ?? one(unit, 'Service', 'DynamicUser'), file).toBeTruthy();
      expect(values(unit, 'Service', 'Environment'), file).toContain(`NATS_CREDS=/etc/errand/creds/${name}.creds`);
      expect(values(unit, 'Service', 'EnvironmentFile'), file).toContain('/etc/errand/errand.env');
      expect(one(unit, 'Install', 'WantedBy'), file).toBe('multi-user.target');
      ports.push(values(unit, 'Service', 'Environment').find((e) => e.startsWith('ERRAND_METRICS_PORT='))!);
    }
    // Each its own metrics port: all five may run on one machine.
    expect(new Set(ports).size).toBe(services.length);
    expect(ports.every((p) => /^ERRAND_METRICS_PORT=\d+$/.test(p))).toBe(true);
    const env = await readFile(join(deploy, 'systemd', 'errand.env.example'), 'utf8');
    for (const v of ['NATS_URL', 'ERRAND_PREFIX', 'ERRAND_VERIFY_KEY']) expect(env).toMatch(new RegExp(`^${v}=`, 'm'));
  });

  it('systemd-analyze verify accepts every unit (where systemd is installed)', async () => {
    const bin = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
    if (!bin) return;
    const units = services.map((s) => join(deploy, 'systemd', `errand-${s}.service`));
    const out = await run(bin, ['verify', ...units]).then(
      (r) => r.stdout + r.stderr,
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
    // Only what the test machine lacks (node in /usr/bin, /opt/errand) may be reported.
    const complaints = out.split('\n').filter((l) => l.trim() && !/\/opt\/errand|\/usr\/bin\/node|is not executable|No such file/.test(l));
    expect(complaints).toEqual([]);
  });
});

describe('deploy/k8s', () => {
  it('every manifest parses as block YAML with apiVersion, kind and a name; kustomization lists them all', async () => {
    const all = await manifests();
    for (const { file, docs } of all) {
      for (const doc of docs) {
        const top = checkYaml(doc, file);
        expect(top.has('apiVersion'), file).toBe(true);
        expect(top.has('kind'), file).toBe(true);
        if (top.get('kind') !== 'Kustomization') expect(block(doc, 'metadata'), file).toMatch(/^ {2}name: [a-z0-9-]+$/m);
      }
    }
    const kustomization = all.find((m) => m.file === 'kustomization.yaml')!.docs[0]!;
    const listed = [...block(kustomization, 'resources').matchAll(/- (\S+)/g)].map((m) => m[1]).sort();
    expect(listed).toEqual(all.map((m) => m.file).filter((f) => f !== 'kustomization.yaml' && !f.includes('example')).sort());
  });

  it('a Deployment per service running its main, probed on /healthz and /readyz at the metrics port the ConfigMap sets', async () => {
    const all = await manifests();
    const config = all.find((m) => m.file === 'configmap.yaml')!.docs[0]!;
    const port = /ERRAND_METRICS_PORT: "(\d+)"/.exec(config)?.[1];
    expect(port).toBeDefined();
    const deployments = all.flatMap((m) => m.docs).filter((d) => /^kind: Deployment$/m.test(d));
    expect(deployments.map((d) => /^ {2}name: (\S+)$/m.exec(block(d, 'metadata'))?.[1]).sort()).toEqual(services.map((s) => `errand-${s}`));
    for (const d of deployments) {
      const name = /^ {2}name: errand-(\S+)$/m.exec(block(d, 'metadata'))![1]!;
      expect(d).toContain(`command: ["node", "${INSTALL}/services/${name}/dist/main.js"]`);
      expect(d).toMatch(new RegExp(`- name: metrics\\n\\s+containerPort: ${port}\\n`));
      expect(block(d, 'livenessProbe')).toMatch(new RegExp(`path: ${HealthPath.live}\\n\\s+port: metrics`));
      expect(block(d, 'readinessProbe')).toMatch(new RegExp(`path: ${HealthPath.ready}\\n\\s+port: metrics`));
      expect(d).toMatch(/terminationGracePeriodSeconds: (\d+)/);
      expect(Number(/terminationGracePeriodSeconds: (\d+)/.exec(d)![1])).toBeGreaterThanOrEqual(20);
      expect(d).toContain(`value: /etc/errand/creds/${name}.creds`);
      // Each pod mounts only its own role's credentials.
      expect([...d.matchAll(/key: (\S+\.creds)/g)].map((m) => m[1])).toEqual([`${name}.creds`]);
    }
    const service = all.flatMap((m) => m.docs).find((d) => /^kind: Service$/m.test(d))!;
    expect(block(service, 'selector')).toContain('app.kubernetes.io/name: errand-gateway');
    expect(block(service, 'ports')).toContain('targetPort: http');
  });

  it('KEDA scales planners and tool-runners on the backlog of their durable consumers of the work stream', async () => {
    const docs = (await manifests()).find((m) => m.file === 'keda.yaml')!.docs;
    const scaled = docs.filter((d) => /^kind: ScaledObject$/m.test(d));
    expect(scaled.map((d) => /scaleTargetRef:\n\s+name: (\S+)/.exec(d)?.[1]).sort()).toEqual(['errand-planner', 'errand-tool-runner']);
    for (const d of scaled) {
      expect(d).toContain('type: nats-jetstream');
      for (const m of d.matchAll(/stream: "(\S+)"/g)) expect(m[1]).toBe(resourceNames('errand').streams.work);
    }
    expect(scaled.find((d) => d.includes('errand-planner'))).toContain('consumer: "planner"');
    for (const m of scaled.find((d) => d.includes('name: errand-tool-runner'))!.matchAll(/consumer: "(\S+)"/g)) expect(m[1]).toMatch(/^tool-[a-z_]+$/);
  });
});

describe('a service started as the unit starts it answers the probes the manifests use', () => {
  let srv: TestServer;
  let d: Deployment;
  let host: TestProcess | undefined;
  beforeAll(async () => {
    srv = await startTestServer();
    d = await createDeployment(srv);
  });
  afterAll(async () => {
    host?.signal('SIGTERM');
    await host?.exited;
    await srv?.stop();
  });

  it('errand-host from its ExecStart main: /healthz 200, /readyz 200; SIGTERM exits 0', async () => {
    const unit = parseUnit(await readFile(join(deploy, 'systemd', 'errand-host.service'), 'utf8'));
    const main = join(root, one(unit, 'Service', 'ExecStart')!.split(' ')[1]!.slice(INSTALL.length + 1));
    const port = await freePort();
    host = startProcess(process.execPath, [main], {
      env: { ...process.env, ...d.env('host'), ERRAND_SIGNING_KEY: d.keys.signingKeyFile, ERRAND_VERIFY_KEY: d.keys.publicKey, ERRAND_METRICS_PORT: String(port), LOG_LEVEL: 'info' },
    });
    await host.waitForLine(/"msg":"host ready"/, 30_000);
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}${HealthPath.live}`)).status).toBe(200);
    await expect.poll(async () => (await fetch(`${base}${HealthPath.ready}`)).status, { timeout: 10_000, interval: 50 }).toBe(200);
    host.signal('SIGTERM');
    expect((await host.exited).code).toBe(0);
    host = undefined;
  });
});
