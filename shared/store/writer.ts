/**
 * The bounded batched writer: how a live call persists without ever waiting for the database.
 *
 * `enqueue(op)` is O(1), never blocks and never throws. A single background pump takes the queue in order,
 * in batches (when `maxBatchSize` ops are waiting, when the oldest has waited `maxBatchDelayMs`, or at once
 * after `flush()`/`requestFlush()`), and hands each batch to the injected `apply`.
 *
 * - **Order.** Ops are applied strictly in enqueue order, one batch at a time. Retries, spills to the journal
 *   and replays never reorder them.
 * - **Outage.** A failure that `isRetryable` accepts (DatabaseUnavailableError, anything with
 *   `retryable: true`, network errors, PostgreSQL connection/serialisation SQLSTATEs) retries the same batch
 *   after exponential backoff with jitter, keeping every later op queued behind it.
 * - **Bounded memory.** Past `spillAtOps` ops in memory, the pump moves everything in memory (the oldest ops,
 *   including a batch waiting for its retry) to the injected `Journal`, and later replays the journal before
 *   anything newer in memory. Memory never holds more than `maxMemoryOps` ops: past that (no journal, or the
 *   journal failing too, or one apply hanging for a long time) `enqueue` refuses the op, returns `false` and
 *   reports it as `dropped`. An op `enqueue` accepted (returned `true`) is kept, in memory or in the journal,
 *   until it is applied; `close()` journals what is still in memory.
 * - **Crash.** Journal records a previous process left behind are replayed first, before any new op.
 *   Ops that were only in memory when a process died are lost (memory is the bounded fast path by design;
 *   only the overflow and the remainder at shutdown go to the journal).
 * - **Bad data.** A batch that fails with a non-retryable error is retried one op at a time; the op that
 *   fails on its own is reported as `rejected` through `onError` and skipped, and the rest go on. An op
 *   that cannot be serialised for the journal is rejected the same way and does not cost the journal.
 *
 * The `apply` contract (what a store must implement):
 * - Apply all ops of the batch in order, as one transaction: all or nothing.
 * - Be idempotent: the same op may be applied more than once (a batch whose apply failed after it reached
 *   the database, a crash between apply and the journal's ack, a close deadline that journals a batch whose
 *   apply was still running). Key every write by the op's idempotency key or its natural key
 *   (ON CONFLICT DO NOTHING / DO UPDATE to the same values).
 * - Throw a retryable error (DatabaseUnavailableError) when the database could not be reached, and a
 *   non-retryable one when the op itself is wrong (constraint violation, invalid data).
 *
 * `flush()` never rejects: it resolves `{ status: 'flushed' }` once every op accepted before the call (and
 * every record the journal held at start-up) is applied or rejected, or `{ status: 'timeout', pending }` when
 * its optional `timeoutMs` passes first (the ops stay queued). `close()` refuses new ops, flushes within its
 * `timeoutMs` (default 10 s), then stops; whatever is still unapplied goes to the journal (`journaled`) or,
 * without a usable journal, is reported as `lost`.
 *
 * Web APIs only (runs in Durable Objects as well as on media nodes); time and randomness are injected.
 */
import { systemClock, type Clock, type TimerHandle } from '../contracts/clock';
import type { Journal } from './journal';
import { DatabaseUnavailableError } from './sql';

/** A serialisable write: plain JSON (no Date, Map, bigint, undefined inside arrays), with an idempotency key. */
export interface WriteOp<Kind extends string = string, Payload = unknown> {
  readonly kind: Kind;
  /**
   * Names the logical write (`conversation:<id>:message:<seq>`): for reports and for stores that deduplicate
   * by it. Applying an op twice must have the effect of applying it once.
   */
  readonly key: string;
  readonly payload: Payload;
}

/** What the writer stores in its journal: the op plus who queued it and its position in that writer. */
export interface JournalRecord<Op extends WriteOp = WriteOp> {
  /** The writer instance (random per process) that queued the op. */
  readonly writer: string;
  /** 1, 2, 3, ... in enqueue order within that writer instance. */
  readonly seq: number;
  readonly op: Op;
}

export type WriterErrorEvent<Op extends WriteOp> =
  /** A batch failed with a retryable error; it is tried again after `delayMs`. */
  | { readonly type: 'retrying'; readonly error: unknown; readonly attempt: number; readonly delayMs: number; readonly batchSize: number }
  /** A batch failed with a non-retryable error; its ops are now applied one by one to find the bad one. */
  | { readonly type: 'isolating'; readonly error: unknown; readonly batchSize: number }
  /** This op failed on its own with a non-retryable error: it is skipped (never applied). */
  | { readonly type: 'rejected'; readonly op: Op; readonly error: unknown }
  /** `enqueue` refused this op: memory is full (`maxMemoryOps`) or the writer is closing. */
  | { readonly type: 'dropped'; readonly op: Op; readonly reason: 'memory-full' | 'closed' }
  /** The journal failed; `disabled` means the writer goes on without it (memory only). */
  | { readonly type: 'journal'; readonly operation: 'open' | 'append' | 'read' | 'ack' | 'close'; readonly error: unknown; readonly disabled: boolean }
  /** `close()` could neither apply nor journal these ops. */
  | { readonly type: 'lost'; readonly count: number; readonly error?: unknown };

export interface BatchedWriterOptions<Op extends WriteOp> {
  /** Applies a batch in order, as one idempotent transaction (see the contract above). */
  apply(ops: readonly Op[]): Promise<void>;
  /** Durable overflow and crash leftovers. Without one, memory is the only buffer (`maxMemoryOps`). */
  journal?: Journal<JournalRecord<Op>>;
  clock?: Clock;
  /** [0, 1): the jitter source. */
  random?: () => number;
  /** Ops per `apply` call. Default 100. */
  maxBatchSize?: number;
  /** The longest an op waits for a batch to fill. Default 50 ms. */
  maxBatchDelayMs?: number;
  /** With a journal: more ops than this in memory move to the journal. Default 1,000. */
  spillAtOps?: number;
  /** Hard cap on ops held in memory; `enqueue` refuses beyond it. Default 10,000. */
  maxMemoryOps?: number;
  /** Backoff: initial * 2^(attempt-1), capped at max, times a random factor in [1 − jitter, 1]. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number; jitter?: number };
  isRetryable?: (error: unknown) => boolean;
  /**
   * Failures and refusals. `dropped` is reported on the caller's stack of `enqueue`, everything else from the
   * background pump. Keep it cheap; a throw is ignored.
   */
  onError?: (event: WriterErrorEvent<Op>) => void;
  /** Identifies this writer's records in the journal. Default: a random UUID. */
  writerId?: string;
}

export type FlushResult = { readonly status: 'flushed' } | { readonly status: 'timeout' | 'closed'; readonly pending: number };

export type CloseResult =
  | { readonly status: 'flushed' }
  /** Not everything was applied before the deadline; the rest is in the journal for the next start. */
  | { readonly status: 'journaled'; readonly pending: number }
  /** Some ops could be neither applied nor journaled. */
  | { readonly status: 'incomplete'; readonly lost: number; readonly journaled: number };

export interface WriterStats {
  readonly state: 'starting' | 'idle' | 'writing' | 'backoff' | 'closing' | 'closed';
  /** Ops held in memory, including a batch being applied or being moved to the journal. */
  readonly queued: number;
  /** Records waiting in the journal. */
  readonly journaled: number;
  /** Ops applied since start (journal replays included). */
  readonly applied: number;
  /** Ops skipped after failing on their own with a non-retryable error. */
  readonly rejected: number;
  /** Ops `enqueue` refused. */
  readonly dropped: number;
  /** Retryable apply failures so far. */
  readonly retries: number;
  /** Failed attempts since the last success: 0 when the database keeps up (a readiness signal). */
  readonly consecutiveFailures: number;
  readonly journalAvailable: boolean;
  readonly lastError?: string;
}

export interface BatchedWriter<Op extends WriteOp> {
  /** Queue an op. O(1); never throws; `false` means it was refused (reported as `dropped`). */
  enqueue(op: Op): boolean;
  /** Start writing everything queued so far now instead of waiting for the batch timer (call end). */
  requestFlush(): void;
  flush(options?: { timeoutMs?: number }): Promise<FlushResult>;
  close(options?: { timeoutMs?: number }): Promise<CloseResult>;
  stats(): WriterStats;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT']);
/** PostgreSQL SQLSTATEs worth retrying: connection exceptions, serialisation failure, deadlock, shutdown, too many connections. */
const RETRYABLE_SQLSTATE = /^(08...|40001|40P01|57P0[123]|53300)$/;

/**
 * The default retry policy: an explicit `retryable` flag wins (DatabaseUnavailableError, ProviderError,
 * JournalError); then network errors (Node error codes, the `postgres` package's connection codes, fetch's
 * TypeError, timeouts and aborts) and retryable SQLSTATEs. Anything else is taken as a problem with the data.
 */
export function isRetryableWriteError(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { retryable?: unknown; code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  if (typeof e.retryable === 'boolean') return e.retryable;
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || RETRYABLE_SQLSTATE.test(e.code))) return true;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  if (e.name === 'TypeError' && typeof e.message === 'string' && /fetch|network|connection/i.test(e.message)) return true;
  if (e.cause !== undefined && e.cause !== error) return isRetryableWriteError(e.cause);
  return false;
}

export function createBatchedWriter<Op extends WriteOp>(options: BatchedWriterOptions<Op>): BatchedWriter<Op> {
  return new Writer(options);
}

interface Batch<Op extends WriteOp> {
  readonly records: JournalRecord<Op>[];
  readonly source: 'memory' | 'journal';
  /** Journal records this batch stands for (invalid ones are rejected on read but still acked). */
  readonly ackCount: number;
  /** Records before `index` are done. */
  index: number;
  /** After a non-retryable failure: apply one record at a time. */
  isolating: boolean;
}

interface Waiter {
  readonly target: number;
  readonly resolve: (result: FlushResult) => void;
  timer?: TimerHandle;
}

class Writer<Op extends WriteOp> implements BatchedWriter<Op> {
  private readonly applyOps: (ops: readonly Op[]) => Promise<void>;
  private journal: Journal<JournalRecord<Op>> | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly maxBatchSize: number;
  private readonly maxBatchDelayMs: number;
  private readonly spillAtOps: number;
  private readonly maxMemoryOps: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly isRetryable: (error: unknown) => boolean;
  private readonly onError: ((event: WriterErrorEvent<Op>) => void) | undefined;
  private readonly id: string;

  private readonly memory = new Fifo<JournalRecord<Op>>();
  /** Records on their way to the journal (still in memory until the append resolves). */
  private spilling = 0;
  private inflight: Batch<Op> | undefined;
  private pendingAck = 0;

  private ready = false;
  private busy: Promise<void> | undefined;
  private busyKind: 'apply' | 'journal' | undefined;
  private kickQueued = false;
  private batchTimer: TimerHandle | undefined;
  private batchDue = false;
  private retryTimer: TimerHandle | undefined;
  private attempts = 0;
  private journalAttempts = 0;
  private journalRetryAtMs = 0;
  private unserialisableFound = false;

  private seq = 0;
  private doneSeq = 0;
  private urgentUntilSeq = 0;
  /** Records from a previous process still to replay. */
  private startupBacklog = 0;
  private readonly waiters = new Set<Waiter>();
  private closing = false;
  private stopped = false;
  private closePromise: Promise<CloseResult> | undefined;

  private applied = 0;
  private rejected = 0;
  private dropped = 0;
  private retries = 0;
  private consecutiveFailures = 0;
  private lastError: string | undefined;

  constructor(options: BatchedWriterOptions<Op>) {
    this.applyOps = options.apply;
    this.journal = options.journal;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.maxBatchSize = Math.max(1, options.maxBatchSize ?? 100);
    this.maxBatchDelayMs = Math.max(0, options.maxBatchDelayMs ?? 50);
    this.spillAtOps = Math.max(1, options.spillAtOps ?? 1_000);
    this.maxMemoryOps = Math.max(1, options.maxMemoryOps ?? 10_000);
    this.initialDelayMs = Math.max(1, options.retry?.initialDelayMs ?? 100);
    this.maxDelayMs = Math.max(this.initialDelayMs, options.retry?.maxDelayMs ?? 30_000);
    this.jitter = Math.min(1, Math.max(0, options.retry?.jitter ?? 0.5));
    this.isRetryable = options.isRetryable ?? isRetryableWriteError;
    this.onError = options.onError;
    this.id = options.writerId ?? globalThis.crypto.randomUUID();

    const journal = this.journal;
    if (!journal) {
      this.ready = true;
      return;
    }
    journal.open().then(
      () => {
        this.startupBacklog = journal.size;
        this.becomeReady();
      },
      (error: unknown) => {
        this.disableJournal('open', error);
        this.becomeReady();
      },
    );
  }

  // ---- the audio-path API ----

  enqueue(op: Op): boolean {
    try {
      if (this.closing) return this.refuse(op, 'closed');
      if (this.memoryCount() >= this.maxMemoryOps) return this.refuse(op, 'memory-full');
      this.memory.push({ writer: this.id, seq: ++this.seq, op });
      if (!this.busy && (this.batchTimer === undefined || this.memory.length >= this.maxBatchSize || this.memory.length > this.spillAtOps)) {
        this.scheduleKick();
      }
      return true;
    } catch {
      return false;
    }
  }

  requestFlush(): void {
    this.urgentUntilSeq = this.seq;
    this.scheduleKick();
  }

  flush(options: { timeoutMs?: number } = {}): Promise<FlushResult> {
    const target = this.seq;
    this.urgentUntilSeq = Math.max(this.urgentUntilSeq, target);
    if (this.isDone(target)) return Promise.resolve({ status: 'flushed' });
    if (this.stopped) return Promise.resolve({ status: 'closed', pending: this.pendingCount() });
    return new Promise<FlushResult>((resolve) => {
      const waiter: Waiter = { target, resolve };
      if (options.timeoutMs !== undefined) {
        waiter.timer = this.clock.setTimeout(() => {
          this.waiters.delete(waiter);
          resolve({ status: 'timeout', pending: this.pendingCount() });
        }, options.timeoutMs);
      }
      this.waiters.add(waiter);
      this.scheduleKick();
    });
  }

  close(options: { timeoutMs?: number } = {}): Promise<CloseResult> {
    this.closePromise ??= this.shutDown(options.timeoutMs ?? 10_000);
    return this.closePromise;
  }

  stats(): WriterStats {
    const state = this.stopped
      ? 'closed'
      : this.closing
        ? 'closing'
        : !this.ready
          ? 'starting'
          : this.retryTimer !== undefined
            ? 'backoff'
            : this.busy || this.inflight
              ? 'writing'
              : 'idle';
    return {
      state,
      queued: this.memoryCount(),
      journaled: this.journal?.size ?? 0,
      applied: this.applied,
      rejected: this.rejected,
      dropped: this.dropped,
      retries: this.retries,
      consecutiveFailures: this.consecutiveFailures,
      journalAvailable: this.journal !== undefined,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  // ---- the pump ----

  private scheduleKick(): void {
    if (this.kickQueued) return;
    this.kickQueued = true;
    queueMicrotask(() => {
      this.kickQueued = false;
      this.kick();
    });
  }

  /** Decide the next step. Exactly one step (apply, or one journal operation) runs at a time. */
  private kick(): void {
    if (this.busy || this.stopped || !this.ready) return;
    if (this.shouldSpill()) return this.run('journal', () => this.spill());
    if (this.retryTimer !== undefined) return;
    if (this.pendingAck > 0 && this.journal) return this.run('journal', () => this.ackJournal());
    if (this.inflight) return this.run('apply', () => this.applyInflight());
    if (this.journal && this.journal.size > 0) return this.run('journal', () => this.readJournal());
    const oldest = this.memory.peek();
    if (!oldest) {
      this.clearBatchTimer();
      return;
    }
    if (this.memory.length >= this.maxBatchSize || this.batchDue || this.closing || oldest.seq <= this.urgentUntilSeq) {
      this.takeFromMemory();
      return this.run('apply', () => this.applyInflight());
    }
    this.batchTimer ??= this.clock.setTimeout(() => {
      this.batchTimer = undefined;
      this.batchDue = true;
      this.kick();
    }, this.maxBatchDelayMs);
  }

  private run(kind: 'apply' | 'journal', step: () => Promise<void>): void {
    const done = (async () => {
      try {
        await step();
      } catch (error) {
        // A bug in a step must not stop the pump: back off and go on.
        this.lastError = describe(error);
        this.scheduleRetry(undefined, error);
      }
    })();
    this.busy = done;
    this.busyKind = kind;
    void done.then(() => {
      if (this.busy === done) {
        this.busy = undefined;
        this.busyKind = undefined;
      }
      this.resolveWaiters();
      this.kick();
    });
  }

  private takeFromMemory(): void {
    const records = this.memory.shift(this.maxBatchSize);
    this.inflight = { records, source: 'memory', ackCount: 0, index: 0, isolating: false };
    if (this.memory.length === 0) {
      this.batchDue = false;
      this.clearBatchTimer();
    }
  }

  private async applyInflight(): Promise<void> {
    const batch = this.inflight;
    if (!batch) return;
    const records = batch.isolating ? batch.records.slice(batch.index, batch.index + 1) : batch.records.slice(batch.index);
    const ops = records.map((r) => r.op);
    try {
      await this.applyOps(ops);
    } catch (error) {
      // A close deadline passed while this apply ran: the batch was journaled, nothing left to do here.
      if (this.stopped || this.inflight !== batch) return;
      this.lastError = describe(error);
      if (this.isRetryable(error)) {
        this.retries++;
        this.scheduleRetry({ type: 'retrying', batchSize: ops.length }, error);
        return;
      }
      this.attempts = 0;
      if (!batch.isolating && ops.length > 1) {
        batch.isolating = true;
        this.report({ type: 'isolating', error, batchSize: ops.length });
        return;
      }
      const [record] = records;
      if (record) {
        this.rejected++;
        this.report({ type: 'rejected', op: record.op, error });
      }
      this.finishRecords(batch, records.length);
      return;
    }
    if (this.stopped || this.inflight !== batch) return;
    this.attempts = 0;
    this.consecutiveFailures = 0;
    this.applied += records.length;
    this.finishRecords(batch, records.length);
  }

  /** The next `count` records of the batch are done (applied or rejected). */
  private finishRecords(batch: Batch<Op>, count: number): void {
    for (let i = batch.index; i < batch.index + count; i++) {
      const record = batch.records[i];
      if (!record) continue;
      if (record.writer === this.id) this.doneSeq = Math.max(this.doneSeq, record.seq);
      else if (this.startupBacklog > 0) this.startupBacklog--;
    }
    batch.index += count;
    if (batch.index >= batch.records.length) {
      this.inflight = undefined;
      if (batch.source === 'journal' && this.journal) this.pendingAck += batch.ackCount;
    }
  }

  private async readJournal(): Promise<void> {
    const journal = this.journal;
    if (!journal) return;
    let raw: readonly unknown[];
    try {
      raw = await journal.read(this.maxBatchSize);
    } catch (error) {
      this.journalFailed('read', error);
      return;
    }
    this.journalAttempts = 0;
    if (raw.length === 0) {
      // `size` says there is more, `read` finds nothing: the journal is inconsistent; stop relying on it.
      this.disableJournal('read', new Error(`JOURNAL_INCONSISTENT: ${journal.size} records pending but none could be read`));
      return;
    }
    const records: JournalRecord<Op>[] = [];
    for (const record of raw) {
      if (isJournalRecord<Op>(record)) {
        records.push(record);
      } else {
        if (this.startupBacklog > 0) this.startupBacklog--;
        this.rejected++;
        this.report({ type: 'rejected', op: record as Op, error: new Error('JOURNAL_RECORD_INVALID: not a writer record ({ writer, seq, op }); skipped') });
      }
    }
    this.inflight = { records, source: 'journal', ackCount: raw.length, index: 0, isolating: false };
    if (records.length === 0) this.finishRecords(this.inflight, 0);
  }

  private async ackJournal(): Promise<void> {
    const journal = this.journal;
    if (!journal) return;
    const count = this.pendingAck;
    try {
      await journal.ack(count);
    } catch (error) {
      this.journalFailed('ack', error);
      return;
    }
    this.journalAttempts = 0;
    this.pendingAck -= count;
  }

  private shouldSpill(): boolean {
    return this.journal !== undefined && this.memoryCount() > this.spillAtOps && this.clock.now() >= this.journalRetryAtMs;
  }

  /** Move the oldest ops in memory (a batch waiting for its retry first) to the end of the journal. */
  private async spill(): Promise<void> {
    const journal = this.journal;
    if (!journal) return;
    const records: JournalRecord<Op>[] = [];
    const batch = this.inflight;
    // A memory batch is only ever taken while the journal is empty, so it precedes everything journaled.
    if (batch && batch.source === 'memory') {
      for (let i = batch.index; i < batch.records.length; i++) records.push(batch.records[i]!);
      this.inflight = undefined;
    }
    this.memory.drainInto(records);
    this.batchDue = false;
    this.clearBatchTimer();
    this.spilling = records.length;
    try {
      await journal.append(records);
    } catch (error) {
      this.spilling = 0;
      // An op that cannot be serialised must not cost us the journal: reject it, keep the rest in memory.
      this.memory.unshiftAll(this.withoutUnserialisable(records));
      this.journalFailed('append', error);
      return;
    }
    this.spilling = 0;
    this.journalAttempts = 0;
  }

  private scheduleRetry(event: { type: 'retrying'; batchSize: number } | undefined, error: unknown): void {
    if (this.stopped) return;
    this.attempts++;
    this.consecutiveFailures++;
    const delayMs = this.backoffDelay(this.attempts);
    if (event) this.report({ ...event, error, attempt: this.attempts, delayMs });
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, delayMs);
  }

  /** The records that survive JSON; the others are reported as rejected and count as done. */
  private withoutUnserialisable(records: JournalRecord<Op>[]): JournalRecord<Op>[] {
    const kept: JournalRecord<Op>[] = [];
    for (const record of records) {
      try {
        JSON.stringify(record);
        kept.push(record);
      } catch (error) {
        this.rejected++;
        this.doneSeq = Math.max(this.doneSeq, record.seq);
        this.report({ type: 'rejected', op: record.op, error });
      }
    }
    this.unserialisableFound = kept.length < records.length;
    return kept;
  }

  private journalFailed(operation: 'append' | 'read' | 'ack', error: unknown): void {
    this.lastError = describe(error);
    if (operation === 'append' && this.unserialisableFound) {
      // The journal is fine; one op was not. Try again with the rest at once.
      this.unserialisableFound = false;
      return;
    }
    const retryable = this.isRetryable(error);
    if (!retryable) {
      this.disableJournal(operation, error);
      return;
    }
    this.report({ type: 'journal', operation, error, disabled: false });
    if (this.stopped) return;
    this.journalAttempts++;
    const delayMs = this.backoffDelay(this.journalAttempts);
    if (operation === 'append') {
      // Memory keeps the ops meanwhile (up to maxMemoryOps); the database may well come back first.
      this.journalRetryAtMs = this.clock.now() + delayMs;
      return;
    }
    this.consecutiveFailures++;
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, delayMs);
  }

  /** Go on without the journal: its pending records stay where they are, for the next start. */
  private disableJournal(operation: 'open' | 'append' | 'read' | 'ack', error: unknown): void {
    this.lastError = describe(error);
    this.journal = undefined;
    this.startupBacklog = 0;
    this.pendingAck = 0;
    this.report({ type: 'journal', operation, error, disabled: true });
    this.resolveWaiters();
  }

  private backoffDelay(attempt: number): number {
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.min(30, attempt - 1));
    return Math.max(1, Math.round(base * (1 - this.jitter * this.random())));
  }

  // ---- bookkeeping ----

  private becomeReady(): void {
    this.ready = true;
    this.resolveWaiters();
    this.kick();
  }

  private refuse(op: Op, reason: 'memory-full' | 'closed'): false {
    this.dropped++;
    this.report({ type: 'dropped', op, reason });
    return false;
  }

  private memoryCount(): number {
    const batch = this.inflight;
    const inflight = batch && batch.source === 'memory' ? batch.records.length - batch.index : 0;
    return this.memory.length + this.spilling + inflight;
  }

  private pendingCount(): number {
    return this.memoryCount() + (this.journal?.size ?? 0);
  }

  private isDone(target: number): boolean {
    return this.ready && this.doneSeq >= target && this.startupBacklog === 0;
  }

  private resolveWaiters(): void {
    for (const waiter of this.waiters) {
      if (!this.isDone(waiter.target)) continue;
      this.waiters.delete(waiter);
      if (waiter.timer !== undefined) this.clock.clearTimeout(waiter.timer);
      waiter.resolve({ status: 'flushed' });
    }
  }

  private clearBatchTimer(): void {
    if (this.batchTimer === undefined) return;
    this.clock.clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
  }

  private report(event: WriterErrorEvent<Op>): void {
    try {
      this.onError?.(event);
    } catch {
      // A failing error sink must not stop the writer.
    }
  }

  private async journalAtClose(journal: Journal<JournalRecord<Op>>, left: JournalRecord<Op>[]): Promise<CloseResult> {
    let failure: unknown;
    try {
      await journal.append(left);
      return { status: 'journaled', pending: journal.size };
    } catch (error) {
      failure = error;
    }
    const kept = this.withoutUnserialisable(left);
    if (this.unserialisableFound) {
      this.unserialisableFound = false;
      try {
        if (kept.length > 0) await journal.append(kept);
        return { status: 'journaled', pending: journal.size };
      } catch (error) {
        failure = error;
      }
    }
    this.report({ type: 'lost', count: kept.length, error: failure });
    return { status: 'incomplete', lost: kept.length, journaled: journal.size };
  }

  private async shutDown(timeoutMs: number): Promise<CloseResult> {
    this.closing = true;
    const flushed = await this.flush({ timeoutMs });
    this.stopped = true;
    this.clearBatchTimer();
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // A journal step in progress finishes first (an apply in progress is not waited for: it may hang).
    if (this.busy && this.busyKind === 'journal') await this.busy;
    for (const waiter of this.waiters) {
      if (waiter.timer !== undefined) this.clock.clearTimeout(waiter.timer);
      waiter.resolve({ status: 'closed', pending: this.pendingCount() });
    }
    this.waiters.clear();

    const journal = this.journal;
    if (journal && this.pendingAck > 0) {
      try {
        await journal.ack(this.pendingAck);
        this.pendingAck = 0;
      } catch (error) {
        // Those records were applied; replaying them at the next start is harmless (idempotent apply).
        this.report({ type: 'journal', operation: 'ack', error, disabled: false });
      }
    }

    const left: JournalRecord<Op>[] = [];
    const batch = this.inflight;
    if (batch && batch.source === 'memory') for (let i = batch.index; i < batch.records.length; i++) left.push(batch.records[i]!);
    this.inflight = undefined;
    this.memory.drainInto(left);

    let result: CloseResult;
    if (flushed.status === 'flushed' && left.length === 0) {
      result = { status: 'flushed' };
    } else if (left.length === 0) {
      result = { status: 'journaled', pending: journal?.size ?? 0 };
    } else if (!journal) {
      this.report({ type: 'lost', count: left.length });
      result = { status: 'incomplete', lost: left.length, journaled: 0 };
    } else {
      result = await this.journalAtClose(journal, left);
    }
    if (journal) {
      try {
        await journal.close();
      } catch (error) {
        this.report({ type: 'journal', operation: 'close', error, disabled: true });
      }
    }
    return result;
  }
}

function isJournalRecord<Op extends WriteOp>(value: unknown): value is JournalRecord<Op> {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as { writer?: unknown; seq?: unknown; op?: unknown };
  const op = r.op as { kind?: unknown; key?: unknown } | null | undefined;
  return typeof r.writer === 'string' && typeof r.seq === 'number' && typeof op === 'object' && op !== null && typeof op.kind === 'string' && typeof op.key === 'string';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A FIFO with O(1) amortised push and shift. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(max: number): T[] {
    const out = this.items.slice(this.head, this.head + max);
    this.head += out.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  drainInto(out: T[]): void {
    for (let i = this.head; i < this.items.length; i++) out.push(this.items[i]!);
    this.items = [];
    this.head = 0;
  }

  unshiftAll(front: readonly T[]): void {
    this.items = [...front, ...this.items.slice(this.head)];
    this.head = 0;
  }
}
