// errand schedule against a real nats-server (with credentials) and a real host process: add, ls,
// pause, resume, trigger and rm as an operator; every argument checked with a clear usage error;
// a submitter's credentials may not add schedules.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScheduleStore, type ScheduleRecord } from '@errand/schedules';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));
let srv: TestServer;
let d: Deployment;
let dir: string;

const errand = (args: string[], role: 'operator' | 'submitter' = 'operator') => {
  const { ERRAND_PREFIX: _p, NATS_CREDS: _c, NATS_URL: _u, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: dir, ...d.env(role) } });
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'errand-schedule-'));
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  await d.start('host');
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('errand schedule', () => {
  it('refuses bad input before connecting, saying what is wrong and what to do (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['schedule', 'add', '61 * * * *', 'g'], /invalid cron expression "61 \* \* \* \*": Invalid value for minute: 61\. Use five fields/],
      [['schedule', 'add', 'every day', 'g'], /invalid cron expression "every day".*five fields "minute hour day-of-month month day-of-week"/],
      [['schedule', 'add', '0 9 * * *', 'g', '--tz', 'Europe/Atlantis'], /--tz <zone>.*unknown time zone "Europe\/Atlantis": use an IANA name such as UTC, Europe\/Paris/],
      [['schedule', 'add', '0 9 * * *', 'g', '--catchup', 'an hour'], /--catchup "an hour" is not a duration: use a number with a unit: ms, s, m, h or d/],
      [['schedule', 'add', '0 9 * * *', 'g', '--overlap', 'queue'], /--overlap <policy>.*use one of skip, allow, cancel-previous/],
      [['schedule', 'add', '0 9 * * *', 'g', '--id', 'my.schedule'], /schedule id "my.schedule" is not usable: use 1-64 letters, digits, '_' or '-'/],
      [['schedule', 'add', '0 9 * * *', 'g', '--input', '[1]'], /must be a JSON object/],
      [['schedule', 'add', '0 9 * * *'], /missing required argument 'goal'/],
    ];
    for (const [args, message] of cases) {
      const r = await errand(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const json = await errand(['--json', 'schedule', 'add', 'bad', 'g']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: { code: 'ERR_INVALID_SCHEDULE' } });
    // Nine CLI processes in turn: beside other test files on 2 cores each start takes seconds.
  }, 180_000);

  it('add, ls, pause, resume, trigger, rm', async () => {
    const add = await errand(['schedule', 'add', '0 9 * * 1-5', 'summarise', 'the', 'tickets', '--tz', 'Europe/Paris', '--id', 'digest', '--agent', 'tally', '--input', '{"expect":0}', '--catchup', '30m', '-l', 'team=support']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/^digest: "0 9 \* \* 1-5" in Europe\/Paris, next fire \d{4}-\d\d-\d\d 09:00:00 Europe\/Paris \(overlap skip, catch-up 30m\)\n$/);
    const again = await errand(['schedule', 'add', '0 9 * * *', 'other', '--id', 'digest']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/a schedule named digest exists already: choose another --id, or remove it first \(errand schedule rm digest\)/);

    const ls = await errand(['schedule', 'ls']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+CRON\s+STATE\s+NEXT FIRE\s+LAST FIRE\s+OVERLAP\s+RUNS\n/);
    expect(ls.stdout).toMatch(/digest\s+0 9 \* \* 1-5\s+active\s+\d{4}-\d\d-\d\d 09:00:00 Europe\/Paris\s+-\s+skip\s+0/);
    const listed = JSON.parse((await errand(['schedule', 'ls', '--json'])).stdout) as ScheduleRecord[];
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: 'digest', goal: 'summarise the tickets', timezone: 'Europe/Paris', catchupWindowMs: 1_800_000, labels: { team: 'support' }, state: 'active' });

    const pause = await errand(['schedule', 'pause', 'digest']);
    expect(pause.stdout).toBe('digest: paused (errand schedule resume digest to fire again)\n');
    expect((await errand(['schedule', 'ls'])).stdout).toMatch(/digest\s+0 9 \* \* 1-5\s+paused\s+- \(paused\)/);

    const trigger = await errand(['schedule', 'trigger', 'digest']);
    expect(trigger.code, trigger.stderr).toBe(0);
    const agentId = trigger.stdout.trim();
    expect(agentId).toMatch(/^digest-now-\d{8}T\d{6,9}Z$/);
    const done = await d.waitForStatus(agentId, ['done']);
    expect(done.labels).toMatchObject({ team: 'support', schedule: 'digest' });
    expect((await errand(['schedule', 'ls'])).stdout).toMatch(new RegExp(`paused .* started \\(trigger\\) ${agentId}`));

    const resume = await errand(['schedule', 'resume', 'digest']);
    expect(resume.stdout).toMatch(/^digest: active, next fire \d{4}-\d\d-\d\d 09:00:00 Europe\/Paris\n$/);

    expect((await errand(['schedule', 'rm', 'digest'])).stdout).toBe('digest: removed\n');
    const gone = await errand(['schedule', 'pause', 'digest']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/no schedule named digest \(errand schedule ls lists them\)/);
    expect((await errand(['schedule', 'trigger', 'digest'])).code).toBe(3);
    expect((await errand(['schedule', 'rm', 'digest'])).code).toBe(3);
    expect((await errand(['schedule', 'ls'])).stdout).toMatch(/^no schedules; add one with/);
  }, 180_000);

  it("a submitter's credentials may not add a schedule", async () => {
    const r = await errand(['schedule', 'add', '0 9 * * *', 'g', '--id', 'sneaky'], 'submitter');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/errand: these NATS credentials may not do that with schedules \(.*Permissions Violation.*\): schedules are added, paused, resumed, triggered and removed with an operator's credentials/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    expect(await store.read('sneaky')).toBeUndefined();
  });
});
