import type { ConnectOptions } from '@errand/nats';
import { parseChannels, type ChannelConfig } from '@errand/notify';
import { ConfigError, envConnect, envInt, envPrefix, envVerifyKey } from '@errand/service';
import type { CommandVerifier } from '@errand/protocols';

// The channel schema is shared with the gateway, which serves the same callbacks: @errand/notify.
export type { ChannelConfig } from '@errand/notify';

export interface NotifierConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  channels: Record<string, ChannelConfig>;
  dashboardUrl: string | undefined;
  /** Port of the callback listener (Slack actions, Telegram webhook); none when unset. */
  callbackPort: number | undefined;
  /** How long a dead notifier's deliveries wait to be given to another one. */
  ackWaitMs: number;
  /** ERRAND_STOP_GRACE_MS: on SIGTERM, how long deliveries in flight may finish before the rest are handed back (nak: another process takes them at once). */
  stopGraceMs: number;
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
    channels = parseChannels(env.ERRAND_NOTIFY_CHANNELS);
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
    ackWaitMs: envInt(env, 'ERRAND_NOTIFY_ACK_WAIT_MS', 3_000, 100),
    stopGraceMs: envInt(env, 'ERRAND_STOP_GRACE_MS', 10_000, 0),
    logLevel: env.LOG_LEVEL || 'info',
    crashAfterSend: env.ERRAND_CRASH_AT === 'notifier.after-send',
    verify: envVerifyKey(env, 'notifier'),
  };
}
