import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceSpecs } from '@errand/protocols';
import { provision, type ErrandConnection } from '@errand/nats';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(() => srv.stop());

describe('stream byte limits', () => {
  it('an existing deployment without limits on work and dead letters gets them on the next provision', async () => {
    const prefix = uniquePrefix();
    // As an older Errand provisioned it: no byte limits.
    await provision(conn, { specs: resourceSpecs({ prefix, workMaxBytes: -1, dlqMaxBytes: -1 }) });
    const specs = resourceSpecs({ prefix });
    const report = await provision(conn, { specs });
    const changes = Object.fromEntries(report.items.filter((i) => i.action === 'updated').map((i) => [i.name, i.changes]));
    expect(changes[specs.names.streams.work]).toEqual([{ field: 'max_bytes', from: -1, to: 1024 * 1024 * 1024 }]);
    expect(changes[specs.names.streams.dlq]).toEqual([{ field: 'max_bytes', from: -1, to: 256 * 1024 * 1024 }]);

    const jsm = await conn.jsm();
    expect((await jsm.streams.info(specs.names.streams.work)).config).toMatchObject({ max_bytes: 1024 * 1024 * 1024, discard: 'new' });
    expect((await jsm.streams.info(specs.names.streams.dlq)).config).toMatchObject({ max_bytes: 256 * 1024 * 1024, discard: 'old' });
  });

  it('a full work stream refuses a new command: the publisher gets an error, nothing queued is dropped', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix(), workMaxBytes: 4096 });
    await provision(conn, { specs });
    const subject = `${specs.streams.find((s) => s.name === specs.names.streams.work)!.subjects[0]!.slice(0, -1)}plan`;
    const body = new Uint8Array(1000);
    let stored = 0;
    let refused: unknown;
    for (let i = 0; i < 10 && refused === undefined; i++) {
      try {
        await conn.js.publish(subject, body);
        stored++;
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toBeInstanceOf(Error);
    expect(String((refused as Error).message)).toMatch(/maximum bytes exceeded/i);
    const info = await (await conn.jsm()).streams.info(specs.names.streams.work);
    expect(info.state.messages).toBe(stored);
    expect(info.state.first_seq).toBe(1);
  });
});
