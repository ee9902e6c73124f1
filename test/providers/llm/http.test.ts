import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../../shared/contracts/errors';
import { createAnthropicDecoder } from '../../../shared/providers/llm/anthropic';
import { createGeminiDecoder } from '../../../shared/providers/llm/gemini';
import { classifyHttpError, parseRetryAfter, vendorErrorDetail } from '../../../shared/providers/llm/http';
import { createOpenAiDecoder } from '../../../shared/providers/llm/openai';
import { createProviderRegistry } from '../../../shared/providers/registry';
import { registerLlmProviders } from '../../../media-node/providers/register-llm';

const ev = (data: string, event = 'message') => ({ event, data, id: '' });

describe('LLM HTTP helpers', () => {
  it('retry-after: seconds or an HTTP-date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('0.5')).toBe(500);
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('maps statuses and vendor bodies to errors that say what to do', () => {
    const quota = classifyHttpError('OPENAI', 'openai', 429, JSON.stringify({ error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } }), 'x');
    expect(quota).toMatchObject({ code: 'OPENAI_QUOTA', retryable: false, kind: 'quota' });
    expect(classifyHttpError('X', 'x', 404, '{"error":{"message":"model gpt-9 not found"}}', 'x')).toMatchObject({ code: 'X_NOT_FOUND', retryable: false });
    expect(classifyHttpError('X', 'x', 529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', 'x')).toMatchObject({ retryable: true, kind: 'unavailable' });
    const html = classifyHttpError('X', 'x', 502, '<html>Bad gateway</html>', 'x');
    expect(html.message).toContain('<html>Bad gateway</html>');
    expect(vendorErrorDetail('{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}')).toEqual({ message: 'slow down', type: 'RESOURCE_EXHAUSTED', code: '429' });
    expect(vendorErrorDetail('x'.repeat(5000)).message.length).toBeLessThanOrEqual(300);
  });

  it('malformed events become protocol errors, never crashes', () => {
    for (const decoder of [createOpenAiDecoder(), createAnthropicDecoder(), createGeminiDecoder('g')]) {
      expect(() => decoder.onEvent(ev('{"choices":'))).toThrow(ProviderError);
    }
    expect(() => createOpenAiDecoder().onEvent(ev('{"choices":[{"delta":{"content":42}}]}'))).toThrow(/unexpected shape/);
    expect(() => createAnthropicDecoder().onEvent(ev('{"type":"content_block_delta","index":"x"}', 'content_block_delta'))).toThrow(/unexpected shape/);
    // Unknown Anthropic events are skipped even when their payload is unusual.
    expect(createAnthropicDecoder().onEvent(ev('{"type":"brand_new","x":[1]}', 'brand_new'))).toEqual([]);
  });

  it('OpenAI: parallel calls interleaved by index are assembled per index; choices null is tolerated', () => {
    const d = createOpenAiDecoder();
    const chunk = (delta: unknown, finish: string | null = null) => ev(JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] }));
    d.onEvent(chunk({ tool_calls: [{ index: 0, id: 'a', function: { name: 'f', arguments: '' } }, { index: 1, id: 'b', function: { name: 'g', arguments: '{"y"' } }] }));
    d.onEvent(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] }));
    d.onEvent(chunk({ tool_calls: [{ index: 1, function: { arguments: ':2}' } }] }));
    d.onEvent(chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }));
    expect(d.onEvent(ev('{"choices":null,"usage":null}'))).toEqual([]);
    expect(d.onEvent(chunk({}, 'tool_calls'))).toEqual([
      { type: 'toolCall', call: { id: 'a', name: 'f', arguments: '{"x":1}' } },
      { type: 'toolCall', call: { id: 'b', name: 'g', arguments: '{"y":2}' } },
    ]);
    expect(d.onEvent(ev('[DONE]'))).toEqual([{ type: 'done', reason: 'tool_calls' }]);
  });

  it('Anthropic: an invalid tool input is a protocol error at content_block_stop', () => {
    const d = createAnthropicDecoder();
    d.onEvent(ev(JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 't', name: 'f', input: {} } })));
    d.onEvent(ev(JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"a":' } })));
    expect(() => d.onEvent(ev(JSON.stringify({ type: 'content_block_stop', index: 0 })))).toThrow(/not valid JSON/);
  });

  it('Gemini: a blocked prompt is a clear non-retryable error', () => {
    expect(() => createGeminiDecoder('g').onEvent(ev('{"promptFeedback":{"blockReason":"SAFETY"}}'))).toThrow(/blocked the prompt \(SAFETY\)/);
  });

  it('registerLlmProviders registers openai, anthropic and gemini as credentialed, edge-capable, tool-calling models (and the local stand-in)', () => {
    const registry = createProviderRegistry();
    registerLlmProviders(registry);
    // Plus the offline stand-in `local`, which needs no key and no network.
    expect(registry.llm.ids()).toEqual(['anthropic', 'gemini', 'local', 'openai']);
    expect(registry.llm.resolve('local').requiresCredential).toBeFalsy();
    for (const id of ['anthropic', 'gemini', 'openai']) {
      const impl = registry.llm.resolve(id);
      expect(impl.requiresCredential).toBe(true);
      expect(impl.capabilities).toEqual({ tools: true, edgeCapable: true });
      expect(impl.optionsSchema?.safeParse({}).success).toBe(true);
      expect(impl.optionsSchema?.safeParse({ typo: 1 }).success).toBe(false);
    }
  });
});
