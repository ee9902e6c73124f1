import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlmBlock } from '../../../shared/config/assistant';
import { systemClock } from '../../../shared/contracts/clock';
import type { ProviderError } from '../../../shared/contracts/errors';
import type { LanguageModel } from '../../../shared/contracts/llm';
import type { TurnMetrics } from '../../../shared/contracts/observer';
import { runReply } from '../../../shared/engine/reply';
import { createAnthropicLlm } from '../../../shared/providers/llm/anthropic';
import { createOpenAiLlm } from '../../../shared/providers/llm/openai';
import type { ResolvedProvider } from '../../../shared/providers/registry';
import { startAnthropicFake, type AnthropicFake } from '../fakes/llm/anthropic';
import { startOpenAiFake, type OpenAiFake } from '../fakes/llm/openai';

describe('LLM fallback through the engine (runReply) with two real adapters', () => {
  let openai: OpenAiFake;
  let anthropic: AnthropicFake;
  beforeAll(async () => {
    [openai, anthropic] = await Promise.all([startOpenAiFake(), startAnthropicFake()]);
  });
  afterAll(async () => {
    await Promise.all([openai.close(), anthropic.close()]);
  });

  it('openai refuses the key (auth, not retryable) → anthropic answers the turn', async () => {
    anthropic.script({ type: 'reply', text: 'Anthropic here: it will be sunny.', usage: { input: 20, output: 7 } });
    const block = (provider: string, endpoint: string): LlmBlock => ({ provider, endpoint, options: {} }) as LlmBlock;
    const chain: ResolvedProvider<LanguageModel, LlmBlock>[] = [
      { impl: createOpenAiLlm(), block: block('openai', openai.endpoint), apiKey: 'sk-revoked' },
      { impl: createAnthropicLlm(), block: block('anthropic', anthropic.endpoint), apiKey: anthropic.apiKey },
    ];
    const metrics: TurnMetrics = { callId: 'c1', turnId: 1, kind: 'reply', interrupted: false, inputTokens: 0, outputTokens: 0, providers: {} };
    const pieces: string[] = [];
    const errors: { provider: string; error: ProviderError; action: string }[] = [];
    const outcome = await runReply({
      chain,
      cursor: { index: 0 },
      messages: () => [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather tomorrow?' },
      ],
      tools: undefined,
      maxToolRounds: 2,
      signal: new AbortController().signal,
      clock: systemClock,
      metrics,
      marks: {},
      onPiece: (text) => void pieces.push(text),
      onMessage: () => undefined,
      onToolResult: () => undefined,
      onError: (provider, error, action) => void errors.push({ provider, error, action }),
    });
    expect(outcome).toBe('done');
    expect(pieces.join(' ').replace(/\s+/g, ' ')).toBe('Anthropic here: it will be sunny.');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ provider: 'openai', action: 'fallback', error: { kind: 'auth', retryable: false } });
    expect(errors[0]!.error.message).toContain('Incorrect API key provided');
    // The auth failure was not retried: one request to openai, one to anthropic.
    expect(openai.requests).toHaveLength(1);
    expect(anthropic.requests).toHaveLength(1);
    expect(metrics.providers.llm).toBe('anthropic');
    expect(metrics.inputTokens).toBe(20);
    expect(metrics.outputTokens).toBe(7);
    expect(metrics.llmFirstToken).toBeDefined();
  });
});
