import type { CallDirection, CallStatus } from '../contracts/call-status';
import { TERMINAL_CALL_STATUSES } from '../contracts/call-status';
import {
  isUuid,
  jsonParam,
  listParam,
  onlyRow,
  sqlList,
  toDate,
  toDateOrUndefined,
  toJson,
  toNumber,
  toStringOrUndefined,
} from './rows';
import type { SqlClient } from './sql';
import { randomToken, sha256Hex } from './tokens';

/**
 * Call contexts: everything a media connection needs to run a call, found by the id in its URL
 * (`/v1/talk/{provider}/ctx/{contextId}`), so the media socket never re-authenticates.
 *
 * Life: `pending` (created with the call) → `claimed` (exactly once, by the first media connection, which gets
 * a resume token) → `completed` | `failed` | `canceled`. A claimed context whose socket dropped is `detach`ed:
 * for `resumeWindowMs` (30 s) the client may re-attach by presenting its current token, which `resume`
 * consumes and replaces, so a second drop in the same call works the same way.
 *
 * Every time comparison uses the database's `now()`, so nodes with skewed clocks agree. Each transition is
 * one SQL statement (an UPDATE guarded by its preconditions, with a fallback SELECT in the same statement
 * that says why nothing changed): concurrent claims race inside PostgreSQL's row lock, not in JS.
 */

export type CallContextStatus = 'pending' | 'claimed' | 'completed' | 'failed' | 'canceled';
/** The statuses `updateStatus` may set; `claimed` is only reachable through `claim` (which issues the token). */
export type FinalContextStatus = 'completed' | 'failed' | 'canceled';

export const TERMINAL_CONTEXT_STATUSES: readonly FinalContextStatus[] = ['completed', 'failed', 'canceled'];
export const DEFAULT_CONTEXT_TTL_MS = 10 * 60_000;
export const DEFAULT_RESUME_WINDOW_MS = 30_000;

/** Media WebSocket close codes (ARCHITECTURE.md). */
export const MEDIA_CLOSE_CODES = {
  badResumeToken: 4401,
  unknownContext: 4404,
  alreadyClaimed: 4409,
  expired: 4410,
} as const;

export interface CallContext {
  readonly id: string;
  readonly status: CallContextStatus;
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  readonly conversationId: string;
  /** Channel/carrier that carries the media: `twilio`, `vonage`, `exotel`, `asterisk`, `sip`, `web`, ... */
  readonly provider: string;
  readonly direction: CallDirection;
  readonly caller?: string;
  readonly callee?: string;
  /** The carrier's id of the call: Twilio CallSid, Vonage uuid, SIP Call-ID, ... */
  readonly channelId?: string;
  readonly callStatus: CallStatus;
  readonly failureClass?: string;
  readonly failureReason?: string;
  readonly disconnectReason?: string;
  readonly variables: Readonly<Record<string, string>>;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly expiresAt: Date;
  readonly claimedAt?: Date;
  /** Set while the claimed session has no socket; cleared by `resume`. */
  readonly detachedAt?: Date;
  /** End of the resume window of the current detach. */
  readonly resumeExpiresAt?: Date;
}

export interface CreateCallContextInput {
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  readonly conversationId: string;
  readonly provider: string;
  readonly direction: CallDirection;
  readonly caller?: string;
  readonly callee?: string;
  readonly channelId?: string;
  readonly callStatus?: CallStatus;
  readonly variables?: Readonly<Record<string, string>>;
  /** How long the context may wait for its media connection; default 10 minutes. */
  readonly ttlMs?: number;
}

/**
 * `already-claimed` and `expired` carry the row as the statement saw it (a claim that lost a race sees the
 * row from before the winner committed). A context ended before anything claimed it (canceled, no answer)
 * reports `expired`: it can no longer be claimed and never was.
 */
export type ClaimResult =
  | { readonly outcome: 'claimed'; readonly context: CallContext; readonly resumeToken: string }
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'already-claimed'; readonly context: CallContext }
  | { readonly outcome: 'expired'; readonly context: CallContext };

export type DetachResult =
  | { readonly outcome: 'detached'; readonly context: CallContext }
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'not-claimed'; readonly context: CallContext };

/**
 * Why a resume was refused (all close the socket with 4401). A wrong or used token is `bad-token` whatever
 * the state, so a caller without the token learns nothing more; `not-detached`: the server still holds a
 * socket for the call (detach it first); `window-closed`: the 30 s passed; `ended`: the context is no longer
 * claimed.
 */
export type ResumeRefusal = 'bad-token' | 'not-detached' | 'window-closed' | 'ended';

export type ResumeResult =
  | { readonly outcome: 'resumed'; readonly context: CallContext; readonly resumeToken: string }
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'refused'; readonly reason: ResumeRefusal; readonly context: CallContext };

export interface CallContextPatch {
  readonly status?: FinalContextStatus;
  readonly callStatus?: CallStatus;
  readonly channelId?: string;
  readonly failureClass?: string;
  readonly failureReason?: string;
  readonly disconnectReason?: string;
}

/** The compare-and-set guard: the update applies only if the row's current values are among these. */
export interface StatusExpectation {
  readonly status?: CallContextStatus | readonly CallContextStatus[];
  readonly callStatus?: CallStatus | readonly CallStatus[];
}

export type UpdateStatusResult =
  | { readonly outcome: 'updated'; readonly context: CallContext }
  | { readonly outcome: 'unknown' }
  /** The guard did not hold, or the patch would have moved a terminal status: nothing changed. */
  | { readonly outcome: 'conflict'; readonly context: CallContext };

export interface CallContextStore {
  create(input: CreateCallContextInput): Promise<CallContext>;
  /** Atomic pending → claimed, exactly once; refuses expired contexts. Returns a fresh resume token. */
  claim(id: string): Promise<ClaimResult>;
  /** The claimed session's socket dropped: starts the resume window (idempotent; does not extend it). */
  detach(id: string): Promise<DetachResult>;
  /** Re-attach within the window with the current token: consumes it and returns the next one. */
  resume(id: string, resumeToken: string): Promise<ResumeResult>;
  get(id: string): Promise<CallContext | undefined>;
  /** The newest context of a carrier's call id. */
  getByChannelId(provider: string, channelId: string): Promise<CallContext | undefined>;
  /**
   * Compare-and-set: applies `patch` only if the row matches `expected` (a bare status or list means the
   * context status). A terminal context status or call status is never changed to another value.
   */
  updateStatus(
    id: string,
    patch: CallContextPatch,
    expected: StatusExpectation | CallContextStatus | readonly CallContextStatus[],
  ): Promise<UpdateStatusResult>;
}

export interface CallContextStoreOptions {
  readonly resumeWindowMs?: number;
  readonly defaultTtlMs?: number;
}

/** The media socket close code for a failed claim or resume (undefined when it succeeded). */
export function mediaCloseCode(result: ClaimResult | ResumeResult): number | undefined {
  switch (result.outcome) {
    case 'claimed':
    case 'resumed':
      return undefined;
    case 'unknown':
      return MEDIA_CLOSE_CODES.unknownContext;
    case 'already-claimed':
      return MEDIA_CLOSE_CODES.alreadyClaimed;
    case 'expired':
      return MEDIA_CLOSE_CODES.expired;
    case 'refused':
      return MEDIA_CLOSE_CODES.badResumeToken;
  }
}

type Row = Record<string, unknown>;

function toCallContext(row: Row): CallContext {
  return {
    id: String(row.id),
    status: row.status as CallContextStatus,
    projectId: String(row.project_id),
    assistantId: String(row.assistant_id),
    assistantVersion: toNumber(row.assistant_version, 'assistant_version'),
    conversationId: String(row.conversation_id),
    provider: String(row.provider),
    direction: row.direction as CallDirection,
    caller: toStringOrUndefined(row.caller),
    callee: toStringOrUndefined(row.callee),
    channelId: toStringOrUndefined(row.channel_id),
    callStatus: row.call_status as CallStatus,
    failureClass: toStringOrUndefined(row.failure_class),
    failureReason: toStringOrUndefined(row.failure_reason),
    disconnectReason: toStringOrUndefined(row.disconnect_reason),
    variables: toJson<Record<string, string>>(row.variables) ?? {},
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
    expiresAt: toDate(row.expires_at, 'expires_at'),
    claimedAt: toDateOrUndefined(row.claimed_at),
    detachedAt: toDateOrUndefined(row.detached_at),
    resumeExpiresAt: toDateOrUndefined(row.resume_expires_at),
  };
}

const TERMINAL_CONTEXT = sqlList(TERMINAL_CONTEXT_STATUSES);
const TERMINAL_CALL = sqlList(TERMINAL_CALL_STATUSES);
const MS = `interval '1 millisecond'`;

function positiveMs(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

export function createCallContextStore(db: SqlClient, options: CallContextStoreOptions = {}): CallContextStore {
  const resumeWindowMs = positiveMs(options.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS, 'resumeWindowMs');
  const defaultTtlMs = positiveMs(options.defaultTtlMs ?? DEFAULT_CONTEXT_TTL_MS, 'defaultTtlMs');

  return {
    async create(input) {
      const ttlMs = positiveMs(input.ttlMs ?? defaultTtlMs, 'ttlMs');
      const rows = await db.query<Row>(
        `INSERT INTO call_contexts (id, project_id, assistant_id, assistant_version, conversation_id, provider, direction,
                                    caller, callee, channel_id, call_status, variables, expires_at)
         VALUES ($1::uuid, $2::uuid, $3::uuid, $4::int, $5::uuid, $6::text, $7::text, $8::text, $9::text, $10::text,
                 COALESCE($11::text, 'queued'), $12::text::jsonb, now() + $13::double precision * ${MS})
         RETURNING *`,
        [
          globalThis.crypto.randomUUID(),
          input.projectId,
          input.assistantId,
          input.assistantVersion,
          input.conversationId,
          input.provider,
          input.direction,
          input.caller ?? null,
          input.callee ?? null,
          input.channelId ?? null,
          input.callStatus ?? null,
          jsonParam(input.variables ?? {}),
          ttlMs,
        ],
      );
      return toCallContext(onlyRow(rows, 'call context insert'));
    },

    async claim(id) {
      if (!isUuid(id)) return { outcome: 'unknown' };
      const resumeToken = randomToken();
      const rows = await db.query<Row>(
        `WITH claimed AS (
           UPDATE call_contexts
              SET status = 'claimed', claimed_at = now(), updated_at = now(),
                  resume_token_hash = $2::text, detached_at = NULL, resume_expires_at = NULL
            WHERE id = $1::uuid AND status = 'pending' AND expires_at > now()
           RETURNING *
         )
         SELECT 'claimed' AS outcome, claimed.* FROM claimed
         UNION ALL
         SELECT CASE
                  WHEN c.status = 'pending' AND c.expires_at <= now() THEN 'expired'
                  WHEN c.status IN (${TERMINAL_CONTEXT}) AND c.claimed_at IS NULL THEN 'expired'
                  ELSE 'already-claimed'
                END, c.*
           FROM call_contexts c
          WHERE c.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM claimed)`,
        [id, await sha256Hex(resumeToken)],
      );
      const [row] = rows;
      if (!row) return { outcome: 'unknown' };
      const context = toCallContext(row);
      if (row.outcome === 'claimed') return { outcome: 'claimed', context, resumeToken };
      return { outcome: row.outcome === 'expired' ? 'expired' : 'already-claimed', context };
    },

    async detach(id) {
      if (!isUuid(id)) return { outcome: 'unknown' };
      const rows = await db.query<Row>(
        `WITH detached AS (
           UPDATE call_contexts
              SET detached_at = now(), resume_expires_at = now() + $2::double precision * ${MS}, updated_at = now()
            WHERE id = $1::uuid AND status = 'claimed' AND detached_at IS NULL
           RETURNING *
         )
         SELECT 'detached' AS outcome, detached.* FROM detached
         UNION ALL
         SELECT CASE WHEN c.status = 'claimed' THEN 'detached' ELSE 'not-claimed' END, c.*
           FROM call_contexts c
          WHERE c.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM detached)`,
        [id, resumeWindowMs],
      );
      const [row] = rows;
      if (!row) return { outcome: 'unknown' };
      return { outcome: row.outcome === 'detached' ? 'detached' : 'not-claimed', context: toCallContext(row) };
    },

    async resume(id, presented) {
      if (!isUuid(id)) return { outcome: 'unknown' };
      const resumeToken = randomToken();
      const rows = await db.query<Row>(
        `WITH resumed AS (
           UPDATE call_contexts
              SET resume_token_hash = $3::text, detached_at = NULL, resume_expires_at = NULL, updated_at = now()
            WHERE id = $1::uuid AND status = 'claimed' AND resume_token_hash = $2::text
              AND detached_at IS NOT NULL AND resume_expires_at > now()
           RETURNING *
         )
         SELECT 'resumed' AS outcome, resumed.* FROM resumed
         UNION ALL
         SELECT CASE
                  WHEN c.resume_token_hash IS DISTINCT FROM $2::text THEN 'bad-token'
                  WHEN c.status <> 'claimed' THEN 'ended'
                  WHEN c.detached_at IS NULL THEN 'not-detached'
                  WHEN c.resume_expires_at <= now() THEN 'window-closed'
                  ELSE 'bad-token' -- a concurrent resume consumed the token first
                END, c.*
           FROM call_contexts c
          WHERE c.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM resumed)`,
        [id, await sha256Hex(presented), await sha256Hex(resumeToken)],
      );
      const [row] = rows;
      if (!row) return { outcome: 'unknown' };
      const context = toCallContext(row);
      if (row.outcome === 'resumed') return { outcome: 'resumed', context, resumeToken };
      return { outcome: 'refused', reason: row.outcome as ResumeRefusal, context };
    },

    async get(id) {
      if (!isUuid(id)) return undefined;
      const [row] = await db.query<Row>('SELECT * FROM call_contexts WHERE id = $1::uuid', [id]);
      return row ? toCallContext(row) : undefined;
    },

    async getByChannelId(provider, channelId) {
      const [row] = await db.query<Row>(
        `SELECT * FROM call_contexts WHERE provider = $1::text AND channel_id = $2::text
         ORDER BY created_at DESC, id LIMIT 1`,
        [provider, channelId],
      );
      return row ? toCallContext(row) : undefined;
    },

    async updateStatus(id, patch, expected) {
      if (!isUuid(id)) return { outcome: 'unknown' };
      const guard: StatusExpectation = typeof expected === 'string' || Array.isArray(expected)
        ? { status: expected as CallContextStatus | readonly CallContextStatus[] }
        : (expected as StatusExpectation);
      const rows = await db.query<Row>(
        `WITH updated AS (
           UPDATE call_contexts
              SET status = COALESCE($2::text, status),
                  call_status = COALESCE($3::text, call_status),
                  channel_id = COALESCE($4::text, channel_id),
                  failure_class = COALESCE($5::text, failure_class),
                  failure_reason = COALESCE($6::text, failure_reason),
                  disconnect_reason = COALESCE($7::text, disconnect_reason),
                  updated_at = now()
            WHERE id = $1::uuid
              AND ($8::text IS NULL OR status = ANY (string_to_array($8::text, ',')))
              AND ($9::text IS NULL OR call_status = ANY (string_to_array($9::text, ',')))
              AND ($2::text IS NULL OR status = $2::text OR status NOT IN (${TERMINAL_CONTEXT}))
              AND ($3::text IS NULL OR call_status = $3::text OR call_status NOT IN (${TERMINAL_CALL}))
           RETURNING *
         )
         SELECT 'updated' AS outcome, updated.* FROM updated
         UNION ALL
         SELECT 'conflict', c.* FROM call_contexts c WHERE c.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM updated)`,
        [
          id,
          patch.status ?? null,
          patch.callStatus ?? null,
          patch.channelId ?? null,
          patch.failureClass ?? null,
          patch.failureReason ?? null,
          patch.disconnectReason ?? null,
          listParam(guard.status),
          listParam(guard.callStatus),
        ],
      );
      const [row] = rows;
      if (!row) return { outcome: 'unknown' };
      return { outcome: row.outcome === 'updated' ? 'updated' : 'conflict', context: toCallContext(row) };
    },
  };
}
