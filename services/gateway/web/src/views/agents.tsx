import { useEffect, useRef, useState } from 'preact/hooks';
import { agentPath, ApiError, get, post, query } from '../api.js';
import { duration, money, oneLine, parseLabels, toMs } from '../format.js';
import { agentHref, navigate } from '../router.js';
import { useEventStream } from '../sse.js';
import { AGENT_STATUSES, type AgentDetail, type AgentSummary } from '../types.js';
import { ErrorNote, NeedsYou, Section, StatusBadge, useNow } from '../ui.js';

interface Filters {
  status: string;
  agent: string;
  label: string;
  q: string;
}

const EMPTY: Filters = { status: '', agent: '', label: '', q: '' };

/** `team=ops` / `team:ops` → `team:ops` as the API's label filter takes it. */
function labelParam(text: string): string | undefined {
  const l = parseLabels(text);
  if (!l) return undefined;
  const entries = Object.entries(l);
  return entries.length ? entries.map(([k, v]) => `${k}:${v}`).join(',') : undefined;
}

export function AgentsView() {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [rows, setRows] = useState<AgentSummary[] | undefined>(undefined);
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [refresh, setRefresh] = useState(0);
  const now = useNow(5000);
  const pendingRefetch = useRef<Set<string>>(new Set());
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const rowsRef = useRef<AgentSummary[] | undefined>(undefined);
  rowsRef.current = rows;

  const listUrl = (after?: string) =>
    `/api/agents${query({ status: filters.status, agent: filters.agent.trim(), label: labelParam(filters.label), q: filters.q.trim(), limit: 50, cursor: after })}`;

  useEffect(() => {
    let live = true;
    get<{ agents: AgentSummary[]; nextCursor?: string }>(listUrl()).then(
      (r) => {
        if (!live) return;
        setRows(r.agents);
        setCursor(r.nextCursor);
        setError(undefined);
      },
      (err: unknown) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, [filters, refresh]);

  // Changed agents are read again (their row), a new agent reloads the first page; batched so a
  // burst of events costs one request per agent.
  const flush = async () => {
    timer.current = undefined;
    const ids = [...pendingRefetch.current];
    pendingRefetch.current.clear();
    const known = new Set((rowsRef.current ?? []).map((r) => r.agentId));
    if (ids.some((id) => !known.has(id))) {
      setRefresh((n) => n + 1);
      return;
    }
    const fresh = await Promise.all(ids.map((id) => get<AgentDetail>(agentPath(id)).then((d) => d.agent, () => undefined)));
    setRows((old) => {
      if (!old) return old;
      const byId = new Map(fresh.filter((a): a is AgentSummary => a !== undefined).map((a) => [a.agentId, a]));
      const next = old.map((r) => byId.get(r.agentId) ?? r);
      return next.sort((a, b) => (toMs(b.updatedAt) ?? 0) - (toMs(a.updatedAt) ?? 0));
    });
  };
  useEffect(() => () => clearTimeout(timer.current), []);

  const stream = useEventStream('/api/agents/events', ['event.state', 'event.done', 'event.failed'], (_kind, data) => {
    const id = (data as { agentId?: unknown }).agentId;
    if (typeof id !== 'string') return;
    pendingRefetch.current.add(id);
    timer.current ??= setTimeout(() => void flush(), 250);
  }, () => setRefresh((n) => n + 1));

  const more = async () => {
    if (!cursor) return;
    try {
      const r = await get<{ agents: AgentSummary[]; nextCursor?: string }>(listUrl(cursor));
      setRows((old) => [...(old ?? []), ...r.agents.filter((a) => !old?.some((o) => o.agentId === a.agentId))]);
      setCursor(r.nextCursor);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <NewGoal />
      <Section
        title="Agents"
        id="agents"
        actions={
          <span class={`live live-${stream}`} aria-live="polite">
            {stream === 'live' ? 'live' : stream}
          </span>
        }
      >
        <form
          class="filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            setFilters(draft);
          }}
        >
          <label>
            Status
            <select
              value={draft.status}
              onChange={(e) => {
                const next = { ...draft, status: e.currentTarget.value };
                setDraft(next);
                setFilters(next);
              }}
            >
              <option value="">any</option>
              <option value="running,waiting,paused">not finished</option>
              {AGENT_STATUSES.map((s) => (
                <option value={s} key={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label>
            Agent
            <input value={draft.agent} placeholder="assistant" onInput={(e) => setDraft({ ...draft, agent: e.currentTarget.value })} />
          </label>
          <label>
            Label
            <input value={draft.label} placeholder="team:ops" onInput={(e) => setDraft({ ...draft, label: e.currentTarget.value })} />
          </label>
          <label class="grow">
            Search
            <input type="search" value={draft.q} placeholder="text in the goal" onInput={(e) => setDraft({ ...draft, q: e.currentTarget.value })} />
          </label>
          <button type="submit">Filter</button>
        </form>
        <ErrorNote error={error} />
        {rows === undefined && !error ? <p class="muted">Loading…</p> : null}
        {rows && rows.length === 0 ? <p class="muted">No agents{filters !== EMPTY ? ' match these filters' : ' yet: give one a goal above'}.</p> : null}
        {rows && rows.length > 0 ? (
          <div class="table-wrap">
            <table class="agents">
              <thead>
                <tr>
                  <th scope="col">Status</th>
                  <th scope="col">Goal</th>
                  <th scope="col">Agent</th>
                  <th scope="col" class="num">
                    Age
                  </th>
                  <th scope="col" class="num">
                    Steps
                  </th>
                  <th scope="col" class="num">
                    Cost
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((a) => (
                  <tr key={a.agentId} data-agent-id={a.agentId}>
                    <td data-label="Status">
                      <StatusBadge status={a.status} /> {a.waiting ? <NeedsYou kind={a.waiting.kind} /> : null}
                    </td>
                    <td data-label="Goal" class="goal">
                      <a href={agentHref(a.agentId)}>{oneLine(a.goal, 140)}</a>
                      <div class="sub">
                        <code>{a.agentId}</code>
                        {Object.entries(a.labels ?? {}).map(([k, v]) => (
                          <span class="label" key={k}>
                            {k}:{v}
                          </span>
                        ))}
                      </div>
                    </td>
                    <td data-label="Agent">{a.agent}</td>
                    <td data-label="Age" class="num">
                      {duration(now - (toMs(a.createdAt) ?? now))}
                    </td>
                    <td data-label="Steps" class="num">
                      {a.step}
                    </td>
                    <td data-label="Cost" class="num">
                      {money(a.usage?.costUsd)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {cursor ? (
          <button type="button" onClick={() => void more()}>
            Load more
          </button>
        ) : null}
      </Section>
    </>
  );
}

function NewGoal() {
  const [goal, setGoal] = useState('');
  const [agent, setAgent] = useState('');
  const [labels, setLabels] = useState('');
  const [tools, setTools] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    const parsed = parseLabels(labels);
    if (!parsed) {
      setError(new ApiError(0, 'ERR_INVALID', 'labels are key=value pairs separated by commas, e.g. team=ops, env=dev'));
      return;
    }
    const toolList = tools
      .split(/[\s,]+/)
      .map((t) => t.trim())
      .filter(Boolean);
    setBusy(true);
    setError(undefined);
    try {
      const r = await post<{ agentId: string }>('/api/agents', {
        goal,
        ...(agent.trim() ? { agent: agent.trim() } : {}),
        ...(Object.keys(parsed).length ? { labels: parsed } : {}),
        ...(toolList.length ? { tools: toolList } : {}),
      });
      navigate(agentHref(r.agentId));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Section title="New goal" id="new-goal">
      <form class="new-goal" onSubmit={(e) => void submit(e)}>
        <label class="wide">
          Goal
          <textarea required rows={3} value={goal} placeholder="What should the agent do?" onInput={(e) => setGoal(e.currentTarget.value)} />
        </label>
        <div class="row">
          <label>
            <span>
              Agent <span class="muted">(optional)</span>
            </span>
            <input value={agent} placeholder="assistant" onInput={(e) => setAgent(e.currentTarget.value)} />
          </label>
          <label>
            <span>
              Labels <span class="muted">(optional)</span>
            </span>
            <input value={labels} placeholder="team=ops, env=dev" onInput={(e) => setLabels(e.currentTarget.value)} />
          </label>
          <label>
            <span>
              Tools <span class="muted">(optional)</span>
            </span>
            <input value={tools} placeholder="fs_read, fs_write" onInput={(e) => setTools(e.currentTarget.value)} />
          </label>
        </div>
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy || !goal.trim()}>
          {busy ? 'Starting…' : 'Start agent'}
        </button>
      </form>
    </Section>
  );
}
