import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage, MESSAGE_VERSION } from '@errand/protocols';
import { childAgentId } from '@errand/core';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, type Deployment } from './helpers.js';

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await deploy(srv);
  await d.startHost();
});
afterAll(async () => {
  await d?.stopHosts();
  await srv?.stop();
});

const refs = ['child-1', 'child-2', 'child-3'];

describe('actors messaging actors', () => {
  it('a parent that spawns three children completes after all three', async () => {
    const parentId = await d.submit({ goal: 'delegate', agent: 'parent', input: { children: 3, childAgent: 'sleeper', childInput: { delayMs: 200 } } });
    const done = await d.waitForStatus(parentId, ['done', 'failed']);
    expect(done.status).toBe('done');
    expect(done.output).toEqual({ results: { 'child-1': 'done', 'child-2': 'done', 'child-3': 'done' } });
    for (const ref of refs) {
      const child = await d.record(childAgentId(parentId, ref));
      // Started by its parent: the parent's host proved the goal, so the child's host keeps its word.
      expect(child).toMatchObject({ status: 'done', parent: { agentId: parentId, ref }, submittedBy: { id: parentId, channel: 'agent' }, machine: { id: 'sleeper' } });
      // Each child finished before the parent did.
      expect(child!.updatedAt).toBeLessThanOrEqual(done.updatedAt);
    }
  });

  it('cancelling the parent cancels its children', async () => {
    const parentId = await d.submit({ goal: 'delegate slowly', agent: 'parent', input: { children: 3, childAgent: 'sleeper', childInput: { delayMs: 600_000 } } });
    const children = refs.map((ref) => childAgentId(parentId, ref));
    await Promise.all(children.map((id) => d.waitForStatus(id, ['running'])));
    await d.conn.js.publish(
      d.subjects.agentIn(parentId, 'control'),
      encodeMessage({ v: MESSAGE_VERSION, kind: 'control', agentId: parentId, action: 'cancel', reason: 'no longer needed', at: Date.now() }).data,
    );
    expect((await d.waitForStatus(parentId, ['cancelled'])).children).toEqual(
      Object.fromEntries(refs.map((ref, i) => [ref, { agentId: children[i], status: 'cancelled' }])),
    );
    for (const id of children) {
      const child = await d.waitForStatus(id, ['cancelled']);
      expect(child.error?.message).toBe('no longer needed');
      expect(child.timers).toEqual({});
      // The parent cancelled it: its host proved sending the cancel, so the child's host believes
      // the agent it names (on a server with credentials, as the harness starts by default).
      expect(child.control).toMatchObject({ action: 'cancel', by: { id: parentId, channel: 'agent' } });
    }
  });
});
