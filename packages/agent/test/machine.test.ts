import { createActor, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { approvalHash, callHash, createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, replayJournaled, type AgentRegistry, type Decision } from '@errand/core';
import { agents, assistant, assistantV1, assistantV2, assistantV3 } from '@errand/agent';

const subjects = createSubjects('errand');
const defaultRegistry = createRegistry([assistant]);
const AT = 1_800_000_000_000;
const echo = { name: 'search', description: 'search the web', parameters: { type: 'object', properties: { q: { type: 'string' } } } };

/** Drives one agent through `decide`, as the host would, without NATS. */
class Run {
  record: AgentRecord | undefined;
  /** Every command of every step so far. */
  readonly sent: AgentRecord['outbox'][number]['message'][] = [];
  private n = 0;
  constructor(
    private readonly agentId = 'a1',
    public registry: AgentRegistry = defaultRegistry,
  ) {}

  decide(message: InboxMessage): Decision {
    return decide(this.record, message, { agentId: this.agentId, inboxId: `m${++this.n}`, now: AT + this.n, subjects, registry: this.registry });
  }
  apply(message: InboxMessage): AgentRecord {
    const d = this.decide(message);
    if (d.type !== 'commit') throw new Error(`expected a commit, got ${d.type}${d.type === 'ignore' ? `: ${d.reason}` : ''}`);
    this.record = d.record;
    this.sent.push(...d.record.outbox.map((e) => e.message));
    return d.record;
  }
  /** The timers the last step started. */
  timers(): Message<'timer.request'>[] {
    return this.record!.outbox.filter((e) => e.message.kind === 'timer.request').map((e) => e.message as unknown as Message<'timer.request'>);
  }
  /** The timer service's message when `t` is due. */
  firing(t: Message<'timer.request'>): InboxMessage {
    return { v: MESSAGE_VERSION, kind: 'timer.fired', agentId: this.agentId, key: t.key, timerId: t.timerId, event: t.event, dueAt: t.dueAt, firedAt: t.dueAt };
  }
  fire(t: Message<'timer.request'>): AgentRecord {
    return this.apply(this.firing(t));
  }
  calls() {
    return (this.record!.snapshot as { context: { calls: { id: string; status: string; attempts: number; error?: { code: string; message: string } }[] } }).context.calls;
  }
  start(input: Record<string, unknown> = {}, extra: Partial<Message<'goal'>> = {}) {
    return this.apply({ v: MESSAGE_VERSION, kind: 'goal', agentId: this.agentId, goal: 'find the answer', agent: 'assistant', input: { toolDefinitions: [echo], ...input }, at: AT, ...extra });
  }
  /** The plan command of the last step. */
  plan(): Message<'plan.request'> {
    const p = this.record!.outbox.find((e) => e.message.kind === 'plan.request');
    if (!p) throw new Error(`no plan request; state ${JSON.stringify((this.record!.snapshot as { value: unknown }).value)}`);
    return p.message as unknown as Message<'plan.request'>;
  }
  tools(): Message<'tool.request'>[] {
    return this.record!.outbox.filter((e) => e.message.kind === 'tool.request').map((e) => e.message as unknown as Message<'tool.request'>);
  }
  reply(reply: { content?: string; toolCalls?: { id: string; name: string; arguments: string }[] } | { error: Message<'plan.result'>['error'] }) {
    const p = this.plan();
    const base = { v: MESSAGE_VERSION, kind: 'plan.result', agentId: this.agentId, key: p.key, ref: p.ref, at: AT } as const;
    if ('error' in reply) return this.apply({ ...base, error: reply.error });
    return this.apply({
      ...base,
      result: { message: { role: 'assistant', content: reply.content ?? null, ...(reply.toolCalls ? { toolCalls: reply.toolCalls } : {}) }, finishReason: 'stop' },
      usage: { model: 'm', inputTokens: 100, outputTokens: 20, costUsd: 0.01 },
    });
  }
  toolResult(req: Message<'tool.request'>, outcome: { output?: unknown; error?: { code: string; message: string; retryable: boolean } }) {
    return this.apply({
      v: MESSAGE_VERSION, kind: 'tool.result', agentId: this.agentId, key: req.key, callId: req.callId, tool: req.tool, attempt: req.attempt, durationMs: 5,
      ...(outcome.error ? { error: outcome.error } : { result: { output: outcome.output } }), at: AT,
    });
  }
  tell(text: string, interrupt = false) {
    return this.apply({ v: MESSAGE_VERSION, kind: 'input', agentId: this.agentId, text, interrupt, by: { id: 'u', channel: 'cli' }, at: AT });
  }
  state() {
    return (this.record!.snapshot as { value: unknown }).value;
  }
}

const call = (id: string, q: string) => ({ id, name: 'search', arguments: JSON.stringify({ q }) });
/** When a timer's event says it happened: a timer's event is any event, and a watchdog's carries `at`. */
const eventAt = (timer: Message<'timer.request'>): number => {
  const { at } = timer.event;
  if (typeof at !== 'number') throw new Error(`timer ${timer.timerId}'s event has no at: ${JSON.stringify(timer.event)}`);
  return at;
};

describe('the built-in agent (pure steps)', () => {
  it('plans, calls two tools in parallel, and answers', () => {
    const run = new Run();
    run.start();
    expect(run.plan().tools.map((t) => t.name)).toEqual(['update_plan', 'ask_human', 'delegate', 'search']);
    run.reply({ toolCalls: [{ id: 'p', name: 'update_plan', arguments: JSON.stringify({ tasks: [{ id: '1', title: 'search', status: 'in_progress' }] }) }, call('c1', 'a'), call('c2', 'b')] });
    expect(run.state()).toBe('acting');
    const [t1, t2] = run.tools();
    expect([t1!.callId, t2!.callId]).toEqual(['c1', 'c2']);
    expect(run.record!.outbox.some((e) => e.message.kind === 'event.plan')).toBe(true);
    run.toolResult(t2!, { output: 'B' });
    expect(run.state()).toBe('acting');
    run.toolResult(t1!, { output: 'A' });
    expect(run.state()).toBe('planning');
    expect(run.plan().messages.filter((m) => m.role === 'tool').map((m) => m.content)).toEqual(['Plan updated.', 'A', 'B']);
    run.reply({ content: 'The answer is AB.' });
    expect(run.record!.status).toBe('done');
    expect(run.record!.output).toMatchObject({ answer: 'The answer is AB.', rounds: 2, usage: { inputTokens: 200, outputTokens: 40 } });
  });

  it('backs off on a retryable model error with a durable timer, and fails on a permanent one', () => {
    const run = new Run();
    run.start();
    run.reply({ error: { code: 'ERR_LLM_RATE_LIMITED', message: 'slow down', retryable: true, retryAfterMs: 2000 } });
    expect(run.state()).toBe('backingOff');
    const timer = run.record!.outbox.find((e) => e.message.kind === 'timer.request')!.message as unknown as Message<'timer.request'>;
    expect(timer.dueAt - timer.at).toBe(2000);
    const failed = new Run('a2');
    failed.start();
    failed.reply({ error: { code: 'ERR_LLM_AUTH', message: 'bad key', retryable: false } });
    expect(failed.record!.status).toBe('failed');
    expect(failed.record!.error).toMatchObject({ code: 'ERR_LLM_AUTH' });
  });

  it('detects a repeated call and asks the model to reflect, then a human', () => {
    const run = new Run();
    run.start();
    for (let i = 0; i < 2; i++) {
      run.reply({ toolCalls: [call(`c${i}`, 'same')] });
      run.toolResult(run.tools()[0]!, { output: 'nothing new' });
    }
    run.reply({ toolCalls: [call('c9', 'same')] });
    expect(run.state()).toBe('planning');
    expect(run.plan().messages.at(-1)?.content).toMatch(/Stop and reflect: you called search with the same arguments 3 times/);
    run.reply({ toolCalls: [call('c10', 'same')] });
    expect(run.state()).toBe('awaitingInput');
  });

  it('stages a message told while it works and gives it to the model at the next planning step', () => {
    const run = new Run();
    run.start();
    run.reply({ toolCalls: [call('c1', 'x')] });
    const [req] = run.tools();
    run.tell('also check the weekend');
    run.toolResult(req!, { output: 'ok' });
    expect(run.plan().messages.at(-1)?.content).toBe('Message from the user while you were working: also check the weekend');
  });

  it('pauses at a budget with an approval request', () => {
    const run = new Run();
    run.start({}, { budget: { maxSteps: 1 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    run.toolResult(run.tools()[0]!, { output: 'ok' });
    expect(run.state()).toBe('awaitingApproval');
    const ev = run.record!.outbox.find((e) => e.message.kind === 'event.approval')!.message;
    expect(ev).toMatchObject({ status: 'requested', tool: 'budget', reason: '1 of 1 steps' });
  });

  it('retries a transiently failing tool on a durable timer, then gives the failure to the model with a re-plan note', () => {
    const run = new Run();
    run.start({ settings: { maxToolAttempts: 2 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const [first] = run.tools();
    run.toolResult(first!, { error: { code: 'ERR_TIMEOUT', message: 'slow', retryable: true } });
    expect(run.state()).toBe('acting');
    const timer = run.record!.outbox.find((e) => e.message.kind === 'timer.request')!.message as unknown as Message<'timer.request'>;
    expect(timer).toMatchObject({ timerId: 'retry-c1', event: { type: 'retry.tool', callId: 'c1' } });
    const fired = run.apply({
      v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'a1', key: timer.key, timerId: timer.timerId, event: timer.event, dueAt: timer.dueAt, firedAt: timer.dueAt,
    });
    const [second] = fired.outbox.filter((e) => e.message.kind === 'tool.request').map((e) => e.message as unknown as Message<'tool.request'>);
    expect(second).toMatchObject({ callId: 'c1', attempt: 2 });
    run.toolResult(second!, { error: { code: 'ERR_TIMEOUT', message: 'still slow', retryable: true } });
    expect(run.state()).toBe('planning');
    const messages = run.plan().messages;
    expect(messages.find((m) => m.role === 'tool')?.content).toBe('ERROR (ERR_TIMEOUT): still slow');
    expect(messages.at(-1)?.content).toMatch(/The tool search kept failing after 2 attempts. Revise your remaining plan/);
  });

  it('asks for a different strategy after repeated failed rounds', () => {
    const run = new Run();
    run.start({ settings: { strategyAfterFailures: 2 } });
    for (let i = 0; i < 2; i++) {
      run.reply({ toolCalls: [call(`c${i}`, `q${i}`)] });
      run.toolResult(run.tools()[0]!, { error: { code: 'ERR_BAD', message: 'no', retryable: false } });
    }
    expect(run.plan().messages.at(-1)?.content).toBe(
      'Your last 2 rounds of tool calls failed. Take a different approach: a different tool, different arguments, or a smaller step.',
    );
  });

  it('an interrupting message cancels the calls in flight and re-plans at once', () => {
    const run = new Run();
    run.start();
    run.reply({ toolCalls: [call('c1', 'x')] });
    const [req] = run.tools();
    run.tell('stop, use the cache instead', true);
    expect(run.state()).toBe('planning');
    const messages = run.plan().messages;
    expect(messages.find((m) => m.role === 'tool')?.content).toBe('Cancelled: interrupted by a new message from the user.');
    expect(messages.at(-1)?.content).toBe('Message from the user while you were working: stop, use the cache instead');
    // The interrupted call's late result changes nothing.
    expect(() => run.toolResult(req!, { output: 'late' })).not.toThrow();
    expect(run.state()).toBe('planning');
  });

  it('compacts the history past the configured size, and on a context-length error', () => {
    const run = new Run();
    run.start({ settings: { compactAtChars: 400, keepRecent: 4 } });
    for (let i = 0; i < 4; i++) {
      run.reply({ toolCalls: [call(`c${i}`, `q${i}`)] });
      run.toolResult(run.tools()[0]!, { output: 'x'.repeat(100) });
    }
    const messages = run.plan().messages;
    expect(messages[0]!.role).toBe('system');
    expect(messages[1]!.content).toBe('find the answer');
    expect(messages.some((m) => /earlier messages were compacted/.test(m.content ?? ''))).toBe(true);
    expect(messages.length).toBeLessThanOrEqual(8);
    expect(messages[3]!.role).not.toBe('tool');

    const big = new Run('a3');
    big.start();
    big.reply({ error: { code: 'ERR_LLM_CONTEXT_LENGTH', message: 'too long', retryable: false } });
    expect(big.state()).toBe('planning');
    expect(big.record!.status).toBe('running');
  });

  it('ends failed, visibly, when the model keeps failing', () => {
    const run = new Run();
    run.start({ settings: { maxModelRetries: 1 } });
    run.reply({ error: { code: 'ERR_LLM_SERVER', message: '503', retryable: true } });
    expect(run.state()).toBe('backingOff');
    const timer = run.record!.outbox.find((e) => e.message.kind === 'timer.request')!.message as unknown as Message<'timer.request'>;
    run.apply({
      v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'a1', key: timer.key, timerId: timer.timerId, event: timer.event, dueAt: timer.dueAt, firedAt: timer.dueAt,
    });
    run.reply({ error: { code: 'ERR_LLM_SERVER', message: '503 again', retryable: true } });
    expect(run.record!.status).toBe('failed');
    expect(run.record!.error?.message).toBe('the model kept failing (2 attempts): 503 again');
  });

  it("asks a person at a label's daily cap, and marks the next request as allowed when they approve", () => {
    const run = new Run();
    run.start({}, { labels: { team: 'research' } });
    expect(run.plan().labels).toEqual({ team: 'research' });
    run.reply({ error: { code: 'ERR_DAILY_BUDGET', message: 'label team=research spent $5.00 of its $5.00 daily cap', retryable: false } });
    expect(run.state()).toBe('awaitingApproval');
    const approval = (run.record!.snapshot as { context: { approval: { requestId: string } } }).context.approval;
    run.apply({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: approval.requestId, decision: 'approve', argsHash: approval.requestId, by: { id: 'boss', channel: 'cli' }, at: AT });
    expect(run.state()).toBe('planning');
    expect(run.plan()).toMatchObject({ overDailyCap: true, labels: { team: 'research' } });
  });

  it('a call nobody answers fails at its deadline (the watchdog timer) and is retried, instead of hanging', () => {
    const run = new Run();
    run.start({ toolTimeouts: { search: 1000 }, settings: { toolDeadlineGraceMs: 500 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const [watchdog, ...more] = run.timers();
    expect(more).toEqual([]);
    expect(watchdog).toMatchObject({ timerId: 'tool-watchdog', event: { type: 'tool.watchdog' } });
    expect(watchdog!.dueAt - watchdog!.at).toBe(1500);
    run.fire(watchdog!);
    expect(run.calls()[0]).toMatchObject({ status: 'retrying', error: { code: 'ERR_TOOL_NO_ANSWER', message: 'no answer from search within 2 s: no tool-runner may be serving it' } });
    expect(run.record!.outbox.map((e) => e.message)).toContainEqual(expect.objectContaining({ kind: 'event.tool', callId: 'c1', status: 'retrying', error: expect.objectContaining({ code: 'ERR_TOOL_NO_ANSWER' }) }));
    // Nothing runs any more: the watchdog is not armed again until the retry is sent, and then for the retry's deadline.
    const [retry] = run.timers();
    expect(run.timers()).toHaveLength(1);
    expect(retry).toMatchObject({ timerId: 'retry-c1' });
    run.fire(retry!);
    expect(run.tools()).toMatchObject([{ callId: 'c1', attempt: 2 }]);
    const [again] = run.timers();
    expect(again).toMatchObject({ timerId: 'tool-watchdog', event: { type: 'tool.watchdog', at: eventAt(retry!) + 1500 } });
    run.toolResult(run.tools()[0]!, { output: 'found' });
    expect(run.state()).toBe('planning');
  });

  it('arms one watchdog timer for a run of sequential tool calls, not one per call', () => {
    const run = new Run();
    run.start();
    for (let i = 1; i <= 5; i++) {
      run.reply({ toolCalls: [call(`c${i}`, `q${i}`)] });
      run.toolResult(run.tools()[0]!, { output: `result ${i}` });
    }
    run.reply({ content: 'done' });
    expect(run.record!.status).toBe('done');
    expect(run.sent.filter((m) => m.kind === 'tool.request')).toHaveLength(5);
    const timers = run.sent.filter((m) => m.kind === 'timer.request') as unknown as Message<'timer.request'>[];
    expect(timers).toMatchObject([{ timerId: 'tool-watchdog' }]);
    // The default: a tool's 10 minutes plus 30 s of grace.
    expect(timers[0]!.dueAt - timers[0]!.at).toBe(10 * 60_000 + 30_000);
  });

  it('fails each call at its own deadline: one watchdog, re-armed for the next deadline', () => {
    const run = new Run();
    const fetch = { ...echo, name: 'fetch', description: 'fetch a page' };
    run.start({ toolDefinitions: [echo, fetch], toolTimeouts: { search: 1000, fetch: 5000 }, settings: { toolDeadlineGraceMs: 500, maxToolAttempts: 1 } });
    run.reply({ toolCalls: [call('c1', 'x'), { id: 'c2', name: 'fetch', arguments: '{"q":"y"}' }] });
    expect(run.tools().map((t) => t.callId)).toEqual(['c1', 'c2']);
    const [first, ...none] = run.timers();
    expect(none).toEqual([]);
    expect(first!.dueAt - first!.at).toBe(1500);
    run.fire(first!);
    expect(run.calls().map((x) => [x.id, x.status, x.error?.code])).toEqual([
      ['c1', 'error', 'ERR_TOOL_NO_ANSWER'],
      ['c2', 'running', undefined],
    ]);
    expect(run.state()).toBe('acting');
    const [second] = run.timers();
    expect(second).toMatchObject({ timerId: 'tool-watchdog', event: { at: eventAt(first!) + 4000 } });
    run.fire(second!);
    // Both have an outcome: the round is over and the model hears of both.
    expect(run.state()).toBe('planning');
    expect(run.plan().messages.filter((m) => m.role === 'tool').map((m) => m.content)).toEqual([
      'ERROR (ERR_TOOL_NO_ANSWER): no answer from search within 2 s: no tool-runner may be serving it',
      'ERROR (ERR_TOOL_NO_ANSWER): no answer from fetch within 6 s: no tool-runner may be serving it',
    ]);
  });

  it('re-arms the watchdog for a call due earlier than it is armed for; the superseded firing changes nothing', () => {
    const run = new Run();
    const fetch = { ...echo, name: 'fetch', description: 'fetch a page' };
    run.start({ toolDefinitions: [echo, fetch], toolTimeouts: { search: 1000, fetch: 5000 }, settings: { toolDeadlineGraceMs: 500 } });
    run.reply({ toolCalls: [{ id: 'c1', name: 'fetch', arguments: '{"q":"y"}' }] });
    const [late] = run.timers();
    run.toolResult(run.tools()[0]!, { output: 'page' });
    run.reply({ toolCalls: [call('c2', 'x')] });
    const [early, ...none] = run.timers();
    expect(none).toEqual([]);
    expect(eventAt(early!)).toBeLessThan(eventAt(late!));
    expect(run.decide(run.firing(late!))).toMatchObject({ type: 'ignore', reason: 'the timer was cancelled or superseded' });
    run.fire(early!);
    expect(run.calls()[0]).toMatchObject({ id: 'c2', status: 'retrying', error: { code: 'ERR_TOOL_NO_ANSWER' } });
  });

  it('a watchdog event from another agent changes nothing', () => {
    const run = new Run();
    run.start({ toolTimeouts: { search: 1000 }, settings: { toolDeadlineGraceMs: 500 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const d = run.decide({ v: MESSAGE_VERSION, kind: 'agent.message', agentId: 'a1', from: 'mallory', event: { type: 'tool.watchdog', at: AT + 3_600_000 }, at: AT });
    // The host refuses it (the event of a live timer); were it delivered, the machine ignores what has a sender.
    expect(d.type).toBe('ignore');
    const [state] = transition(assistant.machine, assistant.machine.resolveState(run.record!.snapshot as never), { type: 'tool.watchdog', at: AT + 3_600_000, from: 'mallory' } as never);
    expect((state.context as { calls: { status: string }[] }).calls[0]!.status).toBe('running');
  });

  it('assistant@1 agents keep their per-call deadline timers; a host with only the newest assistant still fails their calls at those deadlines', () => {
    const run = new Run('a1', createRegistry([assistantV1]));
    run.start({ toolTimeouts: { search: 1000 }, settings: { toolDeadlineGraceMs: 500 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const [deadline] = run.timers();
    expect(deadline).toMatchObject({ timerId: 'deadline-c1', event: { type: 'tool.deadline', callId: 'c1', attempt: 1 } });
    run.registry = createRegistry([assistant]);
    run.fire(deadline!);
    expect(run.record!.machine).toEqual({ id: 'assistant', version: 4 });
    expect(run.calls()[0]).toMatchObject({ status: 'retrying', error: { code: 'ERR_TOOL_NO_ANSWER' } });
    // Its retry goes out under the watchdog.
    run.fire(run.timers()[0]!);
    expect(run.timers()).toMatchObject([{ timerId: 'tool-watchdog' }]);
  });

  it('an approval nobody decides sends a reminder, then escalates, then (by default) denies the call', () => {
    const run = new Run();
    run.start({
      toolPolicies: { search: 'ask' },
      notify: [{ channel: 'tg', on: ['approval', 'reminder'] }],
      settings: { approvalTimeoutMs: 1000, approvalTimeoutOutcome: 'escalate', escalateTo: ['slack'] },
    });
    run.reply({ toolCalls: [call('c1', 'x')] });
    expect(run.state()).toBe('awaitingApproval');
    const timers = () => run.record!.outbox.filter((e) => e.message.kind === 'timer.request').map((e) => e.message as unknown as Message<'timer.request'>);
    const fire = (t: Message<'timer.request'>) => run.apply({ v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'a1', key: t.key, timerId: t.timerId, event: t.event, dueAt: t.dueAt, firedAt: t.dueAt });
    const [reminder, deadline] = ['approval-reminder', 'approval-deadline'].map((id) => timers().find((t) => t.timerId === id)!);
    expect(run.record!.outbox.find((e) => e.message.kind === 'notify.request')?.subject).toBe('errand.work.notify.tg');
    fire(reminder!);
    expect(run.record!.outbox.find((e) => e.message.kind === 'notify.request')?.message).toMatchObject({ topic: 'reminder' });
    fire(deadline!);
    expect(run.record!.outbox.find((e) => e.message.kind === 'notify.request')).toMatchObject({ subject: 'errand.work.notify.slack', message: { title: 'Escalated: your decision is needed' } });
    expect(run.state()).toBe('awaitingApproval');
    fire(timers().find((t) => t.timerId === 'approval-deadline')!);
    expect(run.state()).toBe('planning');
    expect(run.plan().messages.find((m) => m.role === 'tool')?.content).toBe('ERROR: nobody approved this call in time; it was not run.');
    expect((run.record!.snapshot as { context: { decided: Record<string, unknown> } }).context.decided).toMatchObject({ 'tools-1': { decision: 'expired' } });
  });

  it('asks before a call whose arguments the catalog marks (fs_write with overwrite: true)', () => {
    const write = { name: 'fs_write', description: 'write', parameters: {} };
    const run = new Run();
    run.start({ toolDefinitions: [write], toolAskIfArgs: { fs_write: { overwrite: true } } });
    run.reply({ toolCalls: [{ id: 'w1', name: 'fs_write', arguments: JSON.stringify({ path: 'a', content: 'x' }) }] });
    expect(run.state()).toBe('acting');
    const second = new Run('a9');
    second.start({ toolDefinitions: [write], toolAskIfArgs: { fs_write: { overwrite: true } } });
    second.reply({ toolCalls: [{ id: 'w2', name: 'fs_write', arguments: JSON.stringify({ path: 'a', content: 'x', overwrite: true }) }] });
    expect(second.state()).toBe('awaitingApproval');
  });

  it('notifies the failed channels when it fails', () => {
    const run = new Run();
    run.start({}, { notify: [{ channel: 'ops', on: ['failed'] }] });
    run.reply({ error: { code: 'ERR_LLM_AUTH', message: 'bad key', retryable: false } });
    expect(run.record!.status).toBe('failed');
    expect(run.record!.outbox.find((e) => e.message.kind === 'notify.request')).toMatchObject({
      subject: 'errand.work.notify.ops',
      message: { topic: 'failed', title: 'Failed: find the answer', text: 'the model call failed: bad key\n\nGoal: find the answer · spent $0.00 so far' },
    });
  });

  it('notifies `stuck` when no planning step happened for the configured time', () => {
    const run = new Run();
    run.start({ settings: { stuckAfterMs: 60_000 } }, { notify: [{ channel: 'ops', on: ['stuck'] }] });
    const watch = run.record!.outbox.map((e) => e.message as unknown as Message<'timer.request'>).find((m) => m.timerId === 'stuck-watch')!;
    expect(watch.dueAt - watch.at).toBe(60_000);
    run.apply({ v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'a1', key: watch.key, timerId: watch.timerId, event: watch.event, dueAt: watch.dueAt, firedAt: watch.dueAt });
    expect(run.record!.outbox.find((e) => e.message.kind === 'notify.request')).toMatchObject({ message: { topic: 'stuck', text: expect.stringMatching(/^No progress on "find the answer" for 1 min \(step 0\)\./) } });
    expect(run.state()).toBe('planning');
  });

  it('an approval binds to the request and its exact hash: agent messages, a missing or wrong hash move nothing; the right one runs the call with evidence', () => {
    const run = new Run();
    run.start({ toolPolicies: { search: 'ask' } });
    run.reply({ toolCalls: [call('s1', 'rm -rf')] });
    expect(run.state()).toBe('awaitingApproval');
    const a = (run.record!.snapshot as { context: { approval: { requestId: string; argsHash: string } } }).context.approval;
    expect(a.argsHash).toBe(approvalHash([{ tool: 'search', args: { q: 'rm -rf' } }]));
    const before = run.record!;
    const d = (message: InboxMessage) => decide(before, message, { agentId: 'a1', inboxId: `x-${Math.random()}`, now: AT + 100, subjects, registry: defaultRegistry });
    const by = { id: 'boss', channel: 'cli' };
    // From another agent: never reaches the machine, whatever it carries (also the machine's own `go`).
    for (const event of [{ type: 'approval', requestId: a.requestId, decision: 'approve' }, { type: 'approval', requestId: a.requestId, decision: 'approve', argsHash: a.argsHash }, { type: 'go', to: 'acting' }]) {
      const r = d({ v: MESSAGE_VERSION, kind: 'agent.message', agentId: 'a1', from: 'other', event, at: AT });
      if (r.type === 'commit') expect((r.record.snapshot as { value: unknown }).value).toBe('awaitingApproval');
      else expect(r).toMatchObject({ type: 'ignore', refused: true });
    }
    expect(d({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: a.requestId, decision: 'approve', argsHash: 'f00d', by, at: AT })).toMatchObject({ type: 'ignore', refused: true });
    // The guard itself: an approval event with no hash does not match.
    const snapshot = assistant.machine.resolveState(before.snapshot as never);
    const [next] = transition(assistant.machine, snapshot, { type: 'approval', requestId: a.requestId, decision: 'approve', by } as never);
    expect(next.value).toBe('awaitingApproval');

    run.apply({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: a.requestId, decision: 'approve', argsHash: a.argsHash, by, at: AT });
    expect(run.state()).toBe('acting');
    expect(run.tools()).toEqual([expect.objectContaining({ tool: 'search', args: { q: 'rm -rf' }, approval: { requestId: a.requestId, argsHash: callHash('search', { q: 'rm -rf' }), by, at: expect.any(Number) } })]);
  });

  it.each(agents.map((d) => [`${d.id}@${d.version}`, d] as const))(
    '%s: its context factory does not throw without input (XState computes initial snapshots without it in some paths)',
    (_name, d) => {
      const snapshot = createActor(d.machine).getSnapshot() as { status: string; error?: unknown };
      expect(snapshot.error).toBeUndefined();
      expect(snapshot.status).toBe('active');
    },
  );
});

/** Replays a run's journal entry by entry, as `errand replay` does; each step must journal what the run's did. */
function replay(run: Run): AgentRecord {
  const journal = run.sent.filter((m) => m.kind === 'event.step') as unknown as Message<'event.step'>[];
  const registry = createRegistry(agents);
  let record: AgentRecord | undefined;
  for (const entry of journal) {
    record = replayJournaled(record, entry, { agentId: entry.agentId, inboxId: entry.inboxId, now: entry.at, subjects, registry });
    const step = record.outbox.find((o) => o.message.kind === 'event.step')?.message;
    expect(JSON.parse(JSON.stringify(step)), `step ${entry.step}`).toEqual(entry);
  }
  return record!;
}

describe('the built-in agent says what it waits for (record.waiting, assistant@3)', () => {
  const by = { id: 'boss', channel: 'cli' };
  const approve = (run: Run, w: { requestId: string; argsHash?: string }, decision: 'approve' | 'deny' = 'approve') =>
    run.apply({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: w.requestId, decision, argsHash: w.argsHash!, by, at: AT });

  it('an approval of tool calls: status waiting with the exact calls and the hash a decision names; approved, it runs again', () => {
    const run = new Run();
    run.start({ toolPolicies: { search: 'ask' }, settings: { approvalTimeoutMs: 60_000 } });
    run.reply({ toolCalls: [call('s1', 'rm -rf /tmp/x'), { id: 's2', name: 'search', arguments: JSON.stringify({ q: 'n', page: 2 }) }] });
    const r = run.record!;
    expect(r.status).toBe('waiting');
    const calls = [{ tool: 'search', args: { q: 'rm -rf /tmp/x' } }, { tool: 'search', args: { q: 'n', page: 2 } }];
    expect(r.waiting).toEqual({
      kind: 'approval',
      requestId: 'tools-1',
      since: AT + 2,
      deadline: AT + 2 + 60_000,
      calls,
      argsHash: approvalHash(calls),
      summary: 'search({"q":"rm -rf /tmp/x"}); search({"page":2,"q":"n"})',
    });
    // One approval request in the runtime's list, not two (the emit and the wait write the same one).
    expect(r.approvals).toEqual([{ requestId: 'tools-1', argsHash: approvalHash(calls), calls: calls.map((c) => callHash(c.tool, c.args)), requestedAt: AT + 2 }]);
    expect(r.outbox.map((e) => e.message)).toContainEqual(expect.objectContaining({ kind: 'event.state', status: 'waiting' }));
    approve(run, r.waiting!);
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
    expect(run.tools()).toHaveLength(2);
    expect(run.record!.outbox.map((e) => e.message)).toContainEqual(expect.objectContaining({ kind: 'event.state', status: 'running' }));
  });

  it('a question (ask_human): an input wait with the question, cleared by the answer', () => {
    const run = new Run();
    run.start();
    run.reply({ toolCalls: [{ id: 'h1', name: 'ask_human', arguments: JSON.stringify({ question: 'Which city?' }) }] });
    expect(run.record!.status).toBe('waiting');
    expect(run.record!.waiting).toEqual({ kind: 'input', requestId: 'h1', since: AT + 2, question: 'Which city?' });
    // An answer to another question changes nothing; the answer to this one clears it.
    run.apply({ v: MESSAGE_VERSION, kind: 'input', agentId: 'a1', requestId: 'other', text: 'no', by, at: AT });
    expect(run.record!.waiting).toMatchObject({ requestId: 'h1' });
    run.apply({ v: MESSAGE_VERSION, kind: 'input', agentId: 'a1', requestId: 'h1', text: 'Paris', by, at: AT });
    expect(run.record!).toMatchObject({ status: 'running' });
    expect(run.record!.waiting).toBeUndefined();
  });

  it('a loop: asks how to go on (input), and a message told without a question id answers it', () => {
    const run = new Run();
    run.start();
    for (let i = 0; i < 3; i++) {
      run.reply({ toolCalls: [call(`c${i}`, 'same')] });
      if (run.state() === 'acting') run.toolResult(run.tools()[0]!, { output: 'nothing new' });
    }
    run.reply({ toolCalls: [call('c10', 'same')] });
    expect(run.state()).toBe('awaitingInput');
    expect(run.record!.waiting).toMatchObject({ kind: 'input', question: expect.stringMatching(/I keep calling search with the same arguments/) });
    run.tell('try another query');
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
  });

  it('a budget: a budget wait with the question; new limits (control budget) answer it', () => {
    const run = new Run();
    run.start({}, { budget: { maxSteps: 1 } });
    expect(run.record!.budget).toEqual({ maxSteps: 1 });
    run.reply({ toolCalls: [call('c1', 'x')] });
    expect(run.record!.usage).toEqual({ inputTokens: 100, outputTokens: 20, costUsd: 0.01 });
    run.toolResult(run.tools()[0]!, { output: 'ok' });
    expect(run.record!.status).toBe('waiting');
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', question: 'Budget reached: 1 of 1 steps. Continue (the limit is raised), or stop?', summary: '1 of 1 steps' });
    expect(run.record!.waiting!.argsHash).toBe(run.record!.waiting!.requestId);
    run.apply({ v: MESSAGE_VERSION, kind: 'control', agentId: 'a1', action: 'budget', budget: { maxSteps: 5 }, by, at: AT });
    expect(run.record!).toMatchObject({ status: 'running', budget: { maxSteps: 5 } });
    expect(run.record!.waiting).toBeUndefined();
    expect(run.state()).toBe('planning');
  });

  it("a label's daily cap: a budget wait; approved, it plans again", () => {
    const run = new Run();
    run.start({}, { labels: { team: 'research' } });
    run.reply({ error: { code: 'ERR_DAILY_BUDGET', message: 'label team=research spent $5.00 of its $5.00 daily cap', retryable: false } });
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', requestId: 'daily-1', argsHash: 'daily-1', summary: 'label team=research spent $5.00 of its $5.00 daily cap' });
    approve(run, run.record!.waiting!);
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
  });

  it('an escalation keeps the wait (and its since) with the new deadline; expiry ends it', () => {
    const run = new Run();
    run.start({ toolPolicies: { search: 'ask' }, settings: { approvalTimeoutMs: 1000, approvalTimeoutOutcome: 'escalate', escalateTo: ['slack'] } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const first = run.record!.waiting!;
    expect(first.deadline).toBe(first.since + 1000);
    const deadline = () => run.timers().find((t) => t.timerId === 'approval-deadline')!;
    const t = deadline();
    run.fire(t);
    expect(run.record!.status).toBe('waiting');
    expect(run.record!.waiting).toMatchObject({ requestId: first.requestId, since: first.since, deadline: run.record!.updatedAt + 1000 });
    run.fire(deadline());
    expect(run.state()).toBe('planning');
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
    expect(run.record!.approvals?.[0]).toMatchObject({ requestId: first.requestId, decision: 'expired' });
  });

  it('paused while waiting stays paused; resumed, it waits again; cancelled, it waits for nothing', () => {
    const run = new Run();
    run.start({ toolPolicies: { search: 'ask' } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const control = (action: 'pause' | 'resume' | 'cancel') => run.apply({ v: MESSAGE_VERSION, kind: 'control', agentId: 'a1', action, by, at: AT });
    control('pause');
    expect(run.record!.status).toBe('paused');
    expect(run.record!.waiting).toMatchObject({ kind: 'approval' });
    control('resume');
    expect(run.record!.status).toBe('waiting');
    control('cancel');
    expect(run.record!.status).toBe('cancelled');
    expect(run.record!.waiting).toBeUndefined();
  });

  it('journals of assistant@2 (which never said it waited) still replay and verify: status running where it asked', () => {
    const run = new Run('a1', createRegistry([assistantV2]));
    run.start({ toolPolicies: { search: 'ask' } }, { budget: { maxSteps: 2 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    expect(run.record!).toMatchObject({ status: 'running', machine: { version: 2 } });
    expect(run.record!.waiting).toBeUndefined();
    approve(run, { requestId: 'tools-1', argsHash: approvalHash([{ tool: 'search', args: { q: 'x' } }]) });
    run.toolResult(run.tools()[0]!, { output: 'ok' });
    run.reply({ toolCalls: [{ id: 'h1', name: 'ask_human', arguments: JSON.stringify({ question: 'Which?' }) }] });
    expect(run.state()).toBe('awaitingInput');
    expect(run.record!.status).toBe('running');
    // Replayed by a registry whose latest is @3: each entry by the version it names, to the same journal entries.
    const replayed = replay(run);
    expect(replayed.status).toBe('running');
    expect(replayed.snapshot).toEqual(run.record!.snapshot);
  });

  it('journals of assistant@3 replay to the same waits', () => {
    const run = new Run();
    run.start({ toolPolicies: { search: 'ask' } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    expect(run.sent.filter((m) => m.kind === 'event.step').map((e) => (e as unknown as Message<'event.step'>).status)).toEqual(['running', 'waiting']);
    const replayed = replay(run);
    expect(replayed.waiting).toEqual(run.record!.waiting);
    expect(replayed.approvals).toEqual(run.record!.approvals);
    expect(replayed.status).toBe('waiting');
  });
});

describe('budgets a person lets the agent pass, and what they cost (assistant@4, #17)', () => {
  const by = { id: 'boss', channel: 'cli' };
  const MINUTE = 60_000;
  const HOURS_2 = 2 * 3_600_000;
  /** The limits the machine itself works with (the record's `budget` is the goal's, with a person's `control budget` merged). */
  const limits = (run: Run) => (run.record!.snapshot as { context: { budget: unknown } }).context.budget;
  /** An agent with a one-minute wall-clock budget whose first tool answers after 61 s: it asks to go on. */
  const pastWallBudget = (registry: AgentRegistry) => {
    const run = new Run('a1', registry);
    run.start({}, { budget: { maxWallMs: MINUTE } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    const req = run.tools()[0]!;
    run.apply({ v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key: req.key, callId: req.callId, tool: req.tool, attempt: req.attempt, durationMs: 5, result: { output: 'ok' }, at: AT + MINUTE + 1000 });
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', summary: 'ran 61 s of 60 s' });
    return run;
  };
  /** The person approves two hours later. */
  const approveLater = (run: Run) =>
    run.apply({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: run.record!.waiting!.requestId, argsHash: run.record!.waiting!.argsHash!, decision: 'approve', by, at: AT + HOURS_2 });

  it('an approved wall-clock budget gives the original allowance again from the decision: it plans, and asks again only a minute later', () => {
    const run = pastWallBudget(defaultRegistry);
    approveLater(run);
    expect(run.state()).toBe('planning');
    expect(run.record!.status).toBe('running');
    expect(limits(run)).toEqual({ maxWallMs: HOURS_2 + MINUTE });
    expect(run.plan().ref).toBe('plan-2');
    // Within the new minute it goes on; past it, it asks again.
    run.apply({ v: MESSAGE_VERSION, kind: 'plan.result', agentId: 'a1', key: run.plan().key, ref: run.plan().ref, at: AT + HOURS_2 + 30_000, result: { message: { role: 'assistant', content: null, toolCalls: [call('c2', 'y')] }, finishReason: 'stop' } });
    const req = run.tools()[0]!;
    run.apply({ v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key: req.key, callId: req.callId, tool: req.tool, attempt: req.attempt, durationMs: 5, result: { output: 'ok' }, at: AT + HOURS_2 + 50_000 });
    expect(run.state()).toBe('planning');
    expect(run.plan().ref).toBe('plan-3');
  });

  it('assistant@3 (kept for its journals) doubled the limit from before the wait, and so asked again at once', () => {
    const run = pastWallBudget(createRegistry([assistantV3]));
    approveLater(run);
    expect(limits(run)).toEqual({ maxWallMs: 2 * MINUTE });
    expect(run.state()).toBe('awaitingApproval');
    expect(run.record!.machine).toEqual({ id: 'assistant', version: 3 });
  });

  it('steps, tokens and cost approved: each gets its allowance again from where usage stands', () => {
    const run = new Run();
    run.start({}, { budget: { maxSteps: 1, maxTokens: 100, maxCostUsd: 0.005 } });
    run.reply({ toolCalls: [call('c1', 'x')] });
    run.toolResult(run.tools()[0]!, { output: 'ok' });
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', summary: '1 of 1 steps, 120 of 100 tokens, spent $0.01 of $0.005' });
    approve(run);
    expect(limits(run)).toEqual({ maxSteps: 2, maxTokens: 220, maxCostUsd: 0.015 });
    expect(run.state()).toBe('planning');
  });

  const approve = (run: Run) =>
    run.apply({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'a1', requestId: run.record!.waiting!.requestId, argsHash: run.record!.waiting!.argsHash!, decision: 'approve', by, at: AT });
  /** A model reply costing `costUsd`. */
  const costly = (run: Run, costUsd: number, reply: { content?: string; toolCalls?: ReturnType<typeof call>[] }) => {
    const p = run.plan();
    return run.apply({
      v: MESSAGE_VERSION, kind: 'plan.result', agentId: 'a1', key: p.key, ref: p.ref, at: AT,
      result: { message: { role: 'assistant', content: reply.content ?? null, ...(reply.toolCalls ? { toolCalls: reply.toolCalls } : {}) }, finishReason: 'stop' },
      usage: { model: 'm', inputTokens: 1, outputTokens: 4, costUsd },
    });
  };

  it('small costs: summed without float noise (usage, events, output) and written with their digits, not $0.00', () => {
    const run = new Run();
    run.start({ notify: [{ channel: 'tg', on: ['budget', 'done'] }] }, { budget: { maxCostUsd: 0.00005 } });
    // Costs as a price table makes them: 0.15/M + 4 × 0.60/M is 0.0000025499999999999997 in floats.
    const noisy = 0.15 / 1_000_000 + (4 * 0.6) / 1_000_000;
    for (let i = 0; i < 100 && run.state() !== 'awaitingApproval'; i++) {
      costly(run, noisy, { toolCalls: [call(`c${i}`, String(i))] });
      run.toolResult(run.tools()[0]!, { output: 'ok' });
    }
    // The 20th call passed $0.00005.
    const usage = run.sent.filter((m) => m.kind === 'event.usage').map((m) => m as unknown as Message<'event.usage'>);
    expect(usage).toHaveLength(20);
    expect(usage[0]!.usage.costUsd).toBe(0.00000255);
    expect(usage.map((u) => u.total.costUsd)).toEqual(Array.from({ length: 20 }, (_, i) => Math.round((i + 1) * 255) / 1e8));
    expect(run.record!.usage).toEqual({ inputTokens: 20, outputTokens: 80, costUsd: 0.000051 });
    // At the limit: the question and its notification say what was spent, to the digit.
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', summary: 'spent $0.000051 of $0.00005' });
    const asked = run.record!.outbox.find((e) => e.message.kind === 'notify.request')!.message as unknown as Message<'notify.request'>;
    expect(asked.text).toContain('Budget reached: spent $0.000051 of $0.00005');
    expect(asked.text).toContain('spent $0.000051 so far');
    approve(run);
    expect(limits(run)).toEqual({ maxCostUsd: 0.000101 });
    costly(run, noisy, { content: 'done' });
    expect(run.record!.status).toBe('done');
    expect(run.record!.output).toMatchObject({ usage: { costUsd: 0.00005355 } });
  });

  it('assistant@3 wrote the same amounts to the cent, as its journals have them', () => {
    const run = new Run('a1', createRegistry([assistantV3]));
    run.start({}, { budget: { maxCostUsd: 0.00005 } });
    for (let i = 0; i < 100 && run.state() !== 'awaitingApproval'; i++) {
      costly(run, 0.15 / 1_000_000 + (4 * 0.6) / 1_000_000, { toolCalls: [call(`c${i}`, String(i))] });
      run.toolResult(run.tools()[0]!, { output: 'ok' });
    }
    expect(run.record!.waiting).toMatchObject({ kind: 'budget', summary: 'spent $0.00 of $0.00' });
  });
});
