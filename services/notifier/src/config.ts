import { z } from 'zod';
import type { ConnectOptions } from '@errand/nats';
import { ConfigError, envConnect, envInt, envPrefix, envVerifyKey } from '@errand/service';
import type { CommandVerifier } from '@errand/protocols';

/** A periodic summary on the channel: counts and today's spend, from the records — no model call. */
const Digest = z.object({ everyMs: z.number().int().min(100) }).optional();
/**
 * Who may decide through a channel: their user ids, or `"*"` for anyone who can press the button.
 * Absent or empty, every decision through the channel is refused (and the notifier warns at start).
 */
const allowUsers = <T extends z.ZodType>(id: T) => z.union([z.literal('*'), z.array(id)]).optional();
const Slack = z.object({
  type: z.literal('slack'),
  digest: Digest,
  token: z.string().min(1),
  channel: z.string().min(1),
  signingSecret: z.string().min(1).optional(),
  /** Slack user ids (`U…`/`W…`) allowed to decide, or `"*"`. */
  allowUsers: allowUsers(z.string().regex(/^[A-Z0-9]+$/, 'a Slack user id such as U0123ABCD')),
  apiBase: z.string().url().optional(),
});
const Telegram = z.object({
  type: z.literal('telegram'),
  digest: Digest,
  token: z.string().min(1),
  chatId: z.string().min(1),
  /**
   * Checked (in constant time) against X-Telegram-Bot-Api-Secret-Token on webhook updates; the
   * same value goes to setWebhook's `secret_token`. Required in webhook mode.
   */
  secretToken: z
    .string()
    .regex(/^[A-Za-z0-9_-]{16,256}$/, 'Telegram allows 1-256 of A-Z a-z 0-9 _ -; use at least 16 random ones')
    .optional(),
  /** Telegram user ids allowed to decide, or `"*"`. */
  allowUsers: allowUsers(z.number().int()),
  /** Read button presses by long polling (getUpdates) — no public URL needed — instead of a webhook. */
  poll: z.boolean().default(false),
  apiBase: z.string().url().optional(),
});
const Webhook = z.object({ type: z.literal('webhook'), digest: Digest, url: z.string().url(), secret: z.string().min(16) });
/** Notifications as log lines (`errand logs`, the `errand up` terminal): for one machine, no accounts needed. */
const Console = z.object({ type: z.literal('console'), digest: Digest });
export const ChannelConfigSchema = z.discriminatedUnion('type', [Slack, Telegram, Webhook, Console]);
export type ChannelConfig = z.infer<typeof ChannelConfigSchema>;

export interface NotifierConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  channels: Record<string, ChannelConfig>;
  dashboardUrl: string | undefined;
  /** Port of the callback listener (Slack actions, Telegram webhook); none when unset. */
  callbackPort: number | undefined;
  /** How long a dead notifier's deliveries wait to be given to another one. */
  ackWaitMs: number;
  logLevel: string;
  /** `ERRAND_CRASH_AT=notifier.after-send`: SIGKILL right after a delivery, before it is recorded. */
  crashAfterSend: boolean;
  /** `ERRAND_VERIFY_KEY`: when set, a notify command without a host's signature is refused. */
  verify: CommandVerifier | undefined;
}

export function parseConfig(env: Readonly<Record<string, string | undefined>>): NotifierConfig {
  let channels: Record<string, ChannelConfig> = {};
  if (!env.ERRAND_NOTIFY_CHANNELS) throw new ConfigError('ERRAND_NOTIFY_CHANNELS is required: JSON like {"slack": {"type": "slack", "token": "xoxb-…", "channel": "C123"}}');
  try {
    const raw = JSON.parse(env.ERRAND_NOTIFY_CHANNELS) as Record<string, unknown>;
    channels = Object.fromEntries(
      Object.entries(raw).map(([name, c]) => {
        if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`channel name '${name}': letters, digits, _ and - only`);
        const parsed = ChannelConfigSchema.safeParse(c);
        if (!parsed.success) throw new Error(`${name}: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
        return [name, parsed.data];
      }),
    );
  } catch (err) {
    throw new ConfigError(`ERRAND_NOTIFY_CHANNELS: ${(err as Error).message}`);
  }
  const callbackPort = env.ERRAND_NOTIFIER_PORT ? envInt(env, 'ERRAND_NOTIFIER_PORT', 0, 0) : undefined;
  // Webhook mode: the listener serves /telegram/<channel>/webhook, so it must know Telegram's secret.
  for (const [name, c] of Object.entries(channels)) {
    if (c.type === 'telegram' && !c.poll && callbackPort !== undefined && !c.secretToken) {
      throw new ConfigError(
        `ERRAND_NOTIFY_CHANNELS: ${name}: a Telegram channel served by the callback listener (ERRAND_NOTIFIER_PORT) needs "secretToken" (the secret_token given to setWebhook), or "poll": true to read button presses with getUpdates instead`,
      );
    }
  }
  return {
    connect: envConnect(env, 'errand-notifier'),
    prefix: envPrefix(env),
    channels,
    dashboardUrl: env.ERRAND_DASHBOARD_URL || undefined,
    callbackPort,
    ackWaitMs: envInt(env, 'ERRAND_NOTIFY_ACK_WAIT_MS', 30_000, 100),
    logLevel: env.LOG_LEVEL || 'info',
    crashAfterSend: env.ERRAND_CRASH_AT === 'notifier.after-send',
    verify: envVerifyKey(env, 'notifier'),
  };
}
