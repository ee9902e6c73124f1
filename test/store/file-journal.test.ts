import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createFileJournal, type CorruptRecord, type FileJournalOptions } from '../../media-node/store/file-journal';
import { DatabaseUnavailableError } from '../../shared/store/sql';
import { createBatchedWriter, type JournalRecord, type WriteOp } from '../../shared/store/writer';
import { createFakeClock, settle } from '../fakes/clock';

type Rec = { n: number; text?: string };
const recs = (from: number, to: number): Rec[] => Array.from({ length: to - from + 1 }, (_, i) => ({ n: from + i }));

let dir: string;
/** Instances a test "crashed" (never closed): their handles are closed after the test. */
let opened: { close(): Promise<void> }[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-journal-'));
  opened = [];
});
afterEach(async () => {
  for (const journal of opened) await journal.close();
  await rm(dir, { recursive: true, force: true });
});

async function openJournal(options: Partial<FileJournalOptions> = {}) {
  const corrupt: CorruptRecord[] = [];
  const journal = createFileJournal<Rec>({ directory: dir, onCorruptRecord: (c) => corrupt.push(c), ...options });
  await journal.open();
  opened.push(journal);
  return { journal, corrupt };
}

const segmentsOnDisk = async () => (await readdir(dir)).filter((f) => f.endsWith('.jnl')).sort();

describe('file journal', () => {
  it('reads back what was appended, in order, and forgets what was acked', async () => {
    const { journal } = await openJournal();
    expect(journal.size).toBe(0);
    await journal.append(recs(1, 3));
    await journal.append([{ n: 4, text: 'line\nbreak "quoted" ünïcode' }]);
    expect(journal.size).toBe(4);
    expect(await journal.read(10)).toEqual([...recs(1, 3), { n: 4, text: 'line\nbreak "quoted" ünïcode' }]);
    expect(await journal.read(2)).toEqual(recs(1, 2)); // read does not consume
    await journal.ack(2);
    expect(journal.size).toBe(2);
    expect((await journal.read(10)).map((r) => r.n)).toEqual([3, 4]);
    await journal.ack(2);
    expect(journal.size).toBe(0);
    expect(await journal.read(10)).toEqual([]);
    expect(await segmentsOnDisk()).toEqual([]); // fully acked segments are deleted
  });

  it('writes one checksummed JSON record per line', async () => {
    const { journal } = await openJournal();
    await journal.append([{ n: 1 }]);
    const [file] = await segmentsOnDisk();
    expect(await readFile(join(dir, file!), 'utf8')).toMatch(/^[0-9a-f]{8} \{"n":1\}\n$/);
  });

  it('survives a restart: a new instance on the same directory sees only the unacked records', async () => {
    const first = await openJournal();
    await first.journal.append(recs(1, 5));
    await first.journal.ack(2);
    await first.journal.append(recs(6, 7));
    await first.journal.close();

    const second = await openJournal();
    expect(second.journal.size).toBe(5);
    expect((await second.journal.read(100)).map((r) => r.n)).toEqual([3, 4, 5, 6, 7]);
    // New appends of the new process come after the old ones.
    await second.journal.append(recs(8, 8));
    expect((await second.journal.read(100)).map((r) => r.n)).toEqual([3, 4, 5, 6, 7, 8]);
  });

  it('survives a crash without close (no handle closed, nothing flushed by hand)', async () => {
    const first = await openJournal();
    await first.journal.append(recs(1, 3));
    // The process dies here: `first` is never closed.
    const second = await openJournal();
    expect((await second.journal.read(10)).map((r) => r.n)).toEqual([1, 2, 3]);
  });

  it('skips a torn last line left by a crash in the middle of a write, and keeps appending after it', async () => {
    const first = await openJournal();
    await first.journal.append(recs(1, 3));
    const [file] = await segmentsOnDisk();
    await appendFile(join(dir, file!), '1a2b3c4d {"n":4,"te'); // half a record, no newline

    const second = await openJournal();
    expect(second.corrupt).toEqual([{ file, line: 4, reason: 'torn' }]);
    expect(second.journal.size).toBe(3);
    await second.journal.append(recs(5, 5));
    expect((await second.journal.read(10)).map((r) => r.n)).toEqual([1, 2, 3, 5]);

    const third = await openJournal();
    expect((await third.journal.read(10)).map((r) => r.n)).toEqual([1, 2, 3, 5]);
  });

  it('skips a record whose checksum does not match and keeps the ones around it', async () => {
    const first = await openJournal();
    await first.journal.append(recs(1, 3));
    const [file] = await segmentsOnDisk();
    const path = join(dir, file!);
    await writeFile(path, (await readFile(path, 'utf8')).replace('{"n":2}', '{"n":9}'));

    const second = await openJournal();
    expect(second.corrupt).toEqual([{ file, line: 2, reason: 'checksum' }]);
    expect((await second.journal.read(10)).map((r) => r.n)).toEqual([1, 3]);
  });

  it('rotates segments, reads across them, and deletes each once it is fully acked', async () => {
    const { journal } = await openJournal({ segmentMaxBytes: 60 });
    for (let n = 1; n <= 9; n += 3) await journal.append(recs(n, n + 2));
    const files = await segmentsOnDisk();
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect((await journal.read(100)).map((r) => r.n)).toEqual(recs(1, 9).map((r) => r.n));
    await journal.ack(4);
    const remaining = await segmentsOnDisk();
    expect(remaining.length).toBeLessThan(files.length);
    expect(remaining).toEqual(files.slice(files.length - remaining.length));
    expect((await journal.read(100)).map((r) => r.n)).toEqual([5, 6, 7, 8, 9]);

    const reopened = await openJournal({ segmentMaxBytes: 60 });
    expect((await reopened.journal.read(100)).map((r) => r.n)).toEqual([5, 6, 7, 8, 9]);
  });

  it('an unreadable cursor replays the segment from its start (harmless: apply is idempotent)', async () => {
    const first = await openJournal();
    await first.journal.append(recs(1, 4));
    await first.journal.ack(1);
    await writeFile(join(dir, 'cursor.json'), '{"segm');
    const second = await openJournal();
    expect((await second.journal.read(10)).map((r) => r.n)).toEqual([1, 2, 3, 4]);
  });

  it('refuses a record that is not JSON without writing any of the batch', async () => {
    const { journal } = await openJournal();
    await journal.append(recs(1, 1));
    await expect(journal.append([{ n: 2 }, { n: 3, text: 10n as unknown as string }])).rejects.toThrow(/BigInt/);
    expect(journal.size).toBe(1);
    await journal.append(recs(4, 4));
    const reopened = await openJournal();
    expect((await reopened.journal.read(10)).map((r) => r.n)).toEqual([1, 4]);
  });

  it('works without fsync too', async () => {
    const { journal } = await openJournal({ fsync: false });
    await journal.append(recs(1, 2));
    const reopened = await openJournal({ fsync: false });
    expect(reopened.journal.size).toBe(2);
  });
});

describe('batched writer over the file journal', () => {
  type Op = WriteOp<'put', { n: number }>;
  const op = (n: number): Op => ({ kind: 'put', key: `put:${n}`, payload: { n } });

  it('after a crash during an outage the next process replays the journal first, each op once', async () => {
    // Process 1: the database is down, the writer spills to disk, then the process dies.
    const clock1 = createFakeClock();
    const journal1 = createFileJournal<JournalRecord<Op>>({ directory: dir });
    opened.push(journal1);
    const writer1 = createBatchedWriter<Op>({
      apply: async () => {
        throw new DatabaseUnavailableError('connection refused');
      },
      journal: journal1,
      clock: clock1,
      spillAtOps: 5,
      maxBatchSize: 3,
    });
    for (let n = 1; n <= 20; n++) {
      writer1.enqueue(op(n));
      await settle();
    }
    // Journal appends are real disk I/O: wait for the spills to land.
    await vi.waitFor(() => expect(writer1.stats().queued).toBeLessThanOrEqual(5), { timeout: 5_000, interval: 5 });
    const journaled = writer1.stats().journaled;
    expect(journaled).toBeGreaterThanOrEqual(15);

    // Process 2: same directory, database back.
    const applied: number[] = [];
    const writer2 = createBatchedWriter<Op>({
      apply: async (ops) => {
        applied.push(...ops.map((o) => o.payload.n));
      },
      journal: createFileJournal<JournalRecord<Op>>({ directory: dir }),
      clock: createFakeClock(),
      maxBatchSize: 4,
    });
    writer2.enqueue(op(100));
    expect(await writer2.flush()).toEqual({ status: 'flushed' });
    expect(applied).toEqual([...Array.from({ length: journaled }, (_, i) => i + 1), 100]);
    expect(await writer2.close()).toEqual({ status: 'flushed' });
    expect(await segmentsOnDisk()).toEqual([]);
  });

  it('close during an outage leaves everything on disk for the next start', async () => {
    const clock = createFakeClock();
    const writer = createBatchedWriter<Op>({
      apply: async () => {
        throw new DatabaseUnavailableError('connection refused');
      },
      journal: createFileJournal<JournalRecord<Op>>({ directory: dir }),
      clock,
    });
    for (let n = 1; n <= 7; n++) writer.enqueue(op(n));
    const closing = writer.close({ timeoutMs: 1_000 });
    await clock.advance(1_000);
    expect(await closing).toEqual({ status: 'journaled', pending: 7 });

    const reopened = createFileJournal<JournalRecord<Op>>({ directory: dir });
    await reopened.open();
    expect((await reopened.read(100)).map((r) => r.op.payload.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
