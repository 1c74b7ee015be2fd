export { render, sanitize, type Rendered } from './render.js';
export { DeliveryError, slackChannel, slackEphemeral, telegramChannel, webhookChannel, WEBHOOK_SIGNATURE_HEADER, type Channel, type SendContext } from './channels.js';
export {
  mayDecide,
  newCallbackId,
  parseSlackAction,
  parseTelegramCallback,
  safeEqual,
  signTelegramCallbackData,
  verifySlackRequest,
  verifyTelegramCallbackData,
  verifyWebhookSignature,
  type AllowList,
  type Decision,
  type SlackAction,
  type TelegramPress,
  type Verdict,
} from './callbacks.js';
