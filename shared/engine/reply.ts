import type { LlmBlock } from '../config/assistant';
import type { Clock } from '../contracts/clock';
import { asProviderError, isAbortError, type ProviderError } from '../contracts/errors';
import type { ChatMessage, LanguageModel, ToolCall } from '../contracts/llm';
import type { TurnMetrics } from '../contracts/observer';
import type { ResolvedProvider } from '../providers/registry';
import type { CallTools } from '../tools/control';
import { createChunker } from './chunker';
import type { OverheadMarks } from './metrics';
import type { ProviderCursor } from './speech-output';

export interface ReplyDeps {
  readonly chain: readonly ResolvedProvider<LanguageModel, LlmBlock>[];
  readonly cursor: ProviderCursor;
  /** Messages for the request; tool rounds append to it through `onMessage`. */
  messages(): readonly ChatMessage[];
  /** A plain ToolExecutor, or one with filler phrases (`fillerFor`). */
  readonly tools: CallTools | undefined;
  readonly maxToolRounds: number;
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly metrics: TurnMetrics;
  readonly marks: OverheadMarks;
  /** A speakable piece; awaiting it is the back-pressure on the LLM stream. */
  onPiece(text: string): void | Promise<void>;
  /** Tool-call round trip: the assistant's call and the tool's answer join the history. */
  onMessage(message: ChatMessage): void;
  onToolResult(call: ToolCall, result: string): void;
  onError(provider: string, error: ProviderError, action: 'retry' | 'fallback' | 'fallbackMessage' | 'ignored'): void;
  /**
   * Resolves true when tools may run. A speculative (preemptive) reply waits here until the caller's turn
   * confirms it, so a reply that is thrown away never had side effects; false means it was thrown away.
   */
  mayRunTools?(): Promise<boolean>;
  /** True when a tool of this round ended the conversation (end_call, transfer_call): no further LLM round. */
  stopAfterTools?(): boolean;
}

export type ReplyOutcome = 'done' | 'cancelled' | 'failed';

/**
 * Streams one reply from the LLM into speakable pieces, running tool rounds in between. A provider that
 * fails before producing any text is retried once when the error is retryable, else the next fallback is
 * used; with none left the outcome is `failed` (the caller speaks the fallback message).
 */
export async function runReply(deps: ReplyDeps): Promise<ReplyOutcome> {
  for (let round = 0; round <= deps.maxToolRounds; round++) {
    const chunker = createChunker();
    let text: string;
    let calls: ToolCall[];
    let retried = false;
    for (;;) {
      const provider = deps.chain[deps.cursor.index];
      if (!provider) return 'failed';
      deps.metrics.providers.llm = provider.impl.id;
      text = '';
      calls = [];
      try {
        deps.metrics.llmRequest ??= deps.clock.now();
        const block = provider.block;
        const stream = provider.impl.stream(
          {
            messages: deps.messages(),
            tools: deps.tools?.definitions ?? [],
            model: block.model,
            temperature: block.temperature,
            maxTokens: block.maxTokens,
            endpoint: block.endpoint,
            apiKey: provider.apiKey,
            options: block.options,
          },
          deps.signal,
        );
        for await (const delta of stream) {
          if (deps.signal.aborted) return 'cancelled';
          switch (delta.type) {
            case 'text':
              if (!delta.text) break;
              deps.metrics.llmFirstToken ??= deps.clock.now();
              text += delta.text;
              for (const piece of chunker.push(delta.text)) {
                deps.marks.firstPieceAt ??= deps.clock.now();
                await deps.onPiece(piece);
              }
              break;
            case 'toolCall':
              calls.push(delta.call);
              break;
            case 'usage':
              deps.metrics.inputTokens += delta.inputTokens;
              deps.metrics.outputTokens += delta.outputTokens;
              break;
            case 'done':
              break;
          }
        }
        break;
      } catch (thrown) {
        if (deps.signal.aborted || isAbortError(thrown)) return 'cancelled';
        const error = asProviderError(provider.impl.id, thrown);
        if (text || calls.length) {
          // Part of the reply is out already: finish with what we have rather than repeat it.
          deps.onError(provider.impl.id, error, 'ignored');
          break;
        }
        // A provider that timed out is not asked again: the caller has waited long enough, the fallback answers.
        const sameAgain = error.retryable && error.kind !== 'timeout' && !retried;
        if (sameAgain) retried = true;
        else deps.cursor.index++;
        const hasNext = deps.chain[deps.cursor.index] !== undefined;
        deps.onError(provider.impl.id, error, hasNext ? (sameAgain ? 'retry' : 'fallback') : 'fallbackMessage');
        if (!hasNext) return 'failed';
      }
    }
    for (const piece of chunker.flush()) {
      deps.marks.firstPieceAt ??= deps.clock.now();
      await deps.onPiece(piece);
    }
    if (deps.signal.aborted) return 'cancelled';
    if (calls.length === 0 || !deps.tools || round === deps.maxToolRounds) return 'done';
    // The words spoken before the tool call stay in this turn's spoken text, which becomes the final assistant message.
    if (deps.mayRunTools && !(await deps.mayRunTools())) return 'cancelled';
    if (deps.signal.aborted) return 'cancelled';
    const results: ChatMessage[] = [];
    const filler = { spoken: false };
    for (const call of calls) {
      let result: string;
      try {
        result = await executeWithFiller(deps, deps.tools, call, filler);
      } catch (thrown) {
        if (deps.signal.aborted) return 'cancelled';
        result = `Error: ${thrown instanceof Error ? thrown.message : String(thrown)}`;
      }
      // A tool that ignored the abort: its turn is over (or the call is), nothing more is reported or asked.
      if (deps.signal.aborted) return 'cancelled';
      deps.onToolResult(call, result);
      results.push({ role: 'tool', content: result, toolCallId: call.id });
    }
    // The call and its results join the history together: a round cut short leaves no unanswered tool call.
    deps.onMessage({ role: 'assistant', content: '', toolCalls: calls });
    for (const message of results) deps.onMessage(message);
    if (deps.stopAfterTools?.()) return 'done';
  }
  return 'done';
}

/**
 * Runs one tool; when it has a filler phrase and has not answered after its `afterMs`, the phrase is spoken
 * (once per round, however many slow tools follow), so the caller does not sit in silence.
 */
async function executeWithFiller(deps: ReplyDeps, tools: CallTools, call: ToolCall, filler: { spoken: boolean }): Promise<string> {
  const wanted = filler.spoken ? undefined : tools.fillerFor?.(call.name);
  if (!wanted) return tools.execute(call, deps.signal);
  let settled = false;
  const timer = deps.clock.setTimeout(() => {
    if (settled || filler.spoken || deps.signal.aborted) return;
    filler.spoken = true;
    void Promise.resolve(deps.onPiece(wanted.phrase)).catch(() => undefined);
  }, wanted.afterMs);
  try {
    return await tools.execute(call, deps.signal);
  } finally {
    settled = true;
    deps.clock.clearTimeout(timer);
  }
}
