export { render, sanitize, type Rendered } from './render.js';
export { DeliveryError, signWebhook, slackChannel, telegramChannel, webhookChannel, WEBHOOK_SIGNATURE_HEADER, type Channel } from './channels.js';
export {
  MAX_CALLBACK_AGE_SECONDS,
  parseSlackAction,
  parseTelegramCallback,
  verifySlackRequest,
  verifyWebhookSignature,
  type Decision,
  type Verdict,
} from './callbacks.js';
