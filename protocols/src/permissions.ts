import { DISCOVERY_PREFIX, discoverySubject, DiscoveryVerb } from './discovery.js';
import { resourceNames } from './resources.js';
import { createSubjects, DEFAULT_PREFIX } from './subjects.js';

/**
 * Who may do what on the wire. Every Errand process connects as one of these roles, and the NATS
 * server enforces the subjects each may publish and subscribe — so an identity that is not a
 * planner cannot answer a model call, one that is not a tool-runner cannot answer a tool call, and
 * only people (through the notifier, the gateway or an operator's CLI) can approve.
 *
 * The table is part of the wire contract: it is derived from the same subject builders and resource
 * names as everything else, so a subject added here is added everywhere. `errand creds` mints one
 * NATS user per role with exactly these permissions; docs/security.md explains each.
 */
export const ROLES = ['admin', 'host', 'planner', 'tool-runner', 'notifier', 'gateway', 'operator', 'submitter'] as const;
export type Role = (typeof ROLES)[number];

/** What each role is for, as `errand creds` prints it. */
export const ROLE_PURPOSE: Readonly<Record<Role, string>> = {
  admin: 'provisions streams and buckets, rotates credentials, removes old agents (errand provision, gc); never given to a service',
  host: 'runs agents: takes inbox messages, writes agent records, publishes commands and progress, answers submits',
  planner: 'answers model calls (plan results) and streams tokens',
  'tool-runner': 'answers tool calls (tool results) and keeps its tools in the catalog',
  notifier: 'sends notifications and delivers the decisions and answers people give in chat',
  gateway: 'the HTTP API and dashboard: submits, decides, answers and cancels for the people it authenticates',
  operator: "a person's CLI: reads everything, approves, answers, cancels, forks, sets tool policies",
  submitter: "an application: submits goals, tells its agents things, reads progress; may not approve",
};

export interface SubjectPermission {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

export interface RolePermissions {
  readonly role: Role;
  readonly pub: SubjectPermission;
  readonly sub: SubjectPermission;
  /**
   * May answer requests it received (core request/reply: the host answering submits, every role
   * answering service discovery). Always true since discovery; kept for the JWT's `resp` setting.
   */
  readonly respond: boolean;
  /** The inbox prefix the role's connections use; only they may subscribe under it. */
  readonly inboxPrefix: string;
}

/** The prefix of reply subjects for a NATS user: each identity reads only its own replies. */
export function inboxPrefixFor(user: string): string {
  return `_INBOX_${user.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

const JS = '$JS.API';

/**
 * Service discovery (ADR-32, see discovery.ts): every role subscribes to `$SRV.>` and answers what
 * it is asked (a reply goes to the asker's inbox, which the `respond` permission allows once per
 * request); asking — `$SRV.PING` / `$SRV.INFO`, for every name or one — is for the roles that
 * report on a deployment: the gateway (GET /api/system), an operator's CLI (`errand status`) and
 * admin. The answers arrive under the asker's own inbox prefix, like every other reply.
 */
const DISCOVERY_LISTEN = [`${DISCOVERY_PREFIX}.>`];
const DISCOVERY_ASK = [DiscoveryVerb.Ping, DiscoveryVerb.Info].flatMap((verb) => [discoverySubject(verb), `${discoverySubject(verb)}.>`]);

/** Reading a stream (and the KV gets / object reads on it): info, direct and message gets. */
function readStream(stream: string): string[] {
  return [`${JS}.STREAM.INFO.${stream}`, `${JS}.STREAM.MSG.GET.${stream}`, `${JS}.DIRECT.GET.${stream}`, `${JS}.DIRECT.GET.${stream}.>`];
}

/**
 * Creating and reading consumers of a stream, pulling from them and acknowledging. Written with
 * token wildcards (`CONSUMER.*.S` covers CREATE, NAMES and LIST; `CONSUMER.*.S.>` CREATE with a
 * name, INFO and DELETE; `CONSUMER.*.*.S.>` DURABLE.CREATE and MSG.NEXT) so that a user's JWT
 * stays well inside the server's 4 KiB limit for a CONNECT line.
 */
function consumeStream(stream: string): string[] {
  return [`${JS}.CONSUMER.*.${stream}`, `${JS}.CONSUMER.*.${stream}.>`, `${JS}.CONSUMER.*.*.${stream}.>`, `$JS.ACK.${stream}.>`, `$JS.FC.${stream}.>`];
}

/** JetStream calls that change or destroy streams: only `admin` (provisioning) may make them. */
const MANAGE_STREAMS = [`${JS}.STREAM.CREATE.>`, `${JS}.STREAM.UPDATE.>`, `${JS}.STREAM.DELETE.>`, `${JS}.STREAM.SNAPSHOT.>`, `${JS}.STREAM.RESTORE.>`, `${JS}.ACCOUNT.>`, `${JS}.META.>`, `${JS}.SERVER.>`];

/** Taking work from a work queue (a pull removes the message): only the service whose work it is. */
function takeWork(stream: string): string[] {
  return [
    `${JS}.CONSUMER.CREATE.${stream}`,
    `${JS}.CONSUMER.CREATE.${stream}.>`,
    `${JS}.CONSUMER.DURABLE.CREATE.${stream}.>`,
    `${JS}.CONSUMER.DELETE.${stream}.>`,
    `${JS}.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.ACK.${stream}.>`,
  ];
}

/** Reading everything without changing anything: the JetStream API less what writes or takes work. */
function readAll(workQueues: string[]): { allow: string[]; deny: string[] } {
  return {
    allow: [`${JS}.>`, '$JS.ACK.>', '$JS.FC.>'],
    deny: [...MANAGE_STREAMS, `${JS}.STREAM.PURGE.>`, `${JS}.STREAM.MSG.DELETE.>`, ...workQueues.flatMap(takeWork)],
  };
}

/** Reading a KV bucket: gets, history, keys and watches. */
function readBucket(bucket: string): string[] {
  return [...readStream(`KV_${bucket}`), ...consumeStream(`KV_${bucket}`)];
}

/** Writing keys of a bucket (`>`: every key). A KV put, delete or purge is a publish on its subject. */
function writeBucket(bucket: string, keys = '>'): string[] {
  return [`$KV.${bucket}.${keys}`];
}

/**
 * The NATS permissions of `role` for a deployment under `prefix`. Allow lists only: what is not
 * allowed is refused by the server (the client sees a permissions violation, a JetStream call
 * times out), and `deny` spells out the doors that matter most so a wider allow can never open them.
 */
export function rolePermissions(role: Role, options: { prefix?: string; user?: string } = {}): RolePermissions {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const s = createSubjects(prefix);
  const n = resourceNames(prefix);
  const inboxPrefix = inboxPrefixFor(options.user ?? role);
  const { inbox, events, work, logs, dlq } = n.streams;
  const { agents, tools, effects, limits, schedules } = n.buckets;
  const results = n.objectStores.results;
  const base = { pub: [`${JS}.INFO`], sub: [`${inboxPrefix}.>`, ...DISCOVERY_LISTEN] };
  const logsOf = (service: string) => s.logs(service);
  const deadLetters = s.dlq();
  const cancels = s.agentInAll(undefined, 'control');
  const progress = [s.agentEventAll(), `${prefix}.agent.*.stream`];
  const worker = (service: string) => [...consumeStream(work), ...readStream(work), ...readBucket(effects), ...writeBucket(effects), logsOf(service), deadLetters];
  const reader = readAll([work, inbox]);
  const decide = [s.agentInAll(undefined, 'approval'), s.agentInAll(undefined, 'input'), s.agentInAll(undefined, 'control')];

  let pub: string[];
  let sub: string[] = [];
  // Every role answers discovery requests (and the host, submits).
  const respond = true;
  // Answers to commands come only from the service that ran them: nobody else may publish them.
  const denyPub: string[] = [];
  const answers = { plan: s.agentInAll(undefined, 'plan'), tool: s.agentInAll(undefined, 'tool') };
  switch (role) {
    case 'admin':
      pub = ['>'];
      sub = ['>'];
      break;
    case 'host':
      // The host is the core of a deployment: the JetStream API less stream management.
      pub = [
        `${JS}.>`,
        '$JS.ACK.>',
        '$JS.FC.>',
        ...writeBucket(agents),
        ...writeBucket(effects),
        // Schedules: a host advances each one's next fire (compare-and-set) and submits its goals
        // through the intake like any client, so a fire's agent id is claimed once.
        ...writeBucket(schedules),
        s.submit(),
        `$O.${results}.>`,
        // What a step sends: goals of children, their cancels, results to parents, messages
        // between agents, timers firing, progress and the journal, and every command.
        s.agentInAll(undefined, 'goal'),
        s.agentInAll(undefined, 'child'),
        s.agentInAll(undefined, 'message'),
        s.agentInAll(undefined, 'control'),
        s.agentInAll(undefined, 'timer'),
        s.agentEventAll(),
        `${prefix}.work.>`,
        logsOf('host'),
        deadLetters,
      ];
      sub = [s.submit()];
      denyPub.push(...MANAGE_STREAMS, answers.plan, answers.tool, s.agentInAll(undefined, 'approval'), s.agentInAll(undefined, 'input'), ...writeBucket(tools), ...writeBucket(limits));
      break;
    case 'planner':
      // The shared rate limit is the planner's alone.
      pub = [...worker('planner'), answers.plan, `${prefix}.agent.*.stream`, ...readStream(`KV_${limits}`), ...writeBucket(limits)];
      sub = [cancels];
      denyPub.push(answers.tool, ...decide, `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(tools));
      break;
    case 'tool-runner':
      pub = [
        ...worker('tool-runner'),
        answers.tool,
        ...readBucket(tools),
        ...writeBucket(tools, 'tool.*'),
        ...writeBucket(tools, 'runner.*'),
        ...readStream(`OBJ_${results}`),
        ...consumeStream(`OBJ_${results}`),
        `$O.${results}.>`,
      ];
      sub = [cancels];
      denyPub.push(answers.plan, ...decide, `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(limits));
      break;
    case 'notifier':
      pub = [...worker('notifier'), ...readBucket(agents), s.agentInAll(undefined, 'approval'), s.agentInAll(undefined, 'input')];
      sub = [cancels];
      denyPub.push(answers.plan, answers.tool, `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(tools), ...writeBucket(limits));
      break;
    case 'gateway':
      // Goals too: a fork from the dashboard publishes its goal itself, as `errand fork` does.
      pub = [...reader.allow, s.submit(), ...decide, s.agentInAll(undefined, 'goal'), logsOf('gateway'), deadLetters, ...DISCOVERY_ASK];
      sub = [...progress, s.logs()];
      denyPub.push(...reader.deny, answers.plan, answers.tool, `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(tools), ...writeBucket(limits));
      break;
    case 'operator':
      // Schedules too (`errand schedule add`, pause, resume, rm, trigger): a person decides what runs when.
      pub = [...reader.allow, s.submit(), ...decide, s.agentInAll(undefined, 'goal'), ...writeBucket(tools), ...writeBucket(schedules), ...DISCOVERY_ASK];
      sub = [...progress, s.logs()];
      denyPub.push(...reader.deny, answers.plan, answers.tool, `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(limits));
      break;
    case 'submitter':
      pub = [...consumeStream(events), ...readStream(events), s.submit(), s.agentInAll(undefined, 'input')];
      sub = [...progress];
      denyPub.push(answers.plan, answers.tool, s.agentInAll(undefined, 'approval'), s.agentInAll(undefined, 'control'), `${prefix}.work.>`, ...writeBucket(agents), ...writeBucket(tools), ...writeBucket(limits));
      break;
  }
  return {
    role,
    pub: { allow: unique([...base.pub, ...pub]), deny: unique(denyPub) },
    sub: { allow: unique(role === 'admin' ? sub : [...base.sub, ...sub]), deny: [] },
    respond,
    inboxPrefix,
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
