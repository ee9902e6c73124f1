export { createAnthropicLlm, anthropicOptionsSchema, createAnthropicDecoder, toAnthropicMessages, toAnthropicTools, type AnthropicLlm } from './anthropic';
export { createGeminiLlm, geminiOptionsSchema, createGeminiDecoder, toGeminiContents, toGeminiSchema, toGeminiTools, type GeminiLlm } from './gemini';
export {
  DEFAULT_FIRST_TOKEN_TIMEOUT_MS,
  DEFAULT_LLM_RETRY,
  nullLlmMetrics,
  streamLlm,
  type LlmHttpDeps,
  type LlmMetricsSink,
  type LlmStreamDecoder,
} from './http';
export { createOpenAiLlm, openAiOptionsSchema, createOpenAiDecoder, openAiUrl, toOpenAiMessages, toOpenAiTools, type OpenAiLlm } from './openai';
export { createSseParser, parseSse, SseError, type SseEvent } from './sse';
