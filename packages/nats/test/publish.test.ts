import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCommandVerifier,
  createSubjects,
  decodeMessage,
  encodeRecord,
  generateCommandKeys,
  createCommandSigner,
  Header,
  JSON_CONTENT_TYPE,
  messageIds,
  MESSAGE_VERSION,
  resourceSpecs,
  RECORD_FORMAT,
  type AgentRecord,
  type Message,
} from '@errand/protocols';
import { IDENTITY_HEADER, identityVerifier, openBucket, PROOF_HEADER, provision, publishMessage, readRecord, readStoredRecord, type ErrandConnection } from '@errand/nats';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer({ auth: true });
  conn = await srv.connect(); // the admin identity: its creds make the proofs
});
afterAll(() => srv.stop());

const input = (agentId: string, text: string): Message<'input'> => ({ v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'u1', channel: 'cli' }, at: 1 });

async function setup() {
  const prefix = uniquePrefix();
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  return { specs, subjects: createSubjects(prefix) };
}

describe('publishMessage', () => {
  it('sends the encoded message with its id, trace, content type, signature and proof of the bytes sent', async () => {
    const { specs, subjects } = await setup();
    const keys = generateCommandKeys();
    const subject = subjects.agentIn('a1', 'input');
    const message = input('a1', 'hello');
    const traceparent = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
    const ack = await publishMessage(conn, subject, message, {
      msgId: messageIds.goal('a1'),
      traceparent,
      format: 'json',
      headers: { 'X-Extra': 'yes' },
      signer: createCommandSigner(keys.privateKeyPem),
      prover: conn.identity!,
    });
    expect(ack.duplicate).toBe(false);
    const again = await publishMessage(conn.js, subject, message, { msgId: messageIds.goal('a1') });
    expect(again.duplicate).toBe(true);

    const jsm = await conn.jsm();
    const stored = await jsm.streams.getMessage(specs.names.streams.inbox, { seq: ack.seq });
    const h = stored!.header;
    expect(h.get(Header.MsgId)).toBe('goal:a1');
    expect(h.get(Header.Traceparent)).toBe(traceparent);
    expect(h.get(Header.ContentType)).toBe(JSON_CONTENT_TYPE);
    expect(h.get('X-Extra')).toBe('yes');
    expect(decodeMessage(stored!.data, { contentType: h.get(Header.ContentType) })).toEqual(message);
    expect(createCommandVerifier(keys.publicKey).check(stored!.data, h.get(Header.Signature)).ok).toBe(true);
    expect(h.get(IDENTITY_HEADER)).not.toBe('');
    expect(h.get(PROOF_HEADER)).not.toBe('');
    const proof = identityVerifier(conn.identity!.account).check(stored!.data, h);
    expect(proof.ok).toBe(true);
  });

  it('sends msgpack with no headers it does not need', async () => {
    const { specs, subjects } = await setup();
    const ack = await publishMessage(conn, subjects.agentIn('a2', 'input'), input('a2', 'plain'));
    const stored = await (await conn.jsm()).streams.getMessage(specs.names.streams.inbox, { seq: ack.seq });
    expect(stored!.header.get(Header.ContentType)).toBe('');
    expect(stored!.header.get(Header.MsgId)).toBe('');
    expect(decodeMessage(stored!.data)).toEqual(input('a2', 'plain'));
  });
});

describe('readRecord', () => {
  it('reads a record with its revision, and nothing for an absent or deleted one', async () => {
    const { specs } = await setup();
    const agents = await openBucket(conn, specs.names.buckets.agents);
    const record = {
      format: RECORD_FORMAT, agentId: 'r1', goal: 'g', machine: { id: 'm', version: 1 }, status: 'running', step: 1,
      createdAt: 1, updatedAt: 1, applied: [], outbox: [], snapshot: { value: 'idle' }, children: {}, timers: {}, pending: {}, deferred: [],
    } as unknown as AgentRecord;
    const revision = await agents.create('r1', encodeRecord(record));
    expect(await readStoredRecord(agents, 'r1')).toEqual({ record: expect.objectContaining({ agentId: 'r1', step: 1 }), revision });
    expect((await readRecord(agents, 'r1'))?.snapshot).toEqual({ value: 'idle' });
    expect(await readRecord(agents, 'nobody')).toBeUndefined();
    await agents.delete('r1');
    expect(await readRecord(agents, 'r1')).toBeUndefined();
  });
});
