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
export { channelSecrets, CHANNEL_NAME, ChannelConfigSchema, parseChannels, type ChannelConfig, type SlackChannelConfig, type TelegramChannelConfig } from './channel-config.js';
export {
  createCallbackHandler,
  DECISION_WAIT_MS,
  describeAllowLists,
  MAX_CALLBACK_BODY_BYTES,
  refusalText,
  type CallbackHandler,
  type CallbackHandlerOptions,
  type CallbackRequest,
  type CallbackResponse,
  type TelegramAnswer,
} from './callback-handler.js';
