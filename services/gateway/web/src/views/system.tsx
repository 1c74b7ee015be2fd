import { useEffect } from 'preact/hooks';
import { get } from '../api.js';
import { count, dateTime } from '../format.js';
import { agentHref } from '../router.js';
import type { SystemInfo } from '../types.js';
import { ErrorNote, Section, useLoad } from '../ui.js';

const REFRESH_MS = 5000;

export function SystemView() {
  const sys = useLoad(() => get<SystemInfo>('/api/system'), []);
  // Backlogs and the DLQ change on their own: read again every few seconds while the page is open.
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') sys.reload();
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  const s = sys.data;
  return (
    <>
      <header class="agent-head">
        <h1>System</h1>
        <p class="facts">
          <button type="button" onClick={sys.reload}>
            Refresh
          </button>{' '}
          <span class="muted">reads again every {REFRESH_MS / 1000} s</span>
        </p>
      </header>
      <ErrorNote error={sys.error} />
      {!s && sys.loading ? <p class="muted">Loading…</p> : null}
      {s ? (
        <>
          {s.server.durabilityWarning ? (
            <p class="warning card" role="alert">
              <strong>Durability:</strong> {s.server.durabilityWarning}
            </p>
          ) : null}
          <Section title="NATS server" id="server">
            <dl class="usage">
              <dt>Version</dt>
              <dd>{s.server.version}</dd>
              <dt>JetStream</dt>
              <dd>{s.server.jetstream ? 'enabled' : 'off'}</dd>
              {s.server.cluster ? (
                <>
                  <dt>Cluster</dt>
                  <dd>{s.server.cluster}</dd>
                </>
              ) : null}
            </dl>
          </Section>
          <Section title="Services" id="services">
            <p>
              {Object.entries(s.replicas).map(([name, n]) => (
                <span class="label" key={name}>
                  {name} × {n}
                </span>
              ))}
            </p>
            {s.services.length ? (
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Service</th>
                      <th scope="col">Id</th>
                      <th scope="col">Version</th>
                      <th scope="col">Host</th>
                      <th scope="col">Started</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.services.map((v) => (
                      <tr key={v.id}>
                        <td data-label="Service">
                          {v.name}
                          {v.role ? <span class="muted"> ({v.role})</span> : null}
                        </td>
                        <td data-label="Id">
                          <code>{v.id}</code>
                        </td>
                        <td data-label="Version">{v.version}</td>
                        <td data-label="Host">{v.host ?? ''}</td>
                        <td data-label="Started">{dateTime(v.startedAt)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <p class="muted">No service answered.</p>
            )}
          </Section>
          <Section title="Backlogs" id="backlogs">
            {s.consumers.length ? (
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Stream</th>
                      <th scope="col">Consumer</th>
                      <th scope="col" class="num">
                        Pending
                      </th>
                      <th scope="col" class="num">
                        Awaiting ack
                      </th>
                      <th scope="col" class="num">
                        Redelivered
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.consumers.map((c) => (
                      <tr key={`${c.stream}/${c.name}`}>
                        <td data-label="Stream">{c.stream}</td>
                        <td data-label="Consumer">{c.name}</td>
                        <td data-label="Pending" class="num">
                          {count(c.pending)}
                        </td>
                        <td data-label="Awaiting ack" class="num">
                          {count(c.ackPending)}
                        </td>
                        <td data-label="Redelivered" class="num">
                          {count(c.redelivered)}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <p class="muted">No consumers.</p>
            )}
          </Section>
          <Section title={`Dead letters (${s.dlq.length})`} id="dlq">
            {s.dlq.length ? (
              <ul class="dlq">
                {s.dlq.map((d) => (
                  <li key={d.seq} data-seq={d.seq}>
                    <div>
                      <code>#{d.seq}</code> <span class="muted">{dateTime(d.at)}</span> from <strong>{d.origin}</strong>
                      {d.agentId ? (
                        <>
                          {' '}
                          · agent <a href={agentHref(d.agentId)}>{d.agentId}</a>
                        </>
                      ) : null}
                    </div>
                    <div class="small">
                      subject <code>{d.subject}</code>
                    </div>
                    <div class="reason">{d.reason}</div>
                  </li>
                ))}
              </ul>
            ) : (
              <p class="muted">No dead letters.</p>
            )}
          </Section>
        </>
      ) : null}
    </>
  );
}
