import type { CallDirection, CallStatus } from '../contracts/call-status';
import { TERMINAL_CALL_STATUSES } from '../contracts/call-status';
import type { AssistantTurnKind, TurnMetrics } from '../contracts/observer';
import {
  isUuid,
  jsonParam,
  onlyRow,
  sqlList,
  timestampParam,
  toBoolean,
  toDate,
  toDateOrUndefined,
  toJson,
  toNumber,
  toNumberOrUndefined,
  toStringOrUndefined,
} from './rows';
import type { SqlClient } from './sql';

/**
 * Conversations and what a call leaves behind: messages, per-turn metrics, carrier call events and outgoing
 * webhook deliveries.
 *
 * The batched writer retries after outages, so every write it makes is idempotent: a message is keyed by
 * (conversation, seq) and a retried one is skipped (ON CONFLICT DO NOTHING: the first write wins); turn
 * metrics are keyed by (conversation, turn) and a repeat overwrites the row with the same (or a fuller)
 * record; `end` keeps the first end time; call events are deduplicated by (provider, provider event id).
 * `seq` is assigned by the caller (monotonic per conversation) precisely so a retry carries the same key.
 */

export type TimestampInput = Date | number;
export type MessageRole = 'system' | 'user' | 'assistant' | 'tool';

export interface Conversation {
  readonly id: string;
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  /** Channel provider: `twilio`, `web`, `sip`, ... */
  readonly channel: string;
  readonly direction: CallDirection;
  readonly status: CallStatus;
  readonly startedAt?: Date;
  readonly endedAt?: Date;
  readonly durationMs?: number;
  readonly disconnectReason?: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly variables: Readonly<Record<string, string>>;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface CreateConversationInput {
  /** Give an id to make the create idempotent (a retry returns the existing conversation). */
  readonly id?: string;
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  readonly channel: string;
  readonly direction: CallDirection;
  readonly status?: CallStatus;
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly variables?: Readonly<Record<string, string>>;
}

export interface ConversationStatusUpdate {
  readonly status: CallStatus;
  /** When it happened (default: the database's now). Sets `startedAt` on the first `in-progress`. */
  readonly at?: TimestampInput;
}

export interface ConversationEnd {
  /** Terminal status; default `completed`. */
  readonly status?: CallStatus;
  readonly endedAt?: TimestampInput;
  /** Default: endedAt − startedAt when the conversation started. */
  readonly durationMs?: number;
  readonly disconnectReason?: string;
}

export interface ToolCallRecord {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

export interface MessageInput {
  /** Position in the conversation, assigned by the caller (0, 1, 2, ...); the idempotency key. */
  readonly seq: number;
  readonly turnId?: number;
  readonly role: MessageRole;
  readonly text: string;
  /** Assistant messages: what the caller actually heard (shorter than `text` when interrupted). */
  readonly heardText?: string;
  readonly interrupted?: boolean;
  /** Assistant messages that called tools. */
  readonly toolCalls?: readonly ToolCallRecord[];
  /** Tool messages: the call this result answers. */
  readonly toolCallId?: string;
  readonly startedAt?: TimestampInput;
  readonly endedAt?: TimestampInput;
}

export interface Message {
  readonly conversationId: string;
  readonly seq: number;
  readonly turnId?: number;
  readonly role: MessageRole;
  readonly text: string;
  readonly heardText?: string;
  readonly interrupted: boolean;
  readonly toolCalls?: readonly ToolCallRecord[];
  readonly toolCallId?: string;
  readonly startedAt?: Date;
  readonly endedAt?: Date;
  readonly createdAt: Date;
}

/** A turn's metrics as stored: the TurnMetrics shape, keyed by conversation instead of call id. */
export type StoredTurnMetrics = Omit<TurnMetrics, 'callId'> & { readonly conversationId: string; readonly createdAt: Date };

export interface CallEventInput {
  readonly provider: string;
  /** The carrier's id of this event (or a digest of its identifying fields); the deduplication key. */
  readonly providerEventId: string;
  /** Normalised status, when the event carries one. */
  readonly status?: CallStatus;
  /** The payload as received. */
  readonly raw: unknown;
  readonly occurredAt?: TimestampInput;
  readonly callContextId?: string;
  readonly conversationId?: string;
}

export interface CallEventRecord {
  readonly id: string;
  readonly provider: string;
  readonly providerEventId: string;
  readonly status?: CallStatus;
  readonly raw: unknown;
  readonly occurredAt: Date;
  readonly callContextId?: string;
  readonly conversationId?: string;
  readonly createdAt: Date;
}

export interface WebhookDeliveryInput {
  readonly projectId: string;
  readonly event: string;
  readonly url: string;
  readonly payload: unknown;
  /** Not before this time (default: now). */
  readonly notBefore?: TimestampInput;
}

export interface WebhookDelivery {
  readonly id: string;
  readonly projectId: string;
  readonly event: string;
  readonly url: string;
  readonly payload: unknown;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly lastError?: string;
  readonly nextAttemptAt?: Date;
  readonly createdAt: Date;
  readonly deliveredAt?: Date;
}

export type WebhookAttempt =
  | { readonly delivered: true }
  /** Without `retryAt` the delivery is given up (`failed`). */
  | { readonly delivered: false; readonly error: string; readonly retryAt?: TimestampInput };

export interface ConversationStore {
  create(input: CreateConversationInput): Promise<Conversation>;
  get(id: string): Promise<Conversation | undefined>;
  /** Moves the status forward; a terminal status is never left (the update is ignored, the row returned). */
  updateStatus(id: string, update: ConversationStatusUpdate): Promise<Conversation | undefined>;
  /** Ends the conversation once: a repeat keeps the first end time, status and duration. */
  end(id: string, end?: ConversationEnd): Promise<Conversation | undefined>;
  /**
   * Newest first. `beforeId` pages: the conversations created before that one (keyset on the database's
   * own (created_at, id), so no timestamp precision is lost in a JS Date cursor). `assistantId` keeps only
   * that assistant's conversations.
   */
  listByProject(
    projectId: string,
    options?: { readonly limit?: number; readonly beforeId?: string; readonly assistantId?: string },
  ): Promise<Conversation[]>;

  /** Inserts the messages not yet stored (by seq); returns the seqs actually inserted. */
  appendMessages(conversationId: string, messages: readonly MessageInput[]): Promise<number[]>;
  /** In seq order. */
  messages(conversationId: string): Promise<Message[]>;

  /** Upserts by (conversation, turn). */
  recordTurnMetrics(conversationId: string, metrics: readonly TurnMetrics[]): Promise<void>;
  /** In turn order. */
  turnMetrics(conversationId: string): Promise<StoredTurnMetrics[]>;

  /** `duplicate`: an event with this (provider, providerEventId) was recorded before; nothing changed. */
  recordCallEvent(event: CallEventInput): Promise<'recorded' | 'duplicate'>;
  /** In the order they happened. */
  callEvents(filter: { readonly callContextId: string } | { readonly conversationId: string }): Promise<CallEventRecord[]>;

  enqueueWebhook(delivery: WebhookDeliveryInput): Promise<WebhookDelivery>;
  /** Pending deliveries that are due, oldest first. */
  pendingWebhooks(options?: { readonly limit?: number }): Promise<WebhookDelivery[]>;
  recordWebhookAttempt(id: string, attempt: WebhookAttempt): Promise<WebhookDelivery | undefined>;
}

type Row = Record<string, unknown>;

const TERMINAL = sqlList(TERMINAL_CALL_STATUSES);

function toConversation(row: Row): Conversation {
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    assistantId: String(row.assistant_id),
    assistantVersion: toNumber(row.assistant_version, 'assistant_version'),
    channel: String(row.channel),
    direction: row.direction as CallDirection,
    status: row.status as CallStatus,
    startedAt: toDateOrUndefined(row.started_at),
    endedAt: toDateOrUndefined(row.ended_at),
    durationMs: toNumberOrUndefined(row.duration_ms),
    disconnectReason: toStringOrUndefined(row.disconnect_reason),
    metadata: toJson<Record<string, unknown>>(row.metadata) ?? {},
    variables: toJson<Record<string, string>>(row.variables) ?? {},
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
  };
}

function toMessage(row: Row): Message {
  const toolCalls = toJson<ToolCallRecord[] | null>(row.tool_calls);
  return {
    conversationId: String(row.conversation_id),
    seq: toNumber(row.seq, 'seq'),
    turnId: toNumberOrUndefined(row.turn_id),
    role: row.role as MessageRole,
    text: String(row.text),
    heardText: toStringOrUndefined(row.heard_text),
    interrupted: toBoolean(row.interrupted),
    toolCalls: toolCalls ?? undefined,
    toolCallId: toStringOrUndefined(row.tool_call_id),
    startedAt: toDateOrUndefined(row.started_at),
    endedAt: toDateOrUndefined(row.ended_at),
    createdAt: toDate(row.created_at, 'created_at'),
  };
}

function toStoredMetrics(row: Row): StoredTurnMetrics {
  const optional = (column: string) => toNumberOrUndefined(row[column], column);
  const providers: { stt?: string; llm?: string; tts?: string } = {};
  if (row.stt_provider != null) providers.stt = String(row.stt_provider);
  if (row.llm_provider != null) providers.llm = String(row.llm_provider);
  if (row.tts_provider != null) providers.tts = String(row.tts_provider);
  const metrics: StoredTurnMetrics = {
    conversationId: String(row.conversation_id),
    turnId: toNumber(row.turn_id, 'turn_id'),
    kind: row.kind as AssistantTurnKind,
    userSpeechEnd: optional('user_speech_end_ms'),
    sttFinal: optional('stt_final_ms'),
    llmRequest: optional('llm_request_ms'),
    llmFirstToken: optional('llm_first_token_ms'),
    ttsRequest: optional('tts_request_ms'),
    ttsFirstAudio: optional('tts_first_audio_ms'),
    firstAudioOut: optional('first_audio_out_ms'),
    voiceToVoiceMs: optional('voice_to_voice_ms'),
    overheadMs: toJson<TurnMetrics['overheadMs'] | null>(row.overhead_ms) ?? undefined,
    preemptive: toBoolean(row.preemptive),
    interrupted: toBoolean(row.interrupted),
    inputTokens: toNumber(row.input_tokens, 'input_tokens'),
    outputTokens: toNumber(row.output_tokens, 'output_tokens'),
    retrievalMs: optional('retrieval_ms'),
    retrievalHits: row.retrieval_hits == null ? undefined : toNumber(row.retrieval_hits, 'retrieval_hits'),
    retrievalTimedOut: row.retrieval_timed_out == null ? undefined : toBoolean(row.retrieval_timed_out),
    providers,
    createdAt: toDate(row.created_at, 'created_at'),
  };
  // Marks that did not happen are absent, as in TurnMetrics (not present-but-undefined).
  for (const key of Object.keys(metrics) as (keyof StoredTurnMetrics)[]) {
    if (metrics[key] === undefined) delete (metrics as Partial<StoredTurnMetrics>)[key];
  }
  return metrics;
}

function toCallEvent(row: Row): CallEventRecord {
  return {
    id: String(row.id),
    provider: String(row.provider),
    providerEventId: String(row.provider_event_id),
    status: (row.status ?? undefined) as CallStatus | undefined,
    raw: toJson(row.raw),
    occurredAt: toDate(row.occurred_at, 'occurred_at'),
    callContextId: toStringOrUndefined(row.call_context_id),
    conversationId: toStringOrUndefined(row.conversation_id),
    createdAt: toDate(row.created_at, 'created_at'),
  };
}

function toWebhook(row: Row): WebhookDelivery {
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    event: String(row.event),
    url: String(row.url),
    payload: toJson(row.payload),
    status: row.status as WebhookDelivery['status'],
    attempts: toNumber(row.attempts, 'attempts'),
    lastError: toStringOrUndefined(row.last_error),
    nextAttemptAt: toDateOrUndefined(row.next_attempt_at),
    createdAt: toDate(row.created_at, 'created_at'),
    deliveredAt: toDateOrUndefined(row.delivered_at),
  };
}

function limitOf(limit: number | undefined, fallback: number): number {
  return Math.max(1, Math.min(1000, Math.floor(limit ?? fallback)));
}

function integer(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

export function createConversationStore(db: SqlClient): ConversationStore {
  async function get(id: string): Promise<Conversation | undefined> {
    if (!isUuid(id)) return undefined;
    const [row] = await db.query<Row>('SELECT * FROM conversations WHERE id = $1::uuid', [id]);
    return row ? toConversation(row) : undefined;
  }

  async function end(id: string, details: ConversationEnd = {}): Promise<Conversation | undefined> {
    if (!isUuid(id)) return undefined;
    const status = details.status ?? 'completed';
    if (!TERMINAL_CALL_STATUSES.includes(status)) throw new RangeError(`end needs a terminal status (${TERMINAL_CALL_STATUSES.join(', ')}), got "${status}"`);
    const [row] = await db.query<Row>(
      `WITH ending AS (SELECT COALESCE($3::text::timestamptz, now()) AS at)
       UPDATE conversations c
          SET status = CASE WHEN c.status IN (${TERMINAL}) THEN c.status ELSE $2::text END,
              ended_at = ending.at,
              duration_ms = COALESCE($4::int,
                                     CASE WHEN c.started_at IS NULL THEN NULL
                                          ELSE GREATEST(0, round(extract(epoch FROM ending.at - c.started_at) * 1000))::int END),
              disconnect_reason = COALESCE($5::text, c.disconnect_reason),
              updated_at = now()
         FROM ending
        WHERE c.id = $1::uuid AND c.ended_at IS NULL
       RETURNING c.*`,
      [id, status, timestampParam(details.endedAt), details.durationMs === undefined ? null : Math.round(details.durationMs), details.disconnectReason ?? null],
    );
    return row ? toConversation(row) : get(id);
  }

  return {
    async create(input) {
      const id = input.id ?? globalThis.crypto.randomUUID();
      const inserted = await db.query<Row>(
        `INSERT INTO conversations (id, project_id, assistant_id, assistant_version, channel, direction, status, metadata, variables)
         VALUES ($1::uuid, $2::uuid, $3::uuid, $4::int, $5::text, $6::text, COALESCE($7::text, 'queued'), $8::text::jsonb, $9::text::jsonb)
         ON CONFLICT (id) DO NOTHING
         RETURNING *`,
        [
          id,
          input.projectId,
          input.assistantId,
          input.assistantVersion,
          input.channel,
          input.direction,
          input.status ?? null,
          jsonParam(input.metadata ?? {}),
          jsonParam(input.variables ?? {}),
        ],
      );
      const rows = inserted.length ? inserted : await db.query<Row>('SELECT * FROM conversations WHERE id = $1::uuid', [id]);
      return toConversation(onlyRow(rows, 'conversation insert'));
    },

    get,

    async updateStatus(id, { status, at }) {
      if (!isUuid(id)) return undefined;
      if (TERMINAL_CALL_STATUSES.includes(status)) return end(id, { status, endedAt: at });
      const [row] = await db.query<Row>(
        `UPDATE conversations
            SET status = CASE WHEN status IN (${TERMINAL}) THEN status ELSE $2::text END,
                started_at = CASE WHEN $2::text = 'in-progress' AND status NOT IN (${TERMINAL})
                                  THEN COALESCE(started_at, COALESCE($3::text::timestamptz, now())) ELSE started_at END,
                updated_at = now()
          WHERE id = $1::uuid
         RETURNING *`,
        [id, status, timestampParam(at)],
      );
      return row ? toConversation(row) : undefined;
    },

    end,

    async listByProject(projectId, options = {}) {
      if (!isUuid(projectId) || (options.beforeId !== undefined && !isUuid(options.beforeId))) return [];
      if (options.assistantId !== undefined && !isUuid(options.assistantId)) return [];
      const rows = await db.query<Row>(
        `SELECT * FROM conversations
          WHERE project_id = $1::uuid
            AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM conversations WHERE id = $2::uuid))
            AND ($4::uuid IS NULL OR assistant_id = $4::uuid)
          ORDER BY created_at DESC, id DESC
          LIMIT $3::int`,
        [projectId, options.beforeId ?? null, limitOf(options.limit, 50), options.assistantId ?? null],
      );
      return rows.map(toConversation);
    },

    async appendMessages(conversationId, messages) {
      if (messages.length === 0) return [];
      const records = messages.map((m) => ({
        seq: integer(m.seq, 'seq'),
        turn_id: m.turnId ?? null,
        role: m.role,
        text: m.text,
        heard_text: m.heardText ?? null,
        interrupted: m.interrupted ?? false,
        tool_calls: m.toolCalls ?? null,
        tool_call_id: m.toolCallId ?? null,
        started_at: timestampParam(m.startedAt),
        ended_at: timestampParam(m.endedAt),
      }));
      // One statement for the whole batch: a retry of a partly stored batch inserts only the missing seqs.
      const rows = await db.query<{ seq: unknown }>(
        `INSERT INTO messages (conversation_id, seq, turn_id, role, text, heard_text, interrupted, tool_calls, tool_call_id, started_at, ended_at)
         SELECT $1::uuid, m.seq, m.turn_id, m.role, m.text, m.heard_text, m.interrupted, m.tool_calls, m.tool_call_id, m.started_at, m.ended_at
           FROM jsonb_to_recordset($2::text::jsonb) AS m(seq int, turn_id int, role text, text text, heard_text text, interrupted boolean,
                                                 tool_calls jsonb, tool_call_id text, started_at timestamptz, ended_at timestamptz)
         ON CONFLICT (conversation_id, seq) DO NOTHING
         RETURNING seq`,
        [conversationId, JSON.stringify(records)],
      );
      return rows.map((r) => toNumber(r.seq, 'seq')).sort((a, b) => a - b);
    },

    async messages(conversationId) {
      if (!isUuid(conversationId)) return [];
      const rows = await db.query<Row>('SELECT * FROM messages WHERE conversation_id = $1::uuid ORDER BY seq', [conversationId]);
      return rows.map(toMessage);
    },

    async recordTurnMetrics(conversationId, metrics) {
      if (metrics.length === 0) return;
      const records = metrics.map((m) => ({
        turn_id: integer(m.turnId, 'turnId'),
        kind: m.kind,
        user_speech_end_ms: m.userSpeechEnd ?? null,
        stt_final_ms: m.sttFinal ?? null,
        llm_request_ms: m.llmRequest ?? null,
        llm_first_token_ms: m.llmFirstToken ?? null,
        tts_request_ms: m.ttsRequest ?? null,
        tts_first_audio_ms: m.ttsFirstAudio ?? null,
        first_audio_out_ms: m.firstAudioOut ?? null,
        voice_to_voice_ms: m.voiceToVoiceMs ?? null,
        overhead_ms: m.overheadMs ?? null,
        preemptive: m.preemptive ?? false,
        interrupted: m.interrupted,
        input_tokens: m.inputTokens,
        output_tokens: m.outputTokens,
        stt_provider: m.providers.stt ?? null,
        llm_provider: m.providers.llm ?? null,
        tts_provider: m.providers.tts ?? null,
        retrieval_ms: m.retrievalMs ?? null,
        retrieval_hits: m.retrievalHits ?? null,
        retrieval_timed_out: m.retrievalTimedOut ?? null,
      }));
      // A batch may name one turn twice (an update after the first record): the last one counts, and
      // ON CONFLICT DO UPDATE may not touch a row twice in one statement, so keep one per turn.
      const lastPerTurn = [...new Map(records.map((r) => [r.turn_id, r])).values()];
      await db.query(
        `INSERT INTO turn_metrics (conversation_id, turn_id, kind, user_speech_end_ms, stt_final_ms, llm_request_ms, llm_first_token_ms,
                                   tts_request_ms, tts_first_audio_ms, first_audio_out_ms, voice_to_voice_ms, overhead_ms, preemptive,
                                   interrupted, input_tokens, output_tokens, stt_provider, llm_provider, tts_provider,
                                   retrieval_ms, retrieval_hits, retrieval_timed_out)
         SELECT $1::uuid, m.* FROM jsonb_to_recordset($2::text::jsonb) AS m(
                  turn_id int, kind text, user_speech_end_ms float8, stt_final_ms float8, llm_request_ms float8, llm_first_token_ms float8,
                  tts_request_ms float8, tts_first_audio_ms float8, first_audio_out_ms float8, voice_to_voice_ms float8, overhead_ms jsonb,
                  preemptive boolean, interrupted boolean, input_tokens int, output_tokens int, stt_provider text, llm_provider text, tts_provider text,
                  retrieval_ms float8, retrieval_hits int, retrieval_timed_out boolean)
         ON CONFLICT (conversation_id, turn_id) DO UPDATE SET
           kind = excluded.kind, user_speech_end_ms = excluded.user_speech_end_ms, stt_final_ms = excluded.stt_final_ms,
           llm_request_ms = excluded.llm_request_ms, llm_first_token_ms = excluded.llm_first_token_ms,
           tts_request_ms = excluded.tts_request_ms, tts_first_audio_ms = excluded.tts_first_audio_ms,
           first_audio_out_ms = excluded.first_audio_out_ms, voice_to_voice_ms = excluded.voice_to_voice_ms,
           overhead_ms = excluded.overhead_ms, preemptive = excluded.preemptive, interrupted = excluded.interrupted,
           input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
           stt_provider = excluded.stt_provider, llm_provider = excluded.llm_provider, tts_provider = excluded.tts_provider,
           retrieval_ms = excluded.retrieval_ms, retrieval_hits = excluded.retrieval_hits, retrieval_timed_out = excluded.retrieval_timed_out`,
        [conversationId, JSON.stringify(lastPerTurn)],
      );
    },

    async turnMetrics(conversationId) {
      if (!isUuid(conversationId)) return [];
      const rows = await db.query<Row>('SELECT * FROM turn_metrics WHERE conversation_id = $1::uuid ORDER BY turn_id', [conversationId]);
      return rows.map(toStoredMetrics);
    },

    async recordCallEvent(event) {
      const rows = await db.query(
        `INSERT INTO call_events (provider, provider_event_id, status, raw, occurred_at, call_context_id, conversation_id)
         VALUES ($1::text, $2::text, $3::text, $4::text::jsonb, COALESCE($5::text::timestamptz, now()), $6::uuid, $7::uuid)
         ON CONFLICT (provider, provider_event_id) DO NOTHING
         RETURNING id`,
        [
          event.provider,
          event.providerEventId,
          event.status ?? null,
          jsonParam(event.raw ?? null),
          timestampParam(event.occurredAt),
          event.callContextId ?? null,
          event.conversationId ?? null,
        ],
      );
      return rows.length > 0 ? 'recorded' : 'duplicate';
    },

    async callEvents(filter) {
      const [column, id] = 'callContextId' in filter ? ['call_context_id', filter.callContextId] : ['conversation_id', filter.conversationId];
      if (!isUuid(id)) return [];
      const rows = await db.query<Row>(`SELECT * FROM call_events WHERE ${column} = $1::uuid ORDER BY occurred_at, created_at, id`, [id]);
      return rows.map(toCallEvent);
    },

    async enqueueWebhook(delivery) {
      const rows = await db.query<Row>(
        `INSERT INTO webhook_deliveries (project_id, event, url, payload, next_attempt_at)
         VALUES ($1::uuid, $2::text, $3::text, $4::text::jsonb, COALESCE($5::text::timestamptz, now()))
         RETURNING *`,
        [delivery.projectId, delivery.event, delivery.url, jsonParam(delivery.payload ?? null), timestampParam(delivery.notBefore)],
      );
      return toWebhook(onlyRow(rows, 'webhook delivery insert'));
    },

    async pendingWebhooks(options = {}) {
      const rows = await db.query<Row>(
        `SELECT * FROM webhook_deliveries
          WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
          ORDER BY next_attempt_at NULLS FIRST, created_at, id
          LIMIT $1::int`,
        [limitOf(options.limit, 100)],
      );
      return rows.map(toWebhook);
    },

    async recordWebhookAttempt(id, attempt) {
      if (!isUuid(id)) return undefined;
      const [row] = attempt.delivered
        ? await db.query<Row>(
            `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), next_attempt_at = NULL
              WHERE id = $1::uuid AND status = 'pending' RETURNING *`,
            [id],
          )
        : await db.query<Row>(
            `UPDATE webhook_deliveries
                SET status = CASE WHEN $3::text::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                    attempts = attempts + 1, last_error = $2::text, next_attempt_at = $3::text::timestamptz
              WHERE id = $1::uuid AND status = 'pending' RETURNING *`,
            [id, attempt.error, timestampParam(attempt.retryAt)],
          );
      if (row) return toWebhook(row);
      const [current] = await db.query<Row>('SELECT * FROM webhook_deliveries WHERE id = $1::uuid', [id]);
      return current ? toWebhook(current) : undefined;
    },
  };
}
