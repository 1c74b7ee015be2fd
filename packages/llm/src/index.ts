export { LlmError, LlmErrorCode } from './errors.js';
export { type ChatModel, type Completion, type CompleteOptions, type CompletionRequest, type ModelPrice, type PriceTable } from './model.js';
export { createOpenAIModel, type OpenAIModelOptions } from './openai-model.js';
export {
  parseMockScript,
  startMockLlm,
  type MockLlm,
  type MockLlmOptions,
  type MockRequest,
  type MockScript,
  type MockStep,
  type MockToolCall,
} from './mock-server.js';
