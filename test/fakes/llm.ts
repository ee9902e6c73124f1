import type { Clock } from '../../shared/contracts/clock';
import { ProviderError } from '../../shared/contracts/errors';
import type { ChatMessage, LanguageModel, LlmDelta, LlmRequest, ToolCall } from '../../shared/contracts/llm';

export type ScriptedReply = string | { text?: string; toolCalls?: ToolCall[] } | ProviderError;

export interface FakeLlmOptions {
  readonly id?: string;
  readonly clock: Clock;
  /** The reply to a request, from the conversation so far. */
  readonly reply: (messages: readonly ChatMessage[]) => ScriptedReply;
  readonly firstTokenDelayMs?: number;
  readonly tokenDelayMs?: number;
  /** The stream throws this error once this many text tokens were sent (a provider failing mid-answer). */
  readonly failAfterTokens?: { tokens: number; error: ProviderError };
}

function abortError(): Error {
  const e = new Error('aborted');
  e.name = 'AbortError';
  return e;
}

/** A streaming LLM that answers from a script, token by token (one word a token), on the injected clock. */
export function createFakeLlm(options: FakeLlmOptions) {
  const requests: LlmRequest[] = [];
  const stats = { requests, aborted: 0, completed: 0 };
  const sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (ms <= 0) return signal.aborted ? reject(abortError()) : resolve();
      const handle = options.clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        options.clock.clearTimeout(handle);
        reject(abortError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });

  const llm: LanguageModel = {
    id: options.id ?? 'fake-llm',
    capabilities: { tools: true, edgeCapable: true },
    async *stream(request, signal): AsyncIterable<LlmDelta> {
      requests.push({ ...request, messages: request.messages.map((m) => ({ ...m })) });
      try {
        const reply = options.reply(request.messages);
        await sleep(options.firstTokenDelayMs ?? 0, signal);
        if (reply instanceof ProviderError) throw reply;
        const { text, toolCalls } = typeof reply === 'string' ? { text: reply, toolCalls: undefined } : reply;
        const tokens = (text ?? '').match(/\S+\s*/g) ?? [];
        for (let i = 0; i < tokens.length; i++) {
          if (options.failAfterTokens && i >= options.failAfterTokens.tokens) throw options.failAfterTokens.error;
          if (i > 0) await sleep(options.tokenDelayMs ?? 0, signal);
          yield { type: 'text', text: tokens[i]! };
        }
        for (const call of toolCalls ?? []) yield { type: 'toolCall', call };
        yield { type: 'usage', inputTokens: request.messages.length * 10, outputTokens: tokens.length };
        yield { type: 'done', reason: toolCalls?.length ? 'tool_calls' : 'stop' };
        stats.completed++;
      } catch (error) {
        if ((error as Error).name === 'AbortError') stats.aborted++;
        throw error;
      }
    },
  };
  return { llm, stats };
}

/** The text of the last user message (what a scripted reply usually keys on). */
export function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return messages[i]!.content;
  return '';
}
