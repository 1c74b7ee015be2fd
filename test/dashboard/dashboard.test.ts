import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm, type MockStep } from '@errand/llm';
import { headers } from '@errand/nats';
import { Header } from '@errand/protocols';
import { createDeployment, inputMessage, startTestServer, type Deployment, type TestProcess, type TestServer } from '@errand/testing';
import { launchChromium, screenshot, signedIn, waitForText } from './browser.js';

// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// gateway process, host, planner and tool-runner on a real nats-server, with a scripted model.
// Screenshots go to test-results/dashboard/.

const GOAL = 'DASH: update summary.md from notes.md';
const NOTES = 'Release 3 adds a web dashboard.';
const NEW_SUMMARY = '# Summary\n\nRelease 3 adds a web dashboard.\n';

const plan = (read: string, write: string) => ({
  name: 'update_plan',
  arguments: {
    tasks: [
      { id: 'read', title: 'Read the notes', status: read },
      { id: 'write', title: 'Write summary.md (asks first: it overwrites)', status: write },
    ],
  },
});

// A second agent delegates a sub-goal to a child agent under one plan item, then asks a person.
const GOAL2 = 'DASH2: find the number and ask how to show it';
const CHILD_GOAL = 'CHILD-GOAL-7: look the number up';
const plan2 = (find: string, ask: string) => ({
  name: 'update_plan',
  arguments: {
    tasks: [
      { id: 'find', title: 'Find the number', status: find },
      { id: 'ask', title: 'Ask how to show it', status: ask },
    ],
  },
});

// Goals and arguments come from people and models: markup in them must show as text.
const HOSTILE_GOAL = 'XSS-GOAL <img src=x onerror="window.__pwned = 1"> <script>window.__pwned = 2</script>';

// An agent whose model takes its time, to talk to and cancel while it works.
const SLOW_GOAL = 'SLOW-GOAL: think for a long while';

// An agent a person with only a keyboard says no to.
const KEYS_GOAL = 'KEYS-GOAL: replace draft.md with an empty page';

const STEPS: MockStep[] = [
  { match: SLOW_GOAL, delayMs: 20_000, reply: { content: 'Thought.' } },
  { match: KEYS_GOAL, reply: { content: 'Replacing it.', toolCalls: [{ name: 'fs_write', arguments: { path: 'draft.md', overwrite: true, content: '' } }] } },
  { match: KEYS_GOAL, expect: { contains: ['denied'] }, reply: { content: 'Left draft.md as it was.' } },
  { match: 'XSS-GOAL', repeat: true, reply: { content: 'Nothing to do.' } },
  { match: CHILD_GOAL, reply: { content: 'The number is 42.' } },
  { match: GOAL2, reply: { content: 'A helper looks it up.', toolCalls: [plan2('in_progress', 'pending'), { name: 'delegate', arguments: { goal: CHILD_GOAL } }] } },
  {
    match: GOAL2,
    expect: { contains: ['The number is 42.'] },
    reply: { content: 'Now the format.', toolCalls: [plan2('done', 'in_progress'), { name: 'ask_human', arguments: { question: 'Should I show 42 as a table or as text?' } }] },
  },
  { match: GOAL2, expect: { contains: ['as a table, please'] }, reply: { content: 'Here it is as a table: | n | 42 |', toolCalls: [plan2('done', 'done')] } },
  { match: GOAL2, reply: { content: 'Shown as a table.' } },

  { match: GOAL, reply: { content: 'A plan, then the notes.', toolCalls: [plan('in_progress', 'pending'), { name: 'fs_read', arguments: { path: 'notes.md' } }] } },
  {
    match: GOAL,
    expect: { contains: [NOTES] },
    reply: { content: 'Writing the summary.', toolCalls: [plan('done', 'in_progress'), { name: 'fs_write', arguments: { path: 'summary.md', overwrite: true, content: NEW_SUMMARY } }] },
  },
  { match: GOAL, reply: { content: 'Written.', toolCalls: [plan('done', 'done')] } },
  { match: GOAL, reply: { content: 'Done: summary.md says what release 3 adds.' } },
  // A fork asks the model again from where it starts: it is told to stop there.
  { match: GOAL, repeat: true, reply: { content: 'Forked run: nothing more to do.' } },
];

let srv: TestServer;
let mock: MockLlm;
let d: Deployment;
let browser: Browser;
let base: string;
const token = randomBytes(24).toString('base64url');
const contexts: BrowserContext[] = [];
let desktop: BrowserContext;
let agentId: string;
let gateway: TestProcess;
/** Requests the signed-in pages made anywhere but the gateway: the dashboard loads nothing from elsewhere (no CDN). */
const foreign: string[] = [];

beforeAll(async () => {
  srv = await startTestServer();
  mock = await startMockLlm({ steps: STEPS });
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
  await writeFile(join(d.workspace, 'notes.md'), `# Notes\n\n${NOTES}\n`);
  await writeFile(join(d.workspace, 'summary.md'), '# Summary\n\n(nothing yet)\n');
  [, , , gateway] = await Promise.all([
    d.start('host'),
    d.start('planner'),
    d.start('tool-runner'),
    d.start('gateway', { ERRAND_GATEWAY_PORT: '0', ERRAND_GATEWAY_TOKENS: `tester:${token}` }),
  ]);
  const ready = JSON.parse(await gateway.waitForLine(/"msg":"gateway ready"/)) as { url: string };
  base = ready.url;
  browser = await launchChromium();
  desktop = await signedIn(browser, base, token, { viewport: { width: 1280, height: 900 } });
  desktop.on('request', (r) => {
    if (!r.url().startsWith(`${base}/`) && !r.url().startsWith('data:')) foreign.push(r.url());
  });
  contexts.push(desktop);
}, 120_000);

// A failed test leaves a screenshot of every open page, to see what the page showed instead.
// Each test's pages are closed after it: every page holds event streams, and Chromium keeps at
// most six connections to one HTTP/1.1 server per context.
afterEach(async (ctx) => {
  const failed = ctx.task.result?.state === 'fail';
  const slug = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
  let n = 0;
  for (const c of contexts) {
    for (const p of c.pages()) {
      if (failed) await screenshot(p, `failed-${slug}-${n++}`).catch(() => undefined);
      await p.close();
    }
  }
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await d?.stopAll();
  await mock?.close();
  await srv?.stop();
});

describe('the dashboard in a browser', () => {
  it('without a session says to open the login link', async () => {
    const anonymous = await browser.newContext({ baseURL: base });
    contexts.push(anonymous);
    const page = await anonymous.newPage();
    await page.goto('/');
    await waitForText(page.getByRole('alert'), /Open the login link\s+errand up\s+printed/);
    await screenshot(page, '0-not-signed-in');
  });

  it('submits a goal from the page, shows its tree growing, is approved from a 375 px phone, and shows the agent finish', async () => {
    const page = await desktop.newPage();
    await page.goto('/');
    const form = page.locator('#new-goal');
    await form.getByLabel('Goal').fill(GOAL);
    await form.getByLabel(/^Agent/).fill('assistant');
    await form.getByLabel(/^Tools/).fill('fs_read, fs_write');
    await form.getByRole('button', { name: 'Start agent' }).click();
    await page.waitForURL(/\/agents\/[^/?]+$/);
    agentId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]!);
    // Started by the signed-in person, as the gateway vouched for them.
    await waitForText(page.locator('.agent-head .facts'), 'started by tester (gateway)');

    // The tree grows: the plan's items, then the read under the item it belongs to, with its status.
    const tree = page.locator('#tree');
    await waitForText(tree.locator('[data-task-id="read"]'), 'Read the notes');
    await waitForText(tree.locator('[data-task-id="read"] [data-call-id]'), /fs_read\s*ok/);
    await screenshot(page, '1-agent-tree-growing');

    // The agents table, open in another tab, shows it needs a person.
    const table = await desktop.newPage();
    await table.goto('/');
    const row = table.locator(`tr[data-agent-id="${agentId}"]`);
    await waitForText(row, 'needs you');
    await waitForText(row, GOAL);

    // A phone opens the agent (as from a notification link) and approves the exact call.
    const phone = await signedIn(browser, base, token, { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    contexts.push(phone);
    const mobile = await phone.newPage();
    await mobile.goto(`/agents/${encodeURIComponent(agentId)}`);
    const decision = mobile.locator('#decision');
    await waitForText(decision, 'Needs your approval');
    await waitForText(decision.locator('pre.json'), '"overwrite": true');
    await waitForText(decision.locator('pre.json'), '"path": "summary.md"');
    await waitForText(decision.locator('.tool-name'), 'fs_write');
    // Nothing is wider than the phone: no sideways scrolling to reach the buttons.
    expect(await mobile.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    const approve = decision.getByRole('button', { name: 'Approve' });
    const box = await approve.boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 375 && box.height >= 40).toBe(true);
    await screenshot(mobile, '2-approve-on-a-phone');
    await approve.tap();
    // (The panel's 'Sent: approved' lasts only until the agent takes the decision, which can be at
    // once — CI once missed it: the phone's page follows the agent to its end instead.)
    await mobile.locator('.agent-head .facts .status-done').waitFor();

    // The desktop page follows to the end without a reload.
    await page.locator('.agent-head .facts .status-done').waitFor();
    await waitForText(page.locator('#outcome'), 'summary.md says what release 3 adds');
    await waitForText(page.locator('#tree [data-task-id="write"]'), /done/);
    await waitForText(page.locator('#tree [data-task-id="write"] [data-call-id]'), /fs_write\s*ok/);
    await screenshot(page, '3-agent-done');
    expect(await readFile(join(d.workspace, 'summary.md'), 'utf8')).toBe(NEW_SUMMARY);
    const record = await d.record(agentId);
    expect(JSON.stringify(record?.approvals)).toContain('"tester"');

    // The table in the other tab followed without a reload: done, and no longer waiting for anyone.
    await waitForText(row, /done/);
    expect(await row.textContent()).not.toContain('needs you');
    await screenshot(table, '4-agents-table');
    expect(mock.failures).toEqual([]);
  }, 120_000);

  it('steps through the finished run in the replay view, forks it, and diffs the fork with it', async () => {
    const page = await desktop.newPage();
    await page.goto(`/replay/${encodeURIComponent(agentId)}`);
    await waitForText(page.getByRole('status'), 'Verified');
    const heading = page.locator('.step-detail h2');
    await waitForText(heading, 'Step 1: goal');
    await waitForText(page.locator('.step-detail'), GOAL);
    // Forward, one step at a time, to what the model answered and to what fs_read returned.
    const seen: string[] = [];
    for (let i = 0; i < 12 && !seen.some((h) => h.includes('fs_read returned')); i++) {
      const before = (await heading.textContent()) ?? '';
      // By keyboard: the step buttons are real buttons.
      await page.getByRole('button', { name: 'Next step' }).focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction((prev) => document.querySelector('.step-detail h2')?.textContent !== prev, before);
      const now = (await heading.textContent()) ?? '';
      seen.push(now);
      if (now.includes('model answered')) await waitForText(page.locator('.step-detail'), 'What the model answered');
    }
    expect(seen.some((h) => h.includes('model answered'))).toBe(true);
    expect(seen.some((h) => h.includes('fs_read returned'))).toBe(true);
    await waitForText(page.locator('.step-detail pre.json'), NOTES);
    // What the model had been told up to there: the goal and its own first answer.
    const told = page.locator('.step-detail details').filter({ hasText: 'What the model had been told' });
    await told.locator('summary').click();
    await waitForText(told.locator('ol.talk li'), GOAL);
    await waitForText(told.locator('ol.talk li'), 'A plan, then the notes.');
    await screenshot(page, '5-replay-step');
    const forkAt = Number(/Step (\d+)/.exec((await heading.textContent()) ?? '')?.[1]);

    await page.getByRole('button', { name: `Fork from step ${forkAt}` }).click();
    // (A refused fork shows its error in the step's panel: fail with it rather than a timeout.)
    await Promise.race([
      page.locator('.step-detail .error').waitFor().then(async () => {
        throw new Error(`the fork was refused: ${await page.locator('.step-detail .error').textContent()}`);
      }),
      page.waitForURL((url) => url.pathname.startsWith('/agents/')),
    ]);
    await page.waitForURL((url) => url.pathname.startsWith('/agents/') && !url.pathname.endsWith(`/${encodeURIComponent(agentId)}`));
    const forkId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]!);
    await waitForText(page.locator('.agent-head .links'), `fork of ${agentId} at step ${forkAt}`);
    // The fork's goal went straight to its inbox: still the person who forked it.
    await waitForText(page.locator('.agent-head .facts'), 'started by tester (gateway)');
    await page.locator('.agent-head .facts .status-done').waitFor();
    await screenshot(page, '6-fork');

    await page.getByRole('link', { name: 'diff with it' }).click();
    await page.waitForURL((url) => url.pathname === `/replay/${encodeURIComponent(forkId)}` && url.searchParams.get('diff') === agentId);
    const diff = page.locator('#diff');
    await waitForText(diff, /The runs (differ from step \d+ on|take the same path)/);
    await diff.locator('table.diff tbody tr').first().waitFor();
    await screenshot(page, '7-diff');
  }, 120_000);

  it('nests a child agent under its plan item, pauses and resumes a waiting agent, and takes an answer typed on the page', async () => {
    const id = await d.submit({ goal: GOAL2, agent: 'assistant' });
    const page = await desktop.newPage();
    await page.goto(`/agents/${encodeURIComponent(id)}`);
    const child = page.locator('#tree [data-task-id="find"] [data-agent-id]');
    await waitForText(child, CHILD_GOAL);
    await waitForText(child, /done/);
    const decision = page.locator('#decision');
    await waitForText(decision, 'Should I show 42 as a table or as text?');
    await screenshot(page, '10-child-and-question');

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('.agent-head .facts .status-paused').waitFor();
    // Who paused it: the signed-in person, as the record says.
    await waitForText(page.locator('#controls'), 'Paused by tester (gateway)');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('.agent-head .facts .status-waiting').waitFor();

    await decision.getByLabel('Your answer').fill('as a table, please');
    await decision.getByRole('button', { name: 'Answer' }).click();
    await page.locator('.agent-head .facts .status-done').waitFor();
    await waitForText(page.locator('#outcome'), 'Shown as a table.');
    await waitForText(page.locator('#tree [data-task-id="ask"]'), /done/);
    await screenshot(page, '11-answered-and-done');
    const record = await d.record(id);
    expect(JSON.stringify(record?.snapshot)).toContain('as a table, please');
    expect(mock.failures).toEqual([]);
  }, 90_000);

  it('keeps the agents table current (also after the tab was hidden), filters and searches it, and shows markup in a goal as text', async () => {
    const page = await desktop.newPage();
    await page.goto('/');
    const rows = page.locator('table.agents tbody tr');
    await rows.first().waitFor();
    // A goal submitted elsewhere (here over NATS) appears in the open table without a reload.
    const hostile = await d.submit({ goal: HOSTILE_GOAL, agent: 'assistant' });
    await page.locator(`tr[data-agent-id="${hostile}"]`).waitFor();
    await d.waitForStatus(hostile, ['done']);
    await waitForText(page.locator(`tr[data-agent-id="${hostile}"]`), /done/);
    await waitForText(page.locator(`tr[data-agent-id="${hostile}"] td.goal a`), '<img src=x onerror="window.__pwned = 1">');
    expect(await page.locator('table.agents img, table.agents script').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // A hidden tab lets go of its stream; shown again, it catches up on what happened meanwhile.
    const setVisibility = (state: 'hidden' | 'visible') =>
      page.evaluate((v) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => v });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await setVisibility('hidden');
    await waitForText(page.locator('#agents .live'), 'paused');
    const meanwhile = await d.submit({ goal: 'XSS-GOAL while the tab was hidden', agent: 'assistant' });
    await d.waitForStatus(meanwhile, ['done']);
    await setVisibility('visible');
    await waitForText(page.locator('#agents .live'), 'live');
    await waitForText(page.locator(`tr[data-agent-id="${meanwhile}"]`), /done/);

    // Search: only the goal that has the text.
    await page.getByRole('searchbox', { name: 'Search' }).fill('DASH2');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForFunction(() => document.querySelectorAll('table.agents tbody tr').length === 1);
    await waitForText(rows, GOAL2);
    // Status: none failed; the finished ones are listed under done.
    await page.getByRole('searchbox', { name: 'Search' }).fill('');
    await page.getByLabel('Status').selectOption('failed');
    await waitForText(page.locator('#agents'), 'No agents match these filters');
    await page.getByLabel('Status').selectOption('done');
    await page.locator(`tr[data-agent-id="${hostile}"]`).waitFor();
    await page.locator(`tr[data-agent-id="${agentId}"]`).waitFor();
    await screenshot(page, '12-agents-filtered');
    // On a phone the table is one block per row, each value named, and nothing is wider than the screen.
    await page.setViewportSize({ width: 375, height: 740 });
    await waitForText(page.locator(`tr[data-agent-id="${agentId}"] td[data-label="Steps"]`), /\d/);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await screenshot(page, '13-agents-on-a-phone');
  }, 60_000);

  it('with the keyboard alone: denies a pending call; the timeline shows each step (event in, state, commands out); the live logs; light by default', async () => {
    await writeFile(join(d.workspace, 'draft.md'), 'keep me\n');
    const id = await d.submit({ goal: KEYS_GOAL, agent: 'assistant', tools: ['fs_write'] });
    const page = await desktop.newPage();
    await page.goto(`/agents/${encodeURIComponent(id)}`);
    await waitForText(page.locator('#decision'), '"path": "draft.md"');
    // Light from the system setting (the browser's default), as dark is on the system page.
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(246, 247, 249)');

    // Tab from the top of the page to Deny: it is reached in reading order, after Approve, and its focus is drawn.
    const focused = () => page.evaluate(() => (document.activeElement as HTMLElement | null)?.textContent?.trim() ?? '');
    const reached: string[] = [];
    for (let i = 0; i < 40 && reached.at(-1) !== 'Deny'; i++) {
      await page.keyboard.press('Tab');
      reached.push(await focused());
    }
    expect(reached[0]).toBe('Skip to content');
    expect(reached.at(-1)).toBe('Deny');
    expect(reached.indexOf('Approve')).toBe(reached.length - 2);
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await page.keyboard.press('Enter');
    // (The panel's 'Sent: denied' can be gone already: the agent takes the decision at once.)
    await page.locator('.agent-head .facts .status-done').waitFor();
    await waitForText(page.locator('#outcome'), 'Left draft.md as it was.');
    expect(await readFile(join(d.workspace, 'draft.md'), 'utf8')).toBe('keep me\n');
    const approval = (await d.journal(id)).map((j) => j.event as { type: string; decision?: string; by?: { id: string } }).find((e) => e.type === 'approval');
    expect(approval).toMatchObject({ decision: 'deny', by: { id: 'tester' } });
    // The denied call is in the tree, as a call that never ran, with who said no.
    const denied = page.locator('#tree li.tool-denied');
    await waitForText(denied, 'fs_write');
    await waitForText(denied, 'denied by tester: it did not run');
    await expect(page.locator('#tree li.tool').count()).resolves.toBe(1);

    // The timeline: one line per step, the event that came in -> the state after -> the commands it sent.
    const steps = page.locator('#timeline ol.timeline > li');
    await waitForText(steps.first(), /step 1\b.*→.*\bplanning\s*running\s*→\s*plan\.request/s);
    const journaled = (await d.journal(id)).length;
    await page.waitForFunction((n) => document.querySelectorAll('#timeline ol.timeline > li').length === n, journaled);
    // The step that took the decision opens with the keyboard, to the event, the state and the commands in full.
    const decided = steps.filter({ hasText: /\bapproval\s*→.*\bplanning\b/s });
    await expect(decided.count()).resolves.toBe(1);
    await decided.locator('summary').focus();
    await page.keyboard.press('Enter');
    await waitForText(decided, 'Event in');
    await waitForText(decided.locator('pre.json').first(), '"decision": "deny"');
    await waitForText(decided, 'State after');
    await waitForText(decided.locator('pre.json').last(), '"kind": "plan.request"');
    // The services' log lines about this agent, as they ship them.
    await waitForText(page.locator('#logs .log'), /\bhost\b/);
    await screenshot(page, '15-denied-by-keyboard-timeline-logs');
    expect(mock.failures).toEqual([]);
  }, 60_000);

  it('shows usage against the budget, tells a working agent something and cancels it from the page', async () => {
    const id = await d.submit({ goal: SLOW_GOAL, agent: 'assistant', budget: { maxSteps: 40, maxTokens: 50_000 } });
    const page = await desktop.newPage();
    await page.goto(`/agents/${encodeURIComponent(id)}`);
    await page.locator('.agent-head .facts .status-running').waitFor();
    // Usage against the goal's budget.
    await waitForText(page.locator('#usage'), 'of 50,000');
    await waitForText(page.locator('#usage'), 'of 40');
    const controls = page.locator('#controls');
    await controls.getByLabel('Tell the agent').fill('Keep it short, please.');
    await controls.getByRole('button', { name: 'Tell' }).click();
    await waitForText(controls.getByRole('status'), 'Told.');
    await controls.getByLabel(/^Reason/).fill('not needed any more');
    page.once('dialog', (dialog) => void dialog.accept());
    await controls.getByRole('button', { name: 'Cancel agent' }).click();
    await page.locator('.agent-head .facts .status-cancelled').waitFor();
    await waitForText(page.locator('#outcome'), 'Cancelled by tester (gateway)');
    await screenshot(page, '14-cancelled');
    const record = await d.record(id);
    expect(record?.status).toBe('cancelled');
    expect(JSON.stringify(record)).toContain('not needed any more');
  }, 60_000);

  it('shows a dead-lettered message with its reason on the system page', async () => {
    const h = headers();
    h.set(Header.ContentType, 'application/json');
    await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), new TextEncoder().encode('{"v":1,"kind":"input",'), { headers: h });
    const page = await desktop.newPage();
    await page.goto('/system');
    const dlq = page.locator('#dlq');
    // The page reads /api/system again every few seconds: the entry appears without a reload.
    await waitForText(dlq.locator('li'), /not valid JSON/);
    await waitForText(dlq.locator('li'), agentId);
    await waitForText(page.locator('#services'), 'host');
    // The server's version, each service's replicas and version, and every consumer's backlog.
    await waitForText(page.locator('#server dd').first(), d.conn.features.version.text);
    await waitForText(page.locator('#services .label'), /errand-host × 1/);
    await waitForText(page.locator('#services .label'), /errand-tool-runner × 1/);
    await waitForText(page.locator('#services td[data-label="Version"]'), /^\d+\.\d+\.\d+/);
    expect(await page.locator('#backlogs tbody tr').count()).toBeGreaterThan(0);
    // The durability warning exactly when the server can lose acknowledged data (a server that cannot be told to sync).
    const warning = page.getByRole('alert').filter({ hasText: 'Durability:' });
    if (d.conn.features.configurableSync) expect(await warning.count()).toBe(0);
    else await waitForText(warning, /syncs JetStream to disk only every 60 s/);
    await screenshot(page, '8-system-dlq');
    // Dark, from the system setting.
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(15, 18, 22)');
    await screenshot(page, '9-system-dark');
  }, 60_000);

  it('an agent page follows across a gateway restart: it reconnects where it was (Last-Event-ID), not from the start, and misses no step', async () => {
    const id = await d.submit({ goal: 'count to four', agent: 'tally', input: { expect: 4 } });
    const page = await desktop.newPage();
    // Where each (re)connection of the agent's stream that reached a gateway asked to start:
    // EventSource's Last-Event-ID, or the page's ?after=. (A retry refused while the gateway is down
    // never reaches one, and the browser does not report the headers of a request that got no answer.)
    const opened: Promise<string | undefined>[] = [];
    page.on('response', (res) => {
      const r = res.request();
      if (!r.url().includes(`/api/agents/${encodeURIComponent(id)}/events`)) return;
      opened.push(r.allHeaders().then((h) => h['last-event-id'] ?? new URL(r.url()).searchParams.get('after') ?? undefined));
    });
    await page.goto(`/agents/${encodeURIComponent(id)}`);
    const steps = page.locator('#timeline ol.timeline > li');
    const showsEveryStep = async () => {
      const n = (await d.journal(id)).length;
      await page.waitForFunction((count) => document.querySelectorAll('#timeline ol.timeline > li').length === count, n);
      return n;
    };
    await d.send(inputMessage(id, '1'));
    await d.waitForRecord(id, (r) => r.step >= 2);
    expect(await showsEveryStep()).toBeGreaterThanOrEqual(2);
    await waitForText(page.locator('.agent-head .live'), 'live');

    // The gateway dies; the agent goes on meanwhile; the page says it is not live.
    const port = new URL(base).port;
    // Connections opened so far (the first, and any retry before an event came, under load) may start at the beginning.
    const beforeKill = opened.length;
    gateway.signal('SIGKILL');
    await gateway.exited;
    await page.locator('.agent-head .live:not(.live-live)').waitFor();
    await d.send(inputMessage(id, '2'));
    await d.send(inputMessage(id, '3'));
    await d.waitForRecord(id, (r) => r.step >= 4);
    gateway = await d.start('gateway', { ERRAND_GATEWAY_PORT: port, ERRAND_GATEWAY_TOKENS: `tester:${token}` });
    await gateway.waitForLine(/"msg":"gateway ready"/);

    // Back on the same address (the session cookie still holds): the page catches up, then follows to the end.
    await waitForText(page.locator('.agent-head .live'), 'live');
    await d.send(inputMessage(id, '4'));
    await page.locator('.agent-head .facts .status-done').waitFor();
    expect(await showsEveryStep()).toBe(5);
    await waitForText(steps.last(), /done/);
    // The first connection started at the beginning; every one after the page had events (once the
    // gateway died) from an event it had, not from the start again: the restarted gateway was asked
    // to resume.
    const from = await Promise.all(opened);
    expect(from[0]).toBeUndefined();
    expect(from.length).toBeGreaterThan(beforeKill);
    for (const at of from.slice(beforeKill)) expect(Number(at), JSON.stringify(from)).toBeGreaterThan(0);
    await screenshot(page, '16-after-gateway-restart');
    expect(foreign).toEqual([]);
  }, 60_000);
});
