import { describe, expect, it } from 'vitest';
import { createMemoryJournal, JournalError, type Journal } from '../../shared/store/journal';
import { DatabaseUnavailableError } from '../../shared/store/sql';
import {
  createBatchedWriter,
  isRetryableWriteError,
  type BatchedWriterOptions,
  type JournalRecord,
  type WriteOp,
  type WriterErrorEvent,
} from '../../shared/store/writer';
import { createFakeClock, settle, type FakeClock } from '../fakes/clock';

type Op = WriteOp<'put', { n: number }>;
const op = (n: number): Op => ({ kind: 'put', key: `put:${n}`, payload: { n } });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A database that records what it applied and can be taken down, slowed, or fed bad rows. */
function fakeDatabase() {
  const db = {
    batches: [] as number[][],
    applied: [] as number[],
    attempts: [] as { atMs: number; ops: number[] }[],
    down: false,
    bad: new Set<number>(),
    /** When set, every apply waits for this promise (a hung connection). */
    hang: undefined as Promise<void> | undefined,
  };
  let clock: FakeClock | undefined;
  const apply = async (ops: readonly Op[]) => {
    const ns = ops.map((o) => o.payload.n);
    db.attempts.push({ atMs: clock?.now() ?? 0, ops: ns });
    if (db.hang) await db.hang;
    if (db.down) throw new DatabaseUnavailableError('connect ECONNREFUSED 127.0.0.1:5432');
    const bad = ns.find((n) => db.bad.has(n));
    if (bad !== undefined) throw Object.assign(new Error(`value out of range for op ${bad}`), { code: '22003' });
    // One transaction: all of the batch or nothing.
    db.batches.push(ns);
    db.applied.push(...ns);
  };
  return Object.assign(db, { apply, useClock: (c: FakeClock) => (clock = c) });
}

function setup(overrides: Partial<BatchedWriterOptions<Op>> = {}, journal?: Journal<JournalRecord<Op>>) {
  const clock = createFakeClock();
  const db = fakeDatabase();
  db.useClock(clock);
  const events: WriterErrorEvent<Op>[] = [];
  const writer = createBatchedWriter<Op>({
    apply: db.apply,
    clock,
    random: () => 0,
    maxBatchSize: 3,
    maxBatchDelayMs: 50,
    retry: { initialDelayMs: 100, maxDelayMs: 2_000 },
    onError: (e) => events.push(e),
    ...(journal ? { journal } : {}),
    ...overrides,
  });
  return { clock, db, writer, events };
}

const noDuplicates = (xs: number[]) => new Set(xs).size === xs.length;

describe('batched writer: batching', () => {
  it('enqueue returns at once without calling apply on the caller’s stack', () => {
    const { db, writer } = setup();
    expect(writer.enqueue(op(1))).toBe(true);
    expect(db.attempts).toHaveLength(0);
  });

  it('writes a full batch at once and the remainder after maxBatchDelayMs', async () => {
    const { clock, db, writer } = setup();
    for (const n of range(1, 7)) writer.enqueue(op(n));
    await settle();
    await settle();
    expect(db.batches).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    await clock.advance(49);
    expect(db.batches).toHaveLength(2);
    await clock.advance(1);
    expect(db.batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('collects ops arriving within the batch delay into one apply', async () => {
    const { clock, db, writer } = setup({ maxBatchSize: 100 });
    writer.enqueue(op(1));
    await clock.advance(20);
    writer.enqueue(op(2));
    await clock.advance(20);
    expect(db.batches).toEqual([]);
    await clock.advance(10);
    expect(db.batches).toEqual([[1, 2]]);
  });

  it('keeps enqueue order across many batches', async () => {
    const { db, writer } = setup({ maxBatchSize: 7 });
    for (const n of range(1, 250)) writer.enqueue(op(n));
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual(range(1, 250));
    expect(db.batches.every((b) => b.length <= 7)).toBe(true);
    expect(writer.stats()).toMatchObject({ applied: 250, queued: 0, retries: 0, state: 'idle' });
  });
});

describe('batched writer: outage', () => {
  it('retries with exponential backoff, keeps every op, then applies all in order exactly once', async () => {
    const { clock, db, writer, events } = setup();
    db.down = true;
    for (const n of range(1, 10)) writer.enqueue(op(n));
    await settle();
    expect(db.attempts.map((a) => a.atMs)).toEqual([0]);
    await clock.advance(99);
    expect(db.attempts).toHaveLength(1);
    await clock.advance(1);
    expect(db.attempts.map((a) => a.atMs)).toEqual([0, 100]);
    await clock.advance(2_000);
    // 100, 200, 400, 800, then capped at 2000 … every retry is the same first batch: order is kept.
    expect(db.attempts.map((a) => a.atMs)).toEqual([0, 100, 300, 700, 1500]);
    expect(db.attempts.every((a) => a.ops.join() === '1,2,3')).toBe(true);
    const delays = events.filter((e) => e.type === 'retrying').map((e) => (e.type === 'retrying' ? e.delayMs : 0));
    expect(delays).toEqual([100, 200, 400, 800, 1600]);
    expect(writer.stats()).toMatchObject({ queued: 10, applied: 0, retries: 5, state: 'backoff', consecutiveFailures: 5 });

    for (const n of range(11, 12)) writer.enqueue(op(n));
    db.down = false;
    await clock.advance(2_000);
    await writer.flush();
    expect(db.applied).toEqual(range(1, 12));
    expect(noDuplicates(db.applied)).toBe(true);
    expect(writer.stats()).toMatchObject({ queued: 0, applied: 12, consecutiveFailures: 0 });
  });

  it('caps the backoff at maxDelayMs and applies jitter within [1 − jitter, 1] of the delay', async () => {
    const randoms = [0.5, 1, 0, 0.25, 0.5, 0.5];
    const { clock, db, writer, events } = setup({ random: () => randoms.shift() ?? 0.5, retry: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0.5 } });
    db.down = true;
    writer.enqueue(op(1));
    await clock.advance(50);
    await clock.advance(5_000);
    const delays = events.flatMap((e) => (e.type === 'retrying' ? [e.delayMs] : []));
    // bases 100, 200, 400, 400, 400 … times (1 − 0.5·random)
    expect(delays.slice(0, 6)).toEqual([75, 100, 400, 350, 300, 300]);
  });

  it('treats network errors and retryable SQLSTATEs as retryable, bad data as not', () => {
    expect(isRetryableWriteError(new DatabaseUnavailableError('gone'))).toBe(true);
    expect(isRetryableWriteError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableWriteError(Object.assign(new Error('could not serialize access'), { code: '40001' }))).toBe(true);
    expect(isRetryableWriteError(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(true);
    expect(isRetryableWriteError(new TypeError('fetch failed'))).toBe(true);
    expect(isRetryableWriteError(new Error('wrapped', { cause: new DatabaseUnavailableError('x') }))).toBe(true);
    expect(isRetryableWriteError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isRetryableWriteError(Object.assign(new Error('nope'), { retryable: false, code: 'ECONNRESET' }))).toBe(false);
    expect(isRetryableWriteError(new Error('invalid input syntax for type uuid'))).toBe(false);
    expect(isRetryableWriteError('boom')).toBe(false);
  });
});

describe('batched writer: bounded memory and the journal', () => {
  it('spills the oldest ops to the journal past spillAtOps and replays them before newer ones', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>();
    const { clock, db, writer } = setup({ spillAtOps: 5, maxMemoryOps: 8 }, journal);
    db.down = true;
    for (const n of range(1, 20)) {
      expect(writer.enqueue(op(n))).toBe(true);
      await settle();
    }
    // The batch that was failing (1, 2, 3) went to the journal first: the journal holds the oldest ops, in order.
    const journaled = journal.snapshot().map((r) => r.op.payload.n);
    expect(journaled.length).toBeGreaterThan(0);
    expect(journaled).toEqual(range(1, journaled.length));
    expect(writer.stats().queued).toBeLessThanOrEqual(5);
    expect(writer.stats().queued + writer.stats().journaled).toBe(20);

    db.down = false;
    await clock.advance(10_000);
    for (const n of range(21, 23)) writer.enqueue(op(n));
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual(range(1, 23));
    expect(noDuplicates(db.applied)).toBe(true);
    expect(journal.size).toBe(0);
    expect(writer.stats()).toMatchObject({ journaled: 0, queued: 0, applied: 23 });
  });

  it('without a journal refuses ops past maxMemoryOps (reported), and keeps every op it accepted', async () => {
    const { clock, db, writer, events } = setup({ maxMemoryOps: 5 });
    db.down = true;
    const accepted = range(1, 8).map((n) => writer.enqueue(op(n)));
    expect(accepted).toEqual([true, true, true, true, true, false, false, false]);
    expect(events.filter((e) => e.type === 'dropped')).toHaveLength(3);
    expect(writer.stats().dropped).toBe(3);
    db.down = false;
    await clock.advance(1_000);
    await writer.flush();
    expect(db.applied).toEqual(range(1, 5));
  });

  it('when the journal fails too, keeps the ops in memory in order and retries the journal later', async () => {
    const inner = createMemoryJournal<JournalRecord<Op>>();
    let journalDown = true;
    const journal: Journal<JournalRecord<Op>> = {
      open: () => inner.open(),
      get size() {
        return inner.size;
      },
      append: async (records) => {
        if (journalDown) throw new JournalError('JOURNAL_WRITE', 'ENOSPC: no space left on device', true);
        await inner.append(records);
      },
      read: (max) => inner.read(max),
      ack: (count) => inner.ack(count),
      close: () => inner.close(),
    };
    const { clock, db, writer, events } = setup({ spillAtOps: 4, maxMemoryOps: 50 }, journal);
    db.down = true;
    for (const n of range(1, 10)) writer.enqueue(op(n));
    await settle();
    expect(events.some((e) => e.type === 'journal' && e.operation === 'append' && !e.disabled)).toBe(true);
    expect(writer.stats()).toMatchObject({ queued: 10, journaled: 0 });
    journalDown = false;
    await clock.advance(1_000);
    writer.enqueue(op(11));
    await settle();
    expect(inner.snapshot().map((r) => r.op.payload.n)).toEqual(range(1, 10));
    expect(writer.stats()).toMatchObject({ queued: 1, journaled: 10 });
    db.down = false;
    await clock.advance(5_000);
    await writer.flush();
    expect(db.applied).toEqual(range(1, 11));
  });

  it('an op that cannot be serialised is rejected at the spill; the journal and the other ops are unharmed', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>();
    const { clock, db, writer, events } = setup({ spillAtOps: 4 }, journal);
    db.down = true;
    for (const n of range(1, 6)) writer.enqueue(n === 3 ? { kind: 'put', key: 'put:3', payload: { n: 3, big: 3n } as unknown as { n: number } } : op(n));
    await clock.advance(10);
    expect(events.filter((e) => e.type === 'rejected').map((e) => (e.type === 'rejected' ? e.op.key : ''))).toEqual(['put:3']);
    expect(writer.stats().journalAvailable).toBe(true);
    expect(journal.snapshot().map((r) => r.op.payload.n)).toEqual([1, 2, 4, 5, 6]);
    db.down = false;
    await clock.advance(5_000);
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual([1, 2, 4, 5, 6]);
  });

  it('replays records a previous process left in the journal before anything new', async () => {
    const leftovers: JournalRecord<Op>[] = range(1, 5).map((n) => ({ writer: 'previous-process', seq: n, op: op(n) }));
    const journal = createMemoryJournal<JournalRecord<Op>>(leftovers);
    const { db, writer } = setup({}, journal);
    for (const n of range(6, 8)) writer.enqueue(op(n));
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual(range(1, 8));
    expect(journal.size).toBe(0);
  });

  it('a flush with nothing new still waits for the start-up backlog', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>([{ writer: 'previous-process', seq: 1, op: op(1) }]);
    const { clock, db, writer } = setup({}, journal);
    db.down = true;
    const first = writer.flush({ timeoutMs: 500 });
    await clock.advance(500);
    expect(await first).toEqual({ status: 'timeout', pending: 1 });
    db.down = false;
    await clock.advance(1_000);
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual([1]);
  });

  it('after a crash the next writer on the same journal replays the spilled ops first', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>();
    const first = setup({ spillAtOps: 4 }, journal);
    first.db.down = true;
    for (const n of range(1, 9)) first.writer.enqueue(op(n));
    await settle();
    const spilled = journal.snapshot().map((r) => r.op.payload.n);
    expect(spilled.length).toBeGreaterThanOrEqual(5);
    // The process dies: the first writer is abandoned without close (its memory is lost, its clock stops).

    const second = setup({}, journal);
    second.writer.enqueue(op(100));
    await second.writer.flush();
    expect(second.db.applied).toEqual([...spilled, 100]);
  });

  it('skips journal records that are not writer records instead of wedging on them', async () => {
    const journal = createMemoryJournal<unknown>([{ garbage: true }, { writer: 'old', seq: 1, op: op(1) }]);
    const { db, writer, events } = setup({}, journal as Journal<JournalRecord<Op>>);
    writer.enqueue(op(2));
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual([1, 2]);
    expect(events.filter((e) => e.type === 'rejected')).toHaveLength(1);
    expect(journal.size).toBe(0);
  });
});

describe('batched writer: bad data', () => {
  it('isolates a non-retryable op, reports it, and applies the others in order', async () => {
    const { db, writer, events } = setup({ maxBatchSize: 5 });
    db.bad.add(3);
    for (const n of range(1, 10)) writer.enqueue(op(n));
    await writer.flush();
    expect(db.applied).toEqual([1, 2, 4, 5, 6, 7, 8, 9, 10]);
    const rejected = events.filter((e) => e.type === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ type: 'rejected', op: op(3) });
    expect(events.some((e) => e.type === 'isolating' && e.batchSize === 5)).toBe(true);
    // The next batch is back to whole batches.
    expect(db.batches.at(-1)).toEqual([6, 7, 8, 9, 10]);
    expect(writer.stats()).toMatchObject({ rejected: 1, applied: 9, retries: 0 });
  });

  it('isolates bad ops that come back from the journal, and acks them', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>(range(1, 4).map((n) => ({ writer: 'old', seq: n, op: op(n) })));
    const { db, writer } = setup({}, journal);
    db.bad.add(2);
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    await settle();
    expect(db.applied).toEqual([1, 3, 4]);
    expect(journal.size).toBe(0);
  });

  it('an outage during isolation retries the same single op', async () => {
    const { clock, db, writer } = setup({ maxBatchSize: 4 });
    db.bad.add(1);
    for (const n of range(1, 4)) writer.enqueue(op(n));
    await settle();
    db.down = true; // the batch failed on bad data; now the database goes away while isolating
    await clock.advance(1_000);
    db.down = false;
    await clock.advance(5_000);
    await writer.flush();
    expect(db.applied).toEqual([2, 3, 4]);
  });
});

describe('batched writer: flush and close', () => {
  it('flush resolves once everything enqueued before it is applied, without waiting for later ops', async () => {
    const { clock, db, writer } = setup({ maxBatchSize: 100, maxBatchDelayMs: 1_000 });
    for (const n of range(1, 3)) writer.enqueue(op(n));
    const flushed = writer.flush();
    await settle(); // ops 1–3 are on their way
    writer.enqueue(op(4));
    expect(await flushed).toEqual({ status: 'flushed' });
    expect(clock.now()).toBe(0); // flush did not wait for the batch timer
    expect(db.applied).toEqual([1, 2, 3]);
    await clock.advance(1_000);
    expect(db.applied).toEqual([1, 2, 3, 4]);
  });

  it('flush with a timeout reports what is still pending during an outage, and the ops stay queued', async () => {
    const { clock, db, writer } = setup();
    db.down = true;
    for (const n of range(1, 4)) writer.enqueue(op(n));
    const result = writer.flush({ timeoutMs: 1_000 });
    await clock.advance(1_000);
    expect(await result).toEqual({ status: 'timeout', pending: 4 });
    db.down = false;
    await clock.advance(2_000);
    expect(db.applied).toEqual([1, 2, 3, 4]);
  });

  it('requestFlush starts writing at once instead of after the batch delay', async () => {
    const { db, writer } = setup({ maxBatchSize: 100, maxBatchDelayMs: 10_000 });
    writer.enqueue(op(1));
    writer.requestFlush();
    await settle();
    await settle();
    expect(db.applied).toEqual([1]);
  });

  it('close flushes, stops, and refuses later ops', async () => {
    const { db, writer, events } = setup({ maxBatchDelayMs: 10_000 });
    writer.enqueue(op(1));
    writer.enqueue(op(2));
    expect(await writer.close()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual([1, 2]);
    expect(writer.enqueue(op(3))).toBe(false);
    expect(events.at(-1)).toMatchObject({ type: 'dropped', reason: 'closed' });
    expect(writer.stats().state).toBe('closed');
    expect(await writer.flush()).toEqual({ status: 'flushed' });
  });

  it('close during an outage journals what is left, in order, for the next start', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>();
    const first = setup({ spillAtOps: 4 }, journal);
    first.db.down = true;
    for (const n of range(1, 10)) first.writer.enqueue(op(n));
    const closing = first.writer.close({ timeoutMs: 3_000 });
    await first.clock.advance(3_000);
    expect(await closing).toEqual({ status: 'journaled', pending: 10 });
    expect(journal.snapshot().map((r) => r.op.payload.n)).toEqual(range(1, 10));
    const attemptsAtClose = first.db.attempts.length;
    await first.clock.advance(60_000);
    expect(first.db.attempts).toHaveLength(attemptsAtClose); // stopped: no more retries

    const second = setup({}, journal);
    await second.writer.flush();
    expect(second.db.applied).toEqual(range(1, 10));
  });

  it('close while an apply hangs journals that batch too; when the hung apply ends nothing else happens', async () => {
    const journal = createMemoryJournal<JournalRecord<Op>>();
    const { clock, db, writer } = setup({}, journal);
    let release!: () => void;
    db.hang = new Promise<void>((resolve) => (release = resolve));
    for (const n of range(1, 5)) writer.enqueue(op(n));
    await settle();
    expect(db.attempts).toHaveLength(1);
    const closing = writer.close({ timeoutMs: 1_000 });
    await clock.advance(1_000);
    expect(await closing).toEqual({ status: 'journaled', pending: 5 });
    expect(journal.snapshot().map((r) => r.op.payload.n)).toEqual([1, 2, 3, 4, 5]);
    release();
    await clock.advance(10_000);
    // The hung batch did land late (it will be applied again at the next start: idempotent), nothing more ran.
    expect(db.applied).toEqual([1, 2, 3]);
    expect(db.attempts).toHaveLength(1);
    expect(journal.size).toBe(5);
  });

  it('close without a journal during an outage reports the ops it could not keep', async () => {
    const { clock, db, writer, events } = setup();
    db.down = true;
    for (const n of range(1, 4)) writer.enqueue(op(n));
    const closing = writer.close({ timeoutMs: 500 });
    await clock.advance(500);
    expect(await closing).toEqual({ status: 'incomplete', lost: 4, journaled: 0 });
    expect(events.at(-1)).toEqual({ type: 'lost', count: 4 });
  });
});

describe('batched writer: never in the way of the call', () => {
  it('enqueue never throws even when the database, the journal and the error sink all fail', async () => {
    const journal: Journal<JournalRecord<Op>> = {
      open: async () => {},
      size: 0,
      append: async () => {
        throw new JournalError('JOURNAL_WRITE', 'EIO', true);
      },
      read: async () => [],
      ack: async () => {},
      close: async () => {},
    };
    const clock = createFakeClock();
    const writer = createBatchedWriter<Op>({
      apply: async () => {
        throw new DatabaseUnavailableError('down');
      },
      journal,
      clock,
      spillAtOps: 3,
      maxMemoryOps: 10,
      onError: () => {
        throw new Error('the logger is broken too');
      },
    });
    const results: boolean[] = [];
    for (const n of range(1, 30)) {
      expect(() => results.push(writer.enqueue(op(n)))).not.toThrow();
      await clock.advance(10);
    }
    expect(results.filter(Boolean)).toHaveLength(10);
    expect(writer.stats()).toMatchObject({ queued: 10, dropped: 20 });
    expect(writer.stats().retries).toBeGreaterThan(0);
  });

  it('keeps going without the journal when it cannot be opened', async () => {
    const journal: Journal<JournalRecord<Op>> = {
      open: async () => {
        throw new JournalError('JOURNAL_OPEN', 'EACCES: permission denied', false);
      },
      size: 0,
      append: async () => {},
      read: async () => [],
      ack: async () => {},
      close: async () => {},
    };
    const { db, writer, events } = setup({}, journal);
    writer.enqueue(op(1));
    expect(await writer.flush()).toEqual({ status: 'flushed' });
    expect(db.applied).toEqual([1]);
    expect(events[0]).toMatchObject({ type: 'journal', operation: 'open', disabled: true });
    expect(writer.stats().journalAvailable).toBe(false);
  });
});
