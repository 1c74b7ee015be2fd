import { describe, expect, it } from 'vitest';
import { discoverySubject, DiscoveryVerb, rolePermissions, ROLES, type Role } from '../src/index.js';

/** Whether NATS subject `subject` matches `pattern` (`*` one token, `>` the rest). */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const allowed = (perm: { allow: readonly string[]; deny: readonly string[] }, subject: string) =>
  perm.allow.some((a) => matches(a, subject)) && !perm.deny.some((d) => matches(d, subject));

const ASKERS: readonly Role[] = ['admin', 'gateway', 'operator'];

describe('service discovery permissions ($SRV, ADR-32)', () => {
  const subjects = (name = 'errand-host', id = 'abc123') =>
    [DiscoveryVerb.Ping, DiscoveryVerb.Info, DiscoveryVerb.Stats].flatMap((v) => [discoverySubject(v), discoverySubject(v, name), discoverySubject(v, name, id)]);

  it.each(ROLES)('%s may listen on every discovery subject and answer', (role) => {
    const p = rolePermissions(role, { prefix: 'acme' });
    for (const subject of subjects()) expect(allowed(p.sub, subject), subject).toBe(true);
    expect(p.respond).toBe(true);
  });

  it.each(ROLES)('%s may ask PING and INFO only if it reports on the deployment', (role) => {
    const p = rolePermissions(role, { prefix: 'acme' });
    const ask = [discoverySubject(DiscoveryVerb.Ping), discoverySubject(DiscoveryVerb.Ping, 'errand-host'), discoverySubject(DiscoveryVerb.Info), discoverySubject(DiscoveryVerb.Info, 'errand-planner', 'x1')];
    for (const subject of ask) expect(allowed(p.pub, subject), `${role} → ${subject}`).toBe(ASKERS.includes(role));
    // Answers come back under the asker's own inbox, which only it may read.
    expect(allowed(p.sub, `${p.inboxPrefix}.abc.1`)).toBe(true);
    if (role !== 'admin') expect(allowed(p.sub, '_INBOX_someone_else.abc.1')).toBe(false);
  });

  it('the discovery subjects are the ones ADR-32 names, and refuse what is not a service name', () => {
    expect(discoverySubject(DiscoveryVerb.Ping)).toBe('$SRV.PING');
    expect(discoverySubject(DiscoveryVerb.Info, 'errand-host')).toBe('$SRV.INFO.errand-host');
    expect(discoverySubject(DiscoveryVerb.Stats, 'errand-host', 'k2')).toBe('$SRV.STATS.errand-host.k2');
    expect(() => discoverySubject(DiscoveryVerb.Ping, 'errand.host')).toThrow(/letters, digits/);
    expect(() => discoverySubject(DiscoveryVerb.Ping, 'errand-*')).toThrow(/letters, digits/);
  });
});

describe("the planners' shared rate-limit bucket", () => {
  it.each(ROLES)('%s may write the limits bucket only if it is the planner (or admin)', (role) => {
    const p = rolePermissions(role, { prefix: 'acme' });
    const put = '$KV.acme_limits.rate.gpt-4o-mini';
    expect(allowed(p.pub, put), `${role} → ${put}`).toBe(role === 'planner' || role === 'admin');
  });

  it('the planner reads it (gets and compare-and-set need the stream API of KV_acme_limits)', () => {
    const p = rolePermissions('planner', { prefix: 'acme' });
    expect(allowed(p.pub, '$JS.API.STREAM.MSG.GET.KV_acme_limits')).toBe(true);
    expect(allowed(p.pub, '$JS.API.DIRECT.GET.KV_acme_limits.$KV.acme_limits.rate.m')).toBe(true);
  });
});

describe('schedules', () => {
  const MANAGERS: readonly Role[] = ['admin', 'host', 'operator'];
  it.each(ROLES)('%s may write the schedules bucket only if it manages schedules (operator, admin) or fires them (host)', (role) => {
    const p = rolePermissions(role, { prefix: 'acme' });
    const put = '$KV.acme_schedules.digest';
    expect(allowed(p.pub, put), `${role} → ${put}`).toBe(MANAGERS.includes(role));
  });

  it("a host submits a schedule's goals through the intake and arms its ticks on the work stream", () => {
    const p = rolePermissions('host', { prefix: 'acme' });
    expect(allowed(p.pub, 'acme.submit')).toBe(true);
    expect(allowed(p.pub, 'acme.work.schedule.digest')).toBe(true);
    expect(allowed(p.pub, '$JS.API.STREAM.MSG.GET.ACME_WORK')).toBe(true);
  });
});
