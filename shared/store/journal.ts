/**
 * The durable overflow of the batched writer (`writer.ts`): an append-only FIFO of JSON records that outlives
 * the process. Media nodes use an append-only file (`media-node/store/file-journal.ts`); the edge will use
 * Durable Object storage; tests and the edge until then use `createMemoryJournal()`.
 *
 * Contract (what the writer relies on):
 * - `open()` is called once, before anything else; afterwards `size` counts the records still pending,
 *   including the ones a previous process left behind (a crash or a shutdown during an outage).
 * - Records are plain JSON values. They come back from `read` in exactly the order they were appended.
 * - `append(records)` resolves once the records are durable (as durable as the implementation promises:
 *   the file journal fsyncs). It is all or nothing as far as `size` is concerned; if it rejects, any prefix
 *   of the records may still have reached storage, and the writer appends them again later. Duplicates are
 *   therefore possible (after a crash, too) and harmless: the writer's `apply` is idempotent.
 * - `read(max)` returns up to `max` of the oldest pending records without removing them.
 * - `ack(count)` removes the `count` oldest pending records (the writer calls it after they were applied). A
 *   crash between apply and ack replays them: again harmless for the same reason.
 * - The writer never calls two methods at once (it awaits each call), so implementations need no locking
 *   for the writer's sake.
 */
export interface Journal<T = unknown> {
  open(): Promise<void>;
  /** Records pending (appended and not yet acked). Valid after `open()` resolved. */
  readonly size: number;
  append(records: readonly T[]): Promise<void>;
  read(max: number): Promise<readonly T[]>;
  ack(count: number): Promise<void>;
  close(): Promise<void>;
}

/** A journal operation failed; `retryable` says whether trying again later can help. */
export class JournalError extends Error {
  override readonly name = 'JournalError';
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export interface MemoryJournal<T> extends Journal<T> {
  /** The pending records (copies), oldest first: for tests and diagnostics. */
  snapshot(): T[];
}

/**
 * An in-memory journal: survives the writer, not the process. Records go through JSON on the way in, so a
 * payload that could not survive a real journal (a Date, a Map, a cycle, a bigint) fails here too. Passing
 * the same instance to a new writer simulates a restart.
 */
export function createMemoryJournal<T = unknown>(initial: readonly T[] = []): MemoryJournal<T> {
  let records: string[] = initial.map((r) => JSON.stringify(r));
  let head = 0;
  let opened = false;
  const requireOpen = () => {
    if (!opened) throw new JournalError('JOURNAL_NOT_OPEN', 'call open() before using the journal', false);
  };
  return {
    async open() {
      opened = true;
    },
    get size() {
      return records.length - head;
    },
    async append(batch) {
      requireOpen();
      // Serialise everything first: all or nothing.
      const encoded = batch.map((r) => JSON.stringify(r));
      for (const line of encoded) records.push(line);
    },
    async read(max) {
      requireOpen();
      return records.slice(head, head + Math.max(0, max)).map((line) => JSON.parse(line) as T);
    },
    async ack(count) {
      requireOpen();
      head = Math.min(records.length, head + Math.max(0, count));
      if (head > 1024 && head * 2 > records.length) {
        records = records.slice(head);
        head = 0;
      }
    },
    async close() {
      opened = false;
    },
    snapshot() {
      return records.slice(head).map((line) => JSON.parse(line) as T);
    },
  };
}
