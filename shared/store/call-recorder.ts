/**
 * Persistence of a live call: a CallObserver that turns the engine's events into writer ops for one
 * conversation, and the glue that applies those ops to the ConversationStore.
 *
 * The observer runs on the engine's stack, so it only builds small plain objects and hands them to the
 * batched writer (`enqueue` is O(1) and never throws). At the end of the call it asks the writer to write at
 * once instead of waiting for its batch timer.
 *
 * Op shapes (all JSON; times are epoch milliseconds, turned into timestamptz by the store):
 *
 *   conversation.started  { conversationId, at }
 *       → store.updateStatus(conversationId, { status: 'in-progress', at })   (keeps the first started_at)
 *   message               { conversationId, message: { seq, role, text, turnId?, heardText?, interrupted,
 *                           toolCalls?, toolCallId?, startedAt?, endedAt } }
 *       → store.appendMessages(conversationId, [message, ...])                (keyed by (conversation, seq): first write wins)
 *   turnMetrics           { conversationId, metrics: TurnMetrics }
 *       → store.recordTurnMetrics(conversationId, [metrics, ...])            (upsert by (conversation, turn))
 *   conversation.ended    { conversationId, status, endedAt, durationMs, disconnectReason }
 *       → store.end(conversationId, { status, endedAt, durationMs, disconnectReason })   (the first end wins)
 *
 * Mapping from the engine's events:
 * - `userMessage` → a `user` message (startedAt: when the caller's speech started, if the engine said so).
 * - `toolCall` → an `assistant` message with empty text carrying `toolCalls: [{ id, name, arguments }]`, then a
 *   `tool` message with the result and `toolCallId` (the shape an LLM history replays).
 * - `assistantMessage` → an `assistant` message: `text` is everything the turn generated, `heardText` what the
 *   caller heard (they differ when the turn was cut), with the `interrupted` flag.
 * - `turnMetrics` → the turn's TurnMetrics with every mark rebased to **milliseconds since the call started**
 *   (the engine's clock is a process-local monotonic clock, meaningless once stored); durations
 *   (voiceToVoiceMs, overheadMs) are unchanged.
 * - `callEnded` → the end (status from `endStatus(reason)`, default `completed`; duration from callStarted).
 * Other events (speech start/end, interruptions, provider errors, DTMF digits) are not persisted here.
 * Events after `callEnded` are ignored.
 *
 * Seq numbers start at `firstSeq` (default 0) and grow by one per message, in event order. Because messages
 * are keyed by (conversation, seq) with "first write wins", a conversation continued by another recorder (a
 * new process) must start after the stored messages: pass `firstSeq`.
 */
import type { CallStatus } from '../contracts/call-status';
import type { CallEvent, CallObserver, TurnMetrics } from '../contracts/observer';
import { createConversationStore, type ConversationStore, type MessageRole, type ToolCallRecord } from './conversations';
import type { SqlClient } from './sql';
import type { WriteOp } from './writer';

export interface MessagePayload {
  readonly seq: number;
  readonly role: MessageRole;
  readonly text: string;
  readonly turnId?: number;
  readonly heardText?: string;
  readonly interrupted: boolean;
  readonly toolCalls?: readonly ToolCallRecord[];
  readonly toolCallId?: string;
  /** Epoch ms. */
  readonly startedAt?: number;
  /** Epoch ms. */
  readonly endedAt: number;
}

export type ConversationStartedOp = WriteOp<'conversation.started', { readonly conversationId: string; readonly at: number }>;
export type MessageOp = WriteOp<'message', { readonly conversationId: string; readonly message: MessagePayload }>;
export type TurnMetricsOp = WriteOp<'turnMetrics', { readonly conversationId: string; readonly metrics: TurnMetrics }>;
export type ConversationEndedOp = WriteOp<
  'conversation.ended',
  { readonly conversationId: string; readonly status: CallStatus; readonly endedAt: number; readonly durationMs: number; readonly disconnectReason: string }
>;
export type ConversationOp = ConversationStartedOp | MessageOp | TurnMetricsOp | ConversationEndedOp;

/** What the recorder needs of the batched writer (a writer of a wider op union fits too). */
export interface ConversationOpSink {
  enqueue(op: ConversationOp): boolean;
  requestFlush(): void;
}

export interface CallRecorderOptions {
  readonly conversationId: string;
  readonly writer: ConversationOpSink;
  /** Epoch ms now (default Date.now): anchors the engine's monotonic clock to wall time at callStarted. */
  readonly wallClock?: () => number;
  /** The seq of the first message (default 0). */
  readonly firstSeq?: number;
  /** The conversation's terminal status for an end reason (default: always `completed`). */
  readonly endStatus?: (reason: string) => CallStatus;
}

export interface CallRecorder extends CallObserver {
  /** The seq the next message will get. */
  readonly nextSeq: number;
  readonly ended: boolean;
}

const MARKS = ['userSpeechEnd', 'sttFinal', 'llmRequest', 'llmFirstToken', 'ttsRequest', 'ttsFirstAudio', 'firstAudioOut'] as const;

export function createCallRecorder(options: CallRecorderOptions): CallRecorder {
  const { conversationId, writer } = options;
  const wallClock = options.wallClock ?? Date.now;
  const endStatus = options.endStatus ?? (() => 'completed' as const);
  let seq = options.firstSeq ?? 0;
  /** Engine clock (ms) of the call start, and epoch ms minus engine ms. */
  let startAtMs: number | undefined;
  let epochOffsetMs = 0;
  let started = false;
  let ended = false;
  let speechStartedAtMs: number | undefined;

  const anchor = (atMs: number) => {
    if (startAtMs !== undefined) return;
    startAtMs = atMs;
    epochOffsetMs = wallClock() - atMs;
  };
  const epoch = (atMs: number) => Math.round(atMs + epochOffsetMs);

  const message = (fields: Omit<MessagePayload, 'seq'>): void => {
    const current = seq++;
    writer.enqueue({ kind: 'message', key: `conversation:${conversationId}:message:${current}`, payload: { conversationId, message: { seq: current, ...fields } } });
  };

  const onEvent = (event: CallEvent): void => {
    if (ended) return;
    if ('atMs' in event) anchor(event.atMs);
    switch (event.type) {
      case 'callStarted':
        if (started) return;
        started = true;
        writer.enqueue({ kind: 'conversation.started', key: `conversation:${conversationId}:started`, payload: { conversationId, at: epoch(event.atMs) } });
        return;
      case 'userSpeechStarted':
        speechStartedAtMs ??= event.atMs;
        return;
      case 'userMessage':
        message({
          role: 'user',
          text: event.text,
          interrupted: false,
          ...(speechStartedAtMs !== undefined && event.source === 'speech' ? { startedAt: epoch(speechStartedAtMs) } : {}),
          endedAt: epoch(event.atMs),
        });
        speechStartedAtMs = undefined;
        return;
      case 'toolCall': {
        const id = event.id;
        message({ role: 'assistant', text: '', interrupted: false, toolCalls: [{ id, name: event.name, arguments: event.arguments }], endedAt: epoch(event.atMs) });
        message({ role: 'tool', text: event.result, interrupted: false, toolCallId: id, endedAt: epoch(event.atMs) });
        return;
      }
      case 'assistantMessage':
        message({ role: 'assistant', text: event.generatedText || event.text, turnId: event.turnId, heardText: event.text, interrupted: event.interrupted, endedAt: epoch(event.atMs) });
        return;
      case 'turnMetrics': {
        const m = event.metrics;
        const metrics: TurnMetrics = { ...m, providers: { ...m.providers }, ...(m.overheadMs ? { overheadMs: { ...m.overheadMs } } : {}) };
        const base = startAtMs ?? 0;
        for (const mark of MARKS) {
          const value = m[mark];
          if (value !== undefined) metrics[mark] = value - base;
        }
        writer.enqueue({ kind: 'turnMetrics', key: `conversation:${conversationId}:metrics:${m.turnId}`, payload: { conversationId, metrics } });
        return;
      }
      case 'callEnded':
        ended = true;
        writer.enqueue({
          kind: 'conversation.ended',
          key: `conversation:${conversationId}:ended`,
          payload: {
            conversationId,
            status: endStatus(event.reason),
            endedAt: epoch(event.atMs),
            durationMs: Math.max(0, Math.round(event.atMs - (startAtMs ?? event.atMs))),
            disconnectReason: event.reason,
          },
        });
        writer.requestFlush();
        return;
      default:
        return;
    }
  };

  return {
    onEvent(event) {
      try {
        onEvent(event);
      } catch {
        // Persistence never breaks a call (the writer reports its own failures).
      }
    },
    get nextSeq() {
      return seq;
    },
    get ended() {
      return ended;
    },
  };
}

/** A conversation op the store cannot apply (an unknown kind, say from a newer version's journal). */
export class ConversationOpError extends Error {
  override readonly name = 'ConversationOpError';
  readonly retryable = false;
  constructor(message: string) {
    super(`CONVERSATION_OP_INVALID: ${message}`);
  }
}

export type ConversationOpStore = Pick<ConversationStore, 'appendMessages' | 'recordTurnMetrics' | 'updateStatus' | 'end'>;

/**
 * Applies ops in order. Consecutive messages (or metrics) of one conversation go to the store as one call.
 * Idempotent because every store method it uses is. Run it inside one transaction (see
 * `createConversationOpsApplier`) so a batch is all or nothing.
 */
export async function applyConversationOps(store: ConversationOpStore, ops: readonly ConversationOp[]): Promise<void> {
  let i = 0;
  while (i < ops.length) {
    const op = ops[i]!;
    switch (op.kind) {
      case 'message': {
        const { conversationId } = op.payload;
        const messages = [op.payload.message];
        for (i++; i < ops.length; i++) {
          const next = ops[i]!;
          if (next.kind !== 'message' || next.payload.conversationId !== conversationId) break;
          messages.push(next.payload.message);
        }
        await store.appendMessages(conversationId, messages);
        continue;
      }
      case 'turnMetrics': {
        const { conversationId } = op.payload;
        const metrics = [op.payload.metrics];
        for (i++; i < ops.length; i++) {
          const next = ops[i]!;
          if (next.kind !== 'turnMetrics' || next.payload.conversationId !== conversationId) break;
          metrics.push(next.payload.metrics);
        }
        await store.recordTurnMetrics(conversationId, metrics);
        continue;
      }
      case 'conversation.started':
        await store.updateStatus(op.payload.conversationId, { status: 'in-progress', at: op.payload.at });
        break;
      case 'conversation.ended': {
        const { conversationId, status, endedAt, durationMs, disconnectReason } = op.payload;
        await store.end(conversationId, { status, endedAt, durationMs, disconnectReason });
        break;
      }
      default:
        throw new ConversationOpError(`unknown op kind "${String((op as { kind?: unknown }).kind)}"`);
    }
    i++;
  }
}

/** The writer's `apply` for conversation ops: one transaction per batch over the injected SQL client. */
export function createConversationOpsApplier(db: SqlClient): (ops: readonly ConversationOp[]) => Promise<void> {
  return (ops) => db.transaction((tx) => applyConversationOps(createConversationStore(tx), ops));
}
