import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { agentPath, ApiError, get, post } from '../api.js';
import { clock, clockOrDay, count, duration, money, oneLine, stateText, toMs } from '../format.js';
import { hasTask, RunModel, taskSpan, type AgentNode, type ToolCall } from '../run-model.js';
import { agentHref, replayHref } from '../router.js';
import { useEventStream } from '../sse.js';
import { EVENT_KINDS, TERMINAL, type AgentDetail, type AgentSummary, type LogLine, type ProgressEvent, type Task, type Waiting } from '../types.js';
import { ErrorNote, Json, NeedsYou, Section, StatusBadge, useNow } from '../ui.js';

const MAX_LOG_LINES = 500;
/** How long a missing agent is looked for again (its record is written a moment after the submit). */
const NEW_AGENT_GRACE_MS = 15_000;

export function AgentView({ id }: { id: string }) {
  const model = useMemo(() => new RunModel(id), [id]);
  const [, setVersion] = useState(0);
  const [detail, setDetail] = useState<AgentDetail | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const refetch = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const now = useNow(1000);

  const started = useRef(Date.now());
  const load = async () => {
    refetch.current = undefined;
    try {
      const d = await get<AgentDetail>(agentPath(id));
      setDetail(d);
      setError(undefined);
      model.addChildren(id, d.agent.children ?? {});
      setVersion(model.version);
    } catch (err) {
      setError(err);
      // A goal just submitted (or a fork just started) has no record for a moment: look again.
      if (err instanceof ApiError && err.status === 404 && Date.now() - started.current < NEW_AGENT_GRACE_MS) refetch.current = setTimeout(() => void load(), 500);
    }
  };
  const soon = () => {
    refetch.current ??= setTimeout(() => void load(), 150);
  };
  useEffect(() => {
    void load();
    return () => clearTimeout(refetch.current);
  }, [id]);

  const stream = useEventStream(detail ? agentPath(id, '/events') : undefined, EVENT_KINDS, (_kind, data) => {
    const e = data as ProgressEvent;
    if (typeof e?.agentId !== 'string' || typeof e.kind !== 'string') return;
    model.apply(e);
    setVersion(model.version);
    // The record is the truth about now (status, what it waits for, usage): read it again when it changed.
    if (e.kind !== 'event.plan' && e.kind !== 'event.tool') soon();
  }, soon);

  const a = detail?.agent;
  const root = model.root;
  // The record is the truth about now, but an end seen in the events is final even before the
  // record is read again (or when it cannot be: a gateway that went away).
  const status = root.status && TERMINAL.has(root.status) ? root.status : (a?.status ?? root.status);
  const ended = status !== undefined && TERMINAL.has(status);
  if (!a && error && !(error instanceof ApiError && error.status === 404 && refetch.current)) return <ErrorNote error={error} />;
  if (!a) return <p class="muted">Loading {id}…</p>;
  const origin = detail?.record.origin as { agentId: string; step: number } | undefined;
  const created = toMs(a.createdAt) ?? now;
  const age = (ended ? (toMs(a.updatedAt) ?? now) : now) - created;

  return (
    <>
      <header class="agent-head">
        <p class="crumbs">
          <a href="/">Agents</a>
          {a.parent ? (
            <>
              {' '}
              / <a href={agentHref(a.parent.agentId)}>parent {a.parent.agentId}</a>
            </>
          ) : null}
        </p>
        <h1 class="goal-title">{a.goal}</h1>
        <p class="facts">
          <StatusBadge status={status} /> {a.waiting && !ended ? <NeedsYou kind={a.waiting.kind} /> : null} <code>{a.agentId}</code> · {a.agent} · state{' '}
          {stateText(a.state)} · step {a.step} · {duration(age)}
          {a.submittedBy ? ` · started by ${principalText(a.submittedBy)}` : ''} ·{' '}
          <span class={`live live-${stream}`} aria-live="polite">
            {stream === 'live' ? 'live' : stream}
          </span>
        </p>
        <p class="links">
          <a href={replayHref(a.agentId)}>Replay{ended ? '' : ' (so far)'}</a>
          {origin ? (
            <>
              {' '}
              · fork of <a href={agentHref(origin.agentId)}>{origin.agentId}</a> at step {origin.step} ·{' '}
              <a href={replayHref(a.agentId, { diff: origin.agentId })}>diff with it</a>
            </>
          ) : null}
        </p>
        <ErrorNote error={error} />
      </header>
      {a.waiting && !ended ? <Decision key={a.waiting.requestId} agent={a} waiting={withCalls(a.waiting, detail?.record.approvals)} onSent={soon} now={now} /> : null}
      {ended ? <Outcome agent={a} /> : null}
      <div class="grid">
        <Section title="Task tree" id="tree">
          <AgentTree model={model} node={root} now={now} />
        </Section>
        <Section title="Usage" id="usage">
          <UsageView agent={a} model={model} />
        </Section>
      </div>
      <Controls agent={a} ended={ended} onSent={soon} />
      <Section title="Timeline" id="timeline">
        <Timeline node={root} />
      </Section>
      <Logs id={id} />
    </>
  );
}

// --- the pending decision ----------------------------------------------------------------------

/** The calls an approval asks about: from `waiting`, else from the record's open request of that id (older gateways). */
function withCalls(w: Waiting, approvals: unknown): Waiting {
  if (w.calls?.length || !Array.isArray(approvals)) return w;
  const open = (approvals as { requestId?: unknown; calls?: unknown }[]).find((x) => x.requestId === w.requestId);
  return Array.isArray(open?.calls) ? { ...w, calls: open.calls as { tool: string; args: unknown }[] } : w;
}

function Decision({ agent, waiting, onSent, now }: { agent: AgentSummary; waiting: Waiting; onSent: () => void; now: number }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [sent, setSent] = useState<string | undefined>(undefined);
  const [text, setText] = useState('');
  const act = async (what: string, path: string, body: unknown) => {
    setBusy(true);
    setError(undefined);
    try {
      await post(agentPath(agent.agentId, path), body);
      setSent(what);
      onSent();
    } catch (err) {
      setError(err);
      onSent();
    } finally {
      setBusy(false);
    }
  };
  const decision = { requestId: waiting.requestId, argsHash: waiting.argsHash ?? '' };
  const title = waiting.kind === 'approval' ? 'Needs your approval' : waiting.kind === 'input' ? 'Asks you' : 'Needs more budget';
  return (
    <section class="card decision" aria-labelledby="decision-h" id="decision">
      <div class="card-head">
        <h2 id="decision-h">{title}</h2>
        <span class="muted">
          since {clock(waiting.since)}
          {waiting.deadline ? ` · decide by ${clockOrDay(waiting.deadline, now)} (${waiting.deadline > now ? `in ${duration(waiting.deadline - now)}` : 'passed'})` : ''}
        </span>
      </div>
      {waiting.summary ? <p>{waiting.summary}</p> : null}
      {waiting.question ? <p class="question">{waiting.question}</p> : null}
      {waiting.calls?.map((c, i) => (
        <div class="call" key={i}>
          <p>
            Tool <code class="tool-name">{c.tool}</code> with these exact arguments:
          </p>
          <Json value={c.args} label={`arguments of ${c.tool}`} />
        </div>
      ))}
      {waiting.argsHash ? (
        <p class="muted small">
          arguments hash <code>{waiting.argsHash}</code> · request <code>{waiting.requestId}</code>
        </p>
      ) : null}
      {waiting.kind === 'input' ? (
        <form
          class="answer"
          onSubmit={(e) => {
            e.preventDefault();
            void act('answer', '/answer', { text, requestId: waiting.requestId });
          }}
        >
          <label class="wide">
            Your answer
            <textarea required rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <button type="submit" class="primary" disabled={busy || !text.trim()}>
            Answer
          </button>
        </form>
      ) : (
        <div class="actions">
          <button type="button" class="primary approve" disabled={busy || sent !== undefined} onClick={() => void act('approved', '/approve', decision)}>
            Approve
          </button>
          <button type="button" class="danger" disabled={busy || sent !== undefined} onClick={() => void act('denied', '/deny', decision)}>
            Deny
          </button>
        </div>
      )}
      {sent ? (
        <p class="ok" role="status">
          Sent: {sent}. The agent moves on when it takes the decision.
        </p>
      ) : null}
      <ErrorNote error={error} />
    </section>
  );
}

function Outcome({ agent }: { agent: AgentSummary }) {
  const answer = (agent.output as { answer?: unknown } | undefined)?.answer;
  return (
    <Section title={agent.status === 'done' ? 'Result' : agent.status === 'failed' ? 'Failed' : 'Cancelled'} id="outcome">
      {agent.status === 'cancelled' && agent.control?.action === 'cancel' && agent.control.by ? <p class="by">Cancelled by {principalText(agent.control.by)}</p> : null}
      {agent.error ? <ErrorNote error={agent.error} /> : null}
      {typeof answer === 'string' ? <p class="answer-text pre">{answer}</p> : null}
      {agent.output !== undefined ? (
        typeof answer === 'string' ? (
          <details>
            <summary>The whole output</summary>
            <Json value={agent.output} label="output" />
          </details>
        ) : (
          <Json value={agent.output} label="output" />
        )
      ) : null}
    </Section>
  );
}

// --- tell, cancel, pause, resume ---------------------------------------------------------------

function Controls({ agent, ended, onSent }: { agent: AgentSummary; ended: boolean; onSent: () => void }) {
  const [text, setText] = useState('');
  const [interrupt, setInterrupt] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  if (ended) return null;
  const act = async (what: string, path: string, body: unknown) => {
    setBusy(true);
    setError(undefined);
    setNote(undefined);
    try {
      await post(agentPath(agent.agentId, path), body);
      setNote(what);
      onSent();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Talk to it" id="controls">
      <form
        class="tell"
        onSubmit={(e) => {
          e.preventDefault();
          void act('told', '/tell', { text, interrupt }).then((ok) => ok && setText(''));
        }}
      >
        <label class="wide">
          Tell the agent
          <textarea rows={2} required value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={interrupt} onChange={(e) => setInterrupt(e.currentTarget.checked)} /> interrupt the step in flight
        </label>
        <button type="submit" disabled={busy || !text.trim()}>
          Tell
        </button>
      </form>
      {agent.status === 'paused' && agent.control?.action === 'pause' && agent.control.by ? <p class="by">Paused by {principalText(agent.control.by)}</p> : null}
      <div class="actions">
        {agent.status === 'paused' ? (
          <button type="button" disabled={busy} onClick={() => void act('resumed', '/resume', {})}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={busy} onClick={() => void act('paused', '/pause', {})}>
            Pause
          </button>
        )}
        <label class="inline">
          Reason <span class="muted">(optional)</span>
          <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </label>
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={() => {
            if (window.confirm(`Cancel ${agent.agentId}? It stops and its child agents are cancelled too.`)) void act('cancel sent', '/cancel', reason.trim() ? { reason: reason.trim() } : {});
          }}
        >
          Cancel agent
        </button>
      </div>
      {note ? (
        <p class="ok" role="status">
          {note[0]!.toUpperCase() + note.slice(1)}.
        </p>
      ) : null}
      <ErrorNote error={error} />
    </Section>
  );
}

// --- usage -------------------------------------------------------------------------------------

function UsageView({ agent, model }: { agent: AgentSummary; model: RunModel }) {
  const own = agent.usage ?? model.root.usage;
  const tree = model.totals();
  const b = agent.budget;
  const tokens = own ? own.inputTokens + own.outputTokens : undefined;
  return (
    <dl class="usage">
      <dt>Tokens</dt>
      <dd>
        {count(tokens)} {own ? <span class="muted">({count(own.inputTokens)} in, {count(own.outputTokens)} out)</span> : null}
        {b?.maxTokens ? <Meter value={tokens ?? 0} max={b.maxTokens} label={`of ${count(b.maxTokens)}`} /> : null}
      </dd>
      <dt>Cost</dt>
      <dd>
        {money(own?.costUsd)}
        {b?.maxCostUsd ? <Meter value={own?.costUsd ?? 0} max={b.maxCostUsd} label={`of ${money(b.maxCostUsd)}`} /> : null}
      </dd>
      <dt>Steps</dt>
      <dd>
        {agent.step}
        {b?.maxSteps ? <Meter value={agent.step} max={b.maxSteps} label={`of ${b.maxSteps}`} /> : null}
      </dd>
      {model.agents.size > 1 ? (
        <>
          <dt>With children</dt>
          <dd>
            {count(tree.inputTokens + tree.outputTokens)} tokens · {money(tree.costUsd)}
          </dd>
        </>
      ) : null}
      {!b ? (
        <>
          <dt>Budget</dt>
          <dd class="muted">none set</dd>
        </>
      ) : null}
    </dl>
  );
}

function Meter({ value, max, label }: { value: number; max: number; label: string }) {
  return (
    <span class="meter">
      <meter min={0} max={max} low={max * 0.7} high={max * 0.9} optimum={0} value={value} /> <span class="muted">{label}</span>
    </span>
  );
}

// --- the task tree -----------------------------------------------------------------------------

const TASK_ICON: Record<string, string> = { pending: '○', in_progress: '▸', done: '✓', failed: '✗', cancelled: '⊘' };
const TOOL_ICON: Record<string, string> = { requested: '▸', ok: '✓', error: '✗', retrying: '↻', cancelled: '⊘', denied: '⊘', expired: '⊘' };

function AgentTree({ model, node, now }: { model: RunModel; node: AgentNode; now: number }) {
  const loose = node.tools.filter((t) => !hasTask(node.tasks, model.taskOfCall(node, t)));
  const looseChildren = node.children.filter((c) => {
    const child = model.agents.get(c);
    return !child || !hasTask(node.tasks, model.taskOfChild(child));
  });
  if (!node.tasks.length && !node.tools.length && !node.children.length) return <p class="muted">No plan or tool calls yet.</p>;
  return (
    <ul class="tree" aria-label={`tasks of ${node.agentId}`}>
      {node.tasks.map((t) => (
        <TaskItem key={t.id} task={t} model={model} node={node} now={now} />
      ))}
      {loose.map((c) => (
        <ToolItem key={c.id} call={c} now={now} />
      ))}
      {looseChildren.map((c) => (
        <ChildItem key={c} model={model} id={c} now={now} />
      ))}
    </ul>
  );
}

function TaskItem({ task, model, node, now }: { task: Task; model: RunModel; node: AgentNode; now: number }) {
  const took = taskSpan(node, task, now);
  const tools = node.tools.filter((c) => model.taskOfCall(node, c) === task.id);
  const children = node.children.filter((c) => {
    const child = model.agents.get(c);
    return child !== undefined && model.taskOfChild(child) === task.id;
  });
  const nested = (task.children?.length ?? 0) + tools.length + children.length > 0;
  return (
    <li class={`task task-${task.status}`} data-task-id={task.id}>
      <span class="icon" aria-hidden="true">
        {TASK_ICON[task.status] ?? '·'}
      </span>{' '}
      <span class="title">{task.title}</span> <span class={`badge status-${task.status}`}>{task.status.replace('_', ' ')}</span>
      {took !== undefined ? <span class="dur">{duration(took)}</span> : null}
      {nested ? (
        <ul>
          {task.children?.map((t) => (
            <TaskItem key={t.id} task={t} model={model} node={node} now={now} />
          ))}
          {tools.map((c) => (
            <ToolItem key={c.id} call={c} now={now} />
          ))}
          {children.map((c) => (
            <ChildItem key={c} model={model} id={c} now={now} />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function ToolItem({ call, now }: { call: ToolCall; now: number }) {
  const running = call.status === 'requested' || call.status === 'retrying';
  const took = running ? now - call.startedAt : call.durationMs;
  return (
    <li class={`tool tool-${call.status}`} data-call-id={call.id}>
      <span class="icon" aria-hidden="true">
        {TOOL_ICON[call.status] ?? '·'}
      </span>{' '}
      tool <code class="tool-name">{call.tool}</code> <span class={`badge tool-status-${call.status}`}>{call.status === 'requested' ? 'running' : call.status}</span>
      {took !== undefined ? <span class="dur">{duration(took)}</span> : null}
      {call.attempt > 1 ? <span class="muted"> attempt {call.attempt}</span> : null}
      {call.error ? (
        <div class="error small">
          <code>{call.error.code}</code> {oneLine(call.error.message, 300)}
        </div>
      ) : null}
    </li>
  );
}

function ChildItem({ model, id, now }: { model: RunModel; id: string; now: number }) {
  const n = model.agents.get(id);
  if (!n) return null;
  const took = n.firstAt !== undefined ? (n.endAt ?? (n.status && TERMINAL.has(n.status) ? undefined : now)) : undefined;
  return (
    <li class="child" data-agent-id={id}>
      <span class="icon" aria-hidden="true">
        ⤷
      </span>{' '}
      child agent <a href={agentHref(id)}>{n.goal ? oneLine(n.goal, 80) : id}</a> <StatusBadge status={n.status} />
      {n.firstAt !== undefined && took !== undefined ? <span class="dur">{duration(took - n.firstAt)}</span> : null}
      {n.tasks.length || n.tools.length || n.children.length ? <AgentTree model={model} node={n} now={now} /> : null}
    </li>
  );
}

// --- the timeline ------------------------------------------------------------------------------

function Timeline({ node }: { node: AgentNode }) {
  if (!node.steps.length) return <p class="muted">No steps yet.</p>;
  return (
    <ol class="timeline">
      {node.steps.map((s) => (
        <li key={s.step}>
          <details>
            <summary>
              <span class="step-no">step {s.step}</span> <span class="muted">{clock(s.at)}</span> <code>{s.eventType}</code> <span aria-hidden="true">→</span>
              <span class="sr-only">then state</span> {stateText(s.state)} <StatusBadge status={s.status} />
              {s.commands.length ? (
                <>
                  {' '}
                  <span aria-hidden="true">→</span> <span class="cmds">{s.commands.map((c) => `${c.kind}${c.kind === 'tool.request' ? ` ${c.subject.split('.').at(-1)}` : ''}`).join(', ')}</span>
                </>
              ) : null}
            </summary>
            <h3>Event in</h3>
            <Json value={s.event} label={`event of step ${s.step}`} />
            <h3>State after</h3>
            <Json value={s.state} label={`state after step ${s.step}`} />
            <h3>Commands out</h3>
            {s.commands.length ? <Json value={s.commands} label={`commands of step ${s.step}`} /> : <p class="muted">none</p>}
          </details>
        </li>
      ))}
    </ol>
  );
}

// --- live logs ---------------------------------------------------------------------------------

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function Logs({ id }: { id: string }) {
  const [lines, setLines] = useState<(LogLine & { seq: string })[]>([]);
  const [open, setOpen] = useState(true);
  const stream = useEventStream(open ? `/api/logs?agent=${encodeURIComponent(id)}` : undefined, ['log'], (_k, data, seq) => {
    setLines((old) => [...old.slice(-(MAX_LOG_LINES - 1)), { ...(data as LogLine), seq }]);
  });
  return (
    <Section
      title="Logs"
      id="logs"
      actions={
        <span>
          <span class={`live live-${stream}`}>{open ? stream : 'stopped'}</span>{' '}
          <button type="button" class="small" onClick={() => setOpen(!open)}>
            {open ? 'Stop' : 'Follow'}
          </button>
        </span>
      }
    >
      {lines.length === 0 ? <p class="muted">No log lines for this agent yet.</p> : null}
      <div class="logs" tabIndex={0} role="log" aria-label="log lines">
        {lines.map((l) => {
          const level = typeof l.level === 'number' ? (LEVELS[l.level] ?? String(l.level)) : (l.level ?? '');
          const { level: _l, time: _t, msg: _m, service: _s, seq: _q, pid: _p, hostname: _h, agentId: _a, ...rest } = l;
          return (
            <div class={`log log-${level}`} key={l.seq}>
              <span class="muted">{clock(l.time)}</span> <span class="lvl">{level}</span> {l.service ? <span class="svc">{l.service}</span> : null} {l.msg ?? ''}{' '}
              {Object.keys(rest).length ? <span class="muted">{oneLine(JSON.stringify(rest), 400)}</span> : null}
            </div>
          );
        })}
      </div>
    </Section>
  );
}

/** Who gave a pause or cancel: their name (or id) and the door they used. */
function principalText(by: { id: string; channel: string; name?: string }): string {
  return `${by.name ?? by.id} (${by.channel})`;
}
