import { createAnthropicLlm, createGeminiLlm, createOpenAiLlm, type LlmHttpDeps } from '../../shared/providers/llm';
import type { ProviderRegistry } from '../../shared/providers/registry';
import { createLocalLlm } from './local-llm';

export type LlmProviderOptions = LlmHttpDeps;

/**
 * The cloud LLM adapters a media node offers: `openai` (and every Chat Completions server through the block's
 * `endpoint`, Azure OpenAI included), `anthropic`, `gemini`. Keys come from the project's credentials or
 * `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `GEMINI_API_KEY`; without any, the `local` development stand-in
 * answers (LOCAL_FALLBACK). Plain fetch: nothing to close.
 */
export function registerLlmProviders(registry: ProviderRegistry, options: LlmProviderOptions = {}): void {
  registry.llm.register(createOpenAiLlm(options));
  registry.llm.register(createAnthropicLlm(options));
  registry.llm.register(createGeminiLlm(options));
  // The offline stand-in (`local`): answers from the passages the engine retrieves; used when no key is set.
  registry.llm.register(createLocalLlm());
}
