// The notifier service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { writeSync } from 'node:fs';
import { isRevisionConflict, openBucket } from '@errand/nats';
import { channelSecrets, DeliveryError, newCallbackId, render, slackChannel, telegramChannel, webhookChannel, type Channel } from '@errand/notify';
import { createSubjects, effectKeys, resourceNames, type Logger } from '@errand/protocols';
import type { ServiceDefinition } from '@errand/service';
import { startCommandWorker, type CommandWorker } from '@errand/worker';
import { startCallbackServer, type CallbackServer } from './callbacks.js';
import { parseConfig, type ChannelConfig, type NotifierConfig } from './config.js';
import { countAgents, digestText } from './digest.js';

function channelOf(name: string, c: ChannelConfig, logger: Logger): Channel {
  switch (c.type) {
    case 'console':
      return {
        name,
        async send(message, context) {
          (context.log ?? logger).info({ channel: name, notification: true, title: message.title }, `${message.title}: ${message.text}`);
        },
      };
    case 'slack':
      return slackChannel({ name, token: c.token, channel: c.channel, ...(c.apiBase ? { apiBase: c.apiBase } : {}) });
    case 'telegram':
      // The bot token keys the buttons' MAC: every replica has it, and it never leaves for Telegram's chats.
      return telegramChannel({ name, token: c.token, chatId: c.chatId, callbackSecret: c.token, ...(c.apiBase ? { apiBase: c.apiBase } : {}) });
    case 'webhook':
      return webhookChannel({ name, url: c.url, secret: c.secret });
  }
}

export const notifierService: ServiceDefinition<NotifierConfig> = {
  name: 'errand-notifier',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  // Channel credentials live in ERRAND_NOTIFY_CHANNELS (JSON), whose name does not say secret.
  secrets: (c) => channelSecrets(c.channels),
  start: async ({ config, conn, logger, redactor }) => {
    const subjects = createSubjects(config.prefix);
    const effects = await openBucket(conn, resourceNames(config.prefix).buckets.effects);
    // One consumer per channel: a channel that keeps failing does not hold up the others.
    const workers: CommandWorker[] = [];
    for (const [name, c] of Object.entries(config.channels)) {
      const channel = channelOf(name, c, logger);
      workers.push(
        await startCommandWorker({
          conn,
          prefix: config.prefix,
          name: `notify-${name}`,
          filterSubject: subjects.workNotify(name),
          expect: 'notify.request',
          concurrency: 4,
          ackWaitMs: config.ackWaitMs,
          stopGraceMs: config.stopGraceMs,
          logger,
          verify: config.verify,
          execute: async (command, { signal, log }) => {
            const message = render(command, config.dashboardUrl, redactor);
            // A mark before sending: a notifier that died after sending but before recording it must
            // not send again. A webhook is the exception: its Idempotency-Key lets the receiver drop a repeat.
            try {
              await effects.create(effectKeys.sending(command.key), String(Date.now()));
            } catch (err) {
              if (!isRevisionConflict(err)) throw err;
              if (c.type !== 'webhook') {
                log.warn({ channel: name }, 'a notification that may already have been sent is delivered again: not sending it twice');
                return undefined;
              }
            }
            try {
              // Telegram's buttons carry a random id; the approval they decide is stored under it.
              let callbackId: string | undefined;
              if (c.type === 'telegram' && message.approval) {
                callbackId = newCallbackId();
                await effects.put(effectKeys.telegramApproval(name, callbackId), JSON.stringify(message.approval));
              }
              await channel.send(message, { key: command.key, signal, log, ...(callbackId ? { callbackId } : {}) });
              if (config.crashAfterSend) {
                writeSync(2, 'errand-notifier: crash point notifier.after-send reached (ERRAND_CRASH_AT): SIGKILL\n');
                process.kill(process.pid, 'SIGKILL');
              }
            } catch (err) {
              // It failed, so it may be tried again: clear the mark.
              await effects.delete(effectKeys.sending(command.key)).catch(() => {});
              // Thrown, the command is retried with back-off (and dead-lettered with the reason in the end).
              if (err instanceof DeliveryError) log.warn({ channel: name, code: err.code, retryable: err.retryable }, err.message);
              throw err;
            }
            return undefined;
          },
        }),
      );
    }
    // Digests: one per period and channel, whichever replica claims the period first sends it.
    const agentsKv = await openBucket(conn, resourceNames(config.prefix).buckets.agents);
    const digestTimers: NodeJS.Timeout[] = [];
    for (const [name, c] of Object.entries(config.channels)) {
      if (!c.digest) continue;
      const channel = channelOf(name, c, logger);
      const every = c.digest.everyMs;
      const send = async () => {
        const period = Math.floor(Date.now() / every);
        const key = effectKeys.digest(name, String(period));
        try {
          await effects.create(key, String(Date.now()));
        } catch (err) {
          if (isRevisionConflict(err)) return;
          throw err;
        }
        const text = digestText(await countAgents(agentsKv));
        await channel.send({ title: 'Errand digest', text, link: config.dashboardUrl, approval: undefined }, { key, signal: AbortSignal.timeout(30_000) });
        logger.info({ channel: name, text }, 'digest sent');
      };
      digestTimers.push(setInterval(() => void send().catch((err: unknown) => logger.warn({ err, channel: name }, 'digest failed')), every));
    }
    let callbacks: CallbackServer | undefined;
    const polls = Object.values(config.channels).some((c) => c.type === 'telegram' && c.poll);
    if (config.callbackPort !== undefined || polls) {
      callbacks = await startCallbackServer({ port: config.callbackPort, conn, prefix: config.prefix, channels: config.channels, logger });
    }
    logger.info({ channels: Object.keys(config.channels), callbackPort: callbacks?.port }, 'notifier ready');
    return {
      async stop() {
        for (const t of digestTimers) clearInterval(t);
        await callbacks?.close();
        await Promise.all(workers.map((w) => w.stop()));
      },
    };
  },
};
