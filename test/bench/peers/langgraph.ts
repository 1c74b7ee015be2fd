/**
 * LangGraph JS with the Postgres saver on this machine's PostgreSQL (its own schema, dropped
 * afterwards). A graph with a `model` node and a `tool` node looping for the agent's turns, one
 * thread per agent, `durability: 'sync'`: each superstep's checkpoint is committed before the next
 * step starts (the default, 'async', writes it while the next step runs). LangGraph has no workers:
 * the bench keeps `concurrency` graph invocations in flight, like Errand's worker slots.
 */
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import pg from 'pg';
import { pool, runTimeoutMs, withTimeout, type LoopOptions, type LoopResult, type LoopSystem } from '../lib/loop.js';
import { model, runAgents, tool, type AgentState, type TurnClock } from './measure.js';
import { postgresPids } from './proc.js';

const PG_URL = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
/** Connections the saver may hold: enough for the invocations in flight to write without queueing for long, well under max_connections (100). */
const POOL_MAX = 32;

const State = Annotation.Root({
  agent: Annotation<string>(),
  turn: Annotation<number>(),
  last: Annotation<string>(),
});

export function langgraphSystem(): LoopSystem & { version(): string } {
  const schema = `bench_lg_${process.pid}_${Date.now().toString(36)}`;
  let db: pg.Pool | undefined;
  let saver: PostgresSaver | undefined;
  let version = '';

  return {
    name: 'langgraph-postgres-saver',
    version: () => `PostgreSQL ${version}`,
    async setup() {
      // idleTimeoutMillis 0: connections stay open, so the backends a run uses are there before it starts (see run).
      db = new pg.Pool({ connectionString: PG_URL, max: POOL_MAX, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 0 });
      version = String((await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?');
      await db.query(`CREATE SCHEMA ${schema}`);
      saver = new PostgresSaver(db, undefined, { schema });
      await saver.setup();
      if (postgresPids().length === 0) throw new Error('no postgres process found on this machine to read the server CPU of');
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      if (!saver || !db) throw new Error('not set up');
      let clock: TurnClock | undefined;
      const graph = new StateGraph(State)
        .addNode('model', (s: AgentState) => {
          clock?.modelStep(s.agent, s.turn);
          return model(s);
        })
        .addNode('tool', (s: AgentState) => tool(s))
        .addEdge(START, 'model')
        .addEdge('model', 'tool')
        .addConditionalEdges('tool', (s: AgentState) => (s.turn < o.turns ? 'model' : END))
        .compile({ checkpointer: saver });
      // Every connection open before the server's CPU is first read, so that each backend the run
      // uses is among the processes read before and after.
      const held = await Promise.all(Array.from({ length: POOL_MAX }, () => db!.connect()));
      for (const c of held) c.release();
      return runAgents(
        this.name,
        o,
        postgresPids(),
        async (c, agents) => {
          clock = c;
          await withTimeout(
            pool(agents.length, o.concurrency, async (i) => {
              const agent = agents[i]!;
              c.start(agent);
              const s = (await graph.invoke({ agent, turn: 0, last: 'goal' }, { configurable: { thread_id: agent }, recursionLimit: 2 * o.turns + 10, durability: 'sync' })) as AgentState;
              if (s.turn !== o.turns) throw new Error(`LangGraph agent ${agent} ended at turn ${s.turn}`);
              c.done(agent);
            }),
            runTimeoutMs(o),
            'LangGraph agents',
          );
        },
        `durability 'sync' (each superstep's checkpoint committed before the next); graph invocations in flight: ${o.concurrency}; pg pool of ${POOL_MAX}; server CPU: every process of the PostgreSQL cluster`,
      );
    },
    async teardown() {
      try {
        await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await db?.end();
        db = undefined;
        saver = undefined;
      }
    },
  };
}
