import { useState } from 'preact/hooks';
import { agentPath, get, post, query } from '../api.js';
import { clock, money, oneLine, stateText } from '../format.js';
import { agentHref, navigate, replayHref } from '../router.js';
import type { AgentDetail, ReplayResult, ReplayStep, RunDiff, StepView } from '../types.js';
import { ErrorNote, Json, Section, StatusBadge, useLoad } from '../ui.js';

type Ev = Record<string, unknown> & { type: string };
type ToolCallShape = { id?: string; name?: string; function?: { name?: string; arguments?: unknown }; arguments?: unknown };

function modelMessage(e: Ev): { content?: string; calls: { name: string; args: unknown }[]; usage?: { inputTokens?: number; outputTokens?: number; costUsd?: number } } {
  const result = e.result as { message?: { content?: unknown; toolCalls?: ToolCallShape[]; tool_calls?: ToolCallShape[] } } | undefined;
  const m = result?.message ?? {};
  const calls = (m.toolCalls ?? m.tool_calls ?? []).map((c) => ({ name: c.name ?? c.function?.name ?? '?', args: c.arguments ?? c.function?.arguments }));
  return { ...(typeof m.content === 'string' && m.content ? { content: m.content } : {}), calls, ...(e.usage ? { usage: e.usage as { inputTokens?: number } } : {}) };
}

/** One line per message the model saw or said, up to and including `upTo`. */
function conversation(steps: readonly ReplayStep[], upTo: number): { who: string; text: string; value?: unknown }[] {
  const out: { who: string; text: string; value?: unknown }[] = [];
  for (const s of steps) {
    if (s.step > upTo) break;
    const e = s.event as Ev;
    if (e.type === 'xstate.init') {
      const input = (e.input ?? {}) as { goal?: unknown; system?: unknown };
      if (typeof input.system === 'string') out.push({ who: 'system', text: input.system });
      out.push({ who: 'goal', text: typeof input.goal === 'string' ? input.goal : JSON.stringify(input.goal) });
    } else if (e.type === 'plan.result') {
      const m = modelMessage(e);
      if (e.error) out.push({ who: 'model error', text: JSON.stringify(e.error) });
      else out.push({ who: 'model', text: [m.content ?? '', ...m.calls.map((c) => `→ ${c.name}(${oneLine(typeof c.args === 'string' ? c.args : JSON.stringify(c.args) ?? '', 200)})`)].filter(Boolean).join('\n') });
    } else if (e.type === 'tool.result') {
      const r = e.result as { output?: unknown } | undefined;
      out.push({ who: `tool ${String(e.tool ?? '')}`, text: e.error ? `error: ${JSON.stringify(e.error)}` : oneLine(typeof r?.output === 'string' ? r.output : (JSON.stringify(r?.output) ?? ''), 400) });
    } else if (e.type === 'input') out.push({ who: 'person', text: String(e.text ?? '') });
    else if (e.type === 'approval') out.push({ who: 'decision', text: `${String(e.decision ?? '')} ${e.requestId ? `(${String(e.requestId)})` : ''}` });
  }
  return out;
}

export function ReplayView({ id, step, diff }: { id: string; step: number | undefined; diff: string | undefined }) {
  const agent = useLoad(() => get<AgentDetail>(agentPath(id)), [id]);
  const replay = useLoad(() => get<ReplayResult>(agentPath(id, '/replay')), [id]);
  const steps = replay.data?.steps ?? [];
  const index = Math.max(
    0,
    steps.findIndex((s) => s.step === step),
  );
  const current = steps[index];
  const go = (i: number) => {
    const s = steps[i];
    if (s) navigate(replayHref(id, { step: s.step, ...(diff ? { diff } : {}) }), true);
  };
  const a = agent.data?.agent;
  const origin = (agent.data?.record.origin ?? undefined) as { agentId?: string; step?: number; from?: { agentId?: string } } | undefined;
  const originId = origin?.agentId ?? origin?.from?.agentId;

  return (
    <>
      <header class="agent-head">
        <p class="crumbs">
          <a href="/">Agents</a> / <a href={agentHref(id)}>{id}</a>
        </p>
        <h1 class="goal-title">Replay{a ? `: ${oneLine(a.goal, 120)}` : ` of ${id}`}</h1>
        {a ? (
          <p class="facts">
            <StatusBadge status={a.status} /> <code>{a.agentId}</code> · {a.agent} · {a.step} steps
            {originId ? (
              <>
                {' '}
                · fork of <a href={agentHref(originId)}>{originId}</a> ·{' '}
                <a href={replayHref(id, { diff: originId })}>diff with it</a>
              </>
            ) : null}
          </p>
        ) : null}
        <ErrorNote error={agent.error} />
      </header>
      {replay.error ? <ErrorNote error={replay.error} /> : null}
      {replay.loading && !replay.data ? <p class="muted">Replaying the journal…</p> : null}
      {replay.data?.verification ? <Verification v={replay.data.verification} /> : null}
      {diff ? <Diff a={id} b={diff} /> : null}
      {steps.length ? (
        <div class="replay">
          <nav class="steps card" aria-label="Steps">
            <h2>Steps</h2>
            <ol>
              {steps.map((s, i) => (
                <li key={s.step}>
                  <button type="button" class={i === index ? 'step current' : 'step'} aria-current={i === index ? 'step' : undefined} onClick={() => go(i)}>
                    <span class="step-no">{s.step}</span> {eventLabel(s.event as Ev)}
                  </button>
                </li>
              ))}
            </ol>
          </nav>
          {current ? (
            <StepDetail
              id={id}
              step={current}
              steps={steps}
              prev={index > 0 ? () => go(index - 1) : undefined}
              next={index < steps.length - 1 ? () => go(index + 1) : undefined}
              canFork={a !== undefined}
            />
          ) : null}
        </div>
      ) : null}
      <DiffForm id={id} current={diff} />
    </>
  );
}

function eventLabel(e: Ev): string {
  switch (e.type) {
    case 'xstate.init':
      return 'goal';
    case 'plan.result':
      return e.error ? 'model error' : 'model answered';
    case 'tool.result':
      return `${String(e.tool ?? 'tool')} ${e.error ? 'failed' : 'returned'}`;
    case 'errand.fork':
      return 'fork';
    default:
      return e.type;
  }
}

function Verification({ v }: { v: NonNullable<ReplayResult['verification']> }) {
  return v.ok ? (
    <p class="ok card" role="status">
      Verified: replaying the journal through the machine reaches the stored snapshot.
    </p>
  ) : (
    <div class="error card" role="alert">
      <p>
        The replay does <strong>not</strong> reach the stored snapshot
        {v.firstDivergentStep !== undefined ? ` (first diverging step: ${v.firstDivergentStep})` : ''}.
      </p>
      <Json value={v} label="verification" />
    </div>
  );
}

function StepDetail({ id, step, steps, prev, next, canFork }: { id: string; step: ReplayStep; steps: ReplayStep[]; prev?: () => void; next?: () => void; canFork: boolean }) {
  const [forking, setForking] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const e = step.event as Ev;
  const fork = async () => {
    setForking(true);
    setError(undefined);
    try {
      const r = await post<{ agentId: string }>(agentPath(id, '/fork'), { at: step.step });
      navigate(agentHref(r.agentId));
    } catch (err) {
      setError(err);
      setForking(false);
    }
  };
  const talk = conversation(steps, step.step);
  return (
    <section class="card step-detail" aria-labelledby="step-h">
      <div class="card-head">
        <h2 id="step-h">
          Step {step.step}: {eventLabel(e)}
        </h2>
        <span class="actions">
          <button type="button" onClick={prev} disabled={!prev} aria-label="Previous step">
            ← Previous
          </button>
          <button type="button" onClick={next} disabled={!next} aria-label="Next step">
            Next →
          </button>
        </span>
      </div>
      {typeof e.at === 'number' ? <p class="muted">{clock(e.at)}</p> : null}
      <EventBody e={e} />
      <details>
        <summary>What the model had been told up to here ({talk.length} messages)</summary>
        <ol class="talk">
          {talk.map((m, i) => (
            <li key={i}>
              <strong>{m.who}:</strong> <span class="pre">{m.text}</span>
            </li>
          ))}
        </ol>
      </details>
      <h3>State after</h3>
      <p>
        {stateText(step.state)} {step.status ? <StatusBadge status={step.status} /> : null}
        {step.matches === false ? <span class="error"> differs from the journal</span> : null}
      </p>
      <h3>Commands out</h3>
      {step.commands.length ? (
        <ul class="cmds">
          {step.commands.map((c) => (
            <li key={c.key}>
              <code>{c.kind}</code> <span class="muted">{c.subject}</span>
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">none</p>
      )}
      <details>
        <summary>The event as journaled</summary>
        <Json value={e} label="event" />
      </details>
      <div class="actions">
        <button type="button" class="primary" disabled={!canFork || forking} onClick={() => void fork()}>
          {forking ? 'Forking…' : `Fork from step ${step.step}`}
        </button>
        <span class="muted small">A new agent starts from the snapshot after this step; the original is untouched.</span>
      </div>
      <ErrorNote error={error} />
    </section>
  );
}

function EventBody({ e }: { e: Ev }) {
  if (e.type === 'xstate.init') {
    const input = (e.input ?? {}) as Record<string, unknown>;
    return (
      <>
        <h3>The goal it was given</h3>
        <p class="pre">{typeof input.goal === 'string' ? input.goal : JSON.stringify(input.goal)}</p>
        <details>
          <summary>Full input</summary>
          <Json value={input} label="input" />
        </details>
      </>
    );
  }
  if (e.type === 'plan.result') {
    if (e.error) {
      return (
        <>
          <h3>The model call failed</h3>
          <ErrorNote error={e.error} />
        </>
      );
    }
    const m = modelMessage(e);
    return (
      <>
        <h3>What the model answered</h3>
        {m.content ? <p class="pre">{m.content}</p> : <p class="muted">(no text)</p>}
        {m.calls.map((c, i) => (
          <div class="call" key={i}>
            <p>
              calls <code class="tool-name">{c.name}</code>
            </p>
            <Json value={c.args} label={`arguments of ${c.name}`} />
          </div>
        ))}
        {m.usage ? (
          <p class="muted">
            {m.usage.inputTokens ?? 0} + {m.usage.outputTokens ?? 0} tokens{m.usage.costUsd !== undefined ? ` · ${money(m.usage.costUsd)}` : ''}
          </p>
        ) : null}
      </>
    );
  }
  if (e.type === 'tool.result') {
    const r = e.result as { output?: unknown } | undefined;
    return (
      <>
        <h3>
          What <code class="tool-name">{String(e.tool ?? 'the tool')}</code> returned
        </h3>
        {e.error ? <ErrorNote error={e.error} /> : <Json value={r?.output ?? r} label="tool output" />}
      </>
    );
  }
  if (e.type === 'errand.fork') {
    const from = (e.from ?? {}) as { agentId?: string; step?: number };
    return (
      <>
        <h3>Forked</h3>
        <p>
          This run starts from {from.agentId ? <a href={agentHref(from.agentId)}>{from.agentId}</a> : 'another run'} after its step {from.step}; the commands still
          outstanding there were sent again.
        </p>
      </>
    );
  }
  return (
    <>
      <h3>Event in</h3>
      <Json value={e} label="event" />
    </>
  );
}

function DiffForm({ id, current }: { id: string; current: string | undefined }) {
  const [other, setOther] = useState(current ?? '');
  return (
    <Section title="Compare with another run" id="diff-form">
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (other.trim()) navigate(replayHref(id, { diff: other.trim() }));
        }}
      >
        <label class="grow">
          Other agent id
          <input value={other} required placeholder="a-…" onInput={(e) => setOther(e.currentTarget.value)} />
        </label>
        <button type="submit">Show diff</button>
      </form>
    </Section>
  );
}

function Diff({ a, b }: { a: string; b: string }) {
  const d = useLoad(() => get<RunDiff>(`/api/diff${query({ a, b })}`), [a, b]);
  const side = (v: StepView | undefined) =>
    v ? (
      <>
        <div>{v.event}</div>
        <div class="muted">
          → {stateText(v.state)} ({v.status})
        </div>
        {v.commands ? <div class="small">sent: {v.commands}</div> : null}
      </>
    ) : (
      <span class="muted">(no such step)</span>
    );
  const cost = (c: RunDiff['cost']['a']) => `${c.steps} steps · ${c.modelCalls} model calls · ${c.inputTokens + c.outputTokens} tokens · ${money(c.costUsd)} · ${c.toolCalls} tool calls`;
  return (
    <Section title="Diff" id="diff">
      <ErrorNote error={d.error} />
      {d.data ? (
        <>
          <p>{d.data.firstDivergentStep === undefined ? 'The runs take the same path.' : `The runs differ from step ${d.data.firstDivergentStep} on.`}</p>
          <div class="table-wrap">
            <table class="diff">
              <thead>
                <tr>
                  <th scope="col">Step</th>
                  <th scope="col">
                    <a href={agentHref(d.data.a)}>{d.data.a}</a>
                  </th>
                  <th scope="col">
                    <a href={agentHref(d.data.b)}>{d.data.b}</a>
                  </th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th scope="row">cost</th>
                  <td>{cost(d.data.cost.a)}</td>
                  <td>{cost(d.data.cost.b)}</td>
                </tr>
                {d.data.rows.map((r) => (
                  <tr key={r.step}>
                    <th scope="row">{r.step}</th>
                    <td>{side(r.a)}</td>
                    <td>{side(r.b)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : d.loading ? (
        <p class="muted">Comparing…</p>
      ) : null}
    </Section>
  );
}
