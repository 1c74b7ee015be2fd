import { z } from 'zod';

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

/** One notification channel as `ERRAND_NOTIFY_CHANNELS` describes it (the notifier and the gateway read the same). */
export const ChannelConfigSchema = z.discriminatedUnion('type', [Slack, Telegram, Webhook, Console]);
export type ChannelConfig = z.infer<typeof ChannelConfigSchema>;
export type SlackChannelConfig = Extract<ChannelConfig, { type: 'slack' }>;
export type TelegramChannelConfig = Extract<ChannelConfig, { type: 'telegram' }>;

/** A channel name: the last token of `<prefix>.work.notify.<channel>` and a path segment of the callbacks. */
export const CHANNEL_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Parses the JSON of `ERRAND_NOTIFY_CHANNELS` (`{ "<name>": { "type": "slack", … }, … }`), checking
 * each name and each channel against {@link ChannelConfigSchema}. Throws an Error whose message
 * names the channel and field that is wrong (the caller adds the variable's name) — never a secret.
 */
export function parseChannels(json: string): Record<string, ChannelConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('must be a JSON object of channels by name');
  return Object.fromEntries(
    Object.entries(raw).map(([name, c]) => {
      if (!CHANNEL_NAME.test(name)) throw new Error(`channel name '${name}': letters, digits, _ and - only`);
      const parsed = ChannelConfigSchema.safeParse(c);
      if (!parsed.success) throw new Error(`${name}: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
      return [name, parsed.data];
    }),
  );
}

/** The secrets channels hold (bot tokens, signing secrets): for the process's redactor. */
export function channelSecrets(channels: Record<string, ChannelConfig>): string[] {
  return Object.values(channels).flatMap((ch) =>
    (ch.type === 'slack' ? [ch.token, ch.signingSecret] : ch.type === 'telegram' ? [ch.token, ch.secretToken] : ch.type === 'webhook' ? [ch.secret] : []).filter(
      (s): s is string => s !== undefined,
    ),
  );
}
