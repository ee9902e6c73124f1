/**
 * The media node's journal (the contract is in shared/store/journal.ts): append-only segment files in one
 * directory, one record per line.
 *
 * Layout:
 *   <dir>/seg-0000000000000001.jnl   records, oldest segment first
 *   <dir>/cursor.json                 { "segment": <id>, "index": <records of that segment already acked> }
 *
 * Record line: `<crc32 of the JSON, 8 hex digits> <JSON>\n`. A line without its newline (the process died in
 * the middle of a write), with a checksum that does not match, or with JSON that does not parse is skipped
 * and reported through `onCorruptRecord`; the records around it are kept.
 *
 * Decisions:
 * - Durability: every `append` is one write followed by `fdatasync` (option `fsync`, default on): when it
 *   resolves, the records survive a power cut. Creating a segment also fsyncs the directory, so the file
 *   itself is not lost. With `fsync: false` a crash of the machine (not of the process) may lose the last
 *   appends; the page cache still survives a crash of the process.
 * - A failed write is rolled back (truncated to the previous length), so `size` stays exact and the writer
 *   can append again. If even the truncation fails, the journal refuses further work (non-retryable
 *   JournalError): the writer then goes on without it, and the next process reads what is on disk.
 * - Truncation after ack rotates segments: `ack` moves the cursor, and a segment whose records are all
 *   acked is deleted. Nothing is ever rewritten. Each process starts a new segment for its appends, so a
 *   torn line from a crash always stays the last line of its segment.
 * - The cursor is written atomically (temporary file + rename) but not fsynced: losing a cursor update only
 *   replays records that were applied already, which the writer's idempotent `apply` absorbs. An unreadable
 *   cursor counts as "nothing acked" for the same reason.
 * - Memory: only the oldest segment's records are held (parsed) while they are being replayed; opening
 *   reads every segment once to count its records. Segments rotate at `segmentMaxBytes` (default 4 MiB).
 * - No synchronous I/O. Calls are serialised internally, so overlapping calls are safe too.
 */
import { mkdir, open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { JournalError, type Journal } from '../../shared/store/journal';

export interface FileJournalOptions {
  directory: string;
  /** Start a new segment once the current one is this large. Default 4 MiB. */
  segmentMaxBytes?: number;
  /** fdatasync after every append. Default true (see the trade-off above). */
  fsync?: boolean;
  /** A record that was skipped: a torn last line, a checksum mismatch, or unparseable JSON. */
  onCorruptRecord?: (info: CorruptRecord) => void;
}

export interface CorruptRecord {
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  readonly reason: 'torn' | 'checksum' | 'json';
}

export interface FileJournal<T> extends Journal<T> {
  readonly directory: string;
  /** Segment files currently on disk (for diagnostics and tests). */
  segmentFiles(): string[];
}

interface Segment {
  readonly id: number;
  readonly file: string;
  /** Valid records in the file. */
  count: number;
  bytes: number;
}

const SEGMENT_NAME = /^seg-(\d{16})\.jnl$/;
const CURSOR_FILE = 'cursor.json';
const LINE = /^([0-9a-f]{8}) (.*)$/;

export function createFileJournal<T = unknown>(options: FileJournalOptions): FileJournal<T> {
  return new FileJournalImpl<T>(options);
}

class FileJournalImpl<T> implements FileJournal<T> {
  readonly directory: string;
  private readonly segmentMaxBytes: number;
  private readonly fsync: boolean;
  private readonly onCorruptRecord: ((info: CorruptRecord) => void) | undefined;

  private segments: Segment[] = [];
  /** Records of segments[0] already acked. */
  private cursor = 0;
  /** Parsed records of segments[0], loaded when replaying. */
  private headRecords: T[] | undefined;
  /** The segment this process appends to, and its open handle. */
  private tail: { segment: Segment; handle: FileHandle } | undefined;
  private nextId = 1;
  private opened = false;
  private failed: JournalError | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: FileJournalOptions) {
    this.directory = options.directory;
    this.segmentMaxBytes = Math.max(1, options.segmentMaxBytes ?? 4 * 1024 * 1024);
    this.fsync = options.fsync ?? true;
    this.onCorruptRecord = options.onCorruptRecord;
  }

  get size(): number {
    let total = -this.cursor;
    for (const s of this.segments) total += s.count;
    return Math.max(0, total);
  }

  segmentFiles(): string[] {
    return this.segments.map((s) => s.file);
  }

  open(): Promise<void> {
    return this.serial(async () => {
      if (this.opened) return;
      try {
        await mkdir(this.directory, { recursive: true });
        const names = (await readdir(this.directory)).filter((n) => SEGMENT_NAME.test(n)).sort();
        const segments: Segment[] = [];
        for (const name of names) {
          const id = Number(SEGMENT_NAME.exec(name)![1]);
          const text = await readFile(join(this.directory, name), 'utf8');
          segments.push({ id, file: name, count: this.parse(name, text).length, bytes: Buffer.byteLength(text) });
        }
        const cursor = await this.readCursor();
        // Segments before the cursor's were fully acked (a crash came between the cursor and the delete).
        while (segments.length > 0 && cursor && segments[0]!.id < cursor.segment) {
          await rm(join(this.directory, segments.shift()!.file), { force: true });
        }
        // Segments without a single valid record (only a torn line, say) hold nothing to replay.
        for (const empty of segments.filter((s) => s.count === 0)) await rm(join(this.directory, empty.file), { force: true });
        this.segments = segments.filter((s) => s.count > 0);
        const head = this.segments[0];
        this.cursor = head && cursor && head.id === cursor.segment ? Math.min(cursor.index, head.count) : 0;
        this.nextId = Math.max(cursor?.segment ?? 0, segments.at(-1)?.id ?? 0) + 1;
        this.opened = true;
      } catch (error) {
        throw asJournalError('JOURNAL_OPEN', `could not open the journal in ${this.directory}`, error);
      }
    });
  }

  append(records: readonly T[]): Promise<void> {
    return this.serial(async () => {
      this.check();
      if (records.length === 0) return;
      let lines = '';
      for (const record of records) lines += encodeLine(record);
      const bytes = Buffer.from(lines, 'utf8');
      const tail = await this.writableTail(bytes.length);
      const before = tail.segment.bytes;
      try {
        let offset = 0;
        while (offset < bytes.length) {
          const { bytesWritten } = await tail.handle.write(bytes, offset, bytes.length - offset, before + offset);
          offset += bytesWritten;
        }
        if (this.fsync) await tail.handle.datasync();
      } catch (error) {
        try {
          await tail.handle.truncate(before);
        } catch (truncateError) {
          this.failed = new JournalError('JOURNAL_BROKEN', `a failed append to ${tail.segment.file} could not be rolled back; the journal stops here and the next start reads what is on disk`, false, { cause: truncateError });
          throw this.failed;
        }
        throw asJournalError('JOURNAL_WRITE', `could not append to ${join(this.directory, tail.segment.file)}`, error);
      }
      tail.segment.bytes += bytes.length;
      tail.segment.count += records.length;
      if (this.headRecords && this.segments[0] === tail.segment) {
        for (const record of records) this.headRecords.push(JSON.parse(JSON.stringify(record)) as T);
      }
    });
  }

  read(max: number): Promise<readonly T[]> {
    return this.serial(async () => {
      this.check();
      const out: T[] = [];
      let segmentIndex = 0;
      let skip = this.cursor;
      while (out.length < max && segmentIndex < this.segments.length) {
        const segment = this.segments[segmentIndex]!;
        const records = segmentIndex === 0 ? await this.loadHead() : await this.loadSegment(segment);
        for (let i = skip; i < records.length && out.length < max; i++) out.push(records[i]!);
        segmentIndex++;
        skip = 0;
      }
      return out;
    });
  }

  ack(count: number): Promise<void> {
    return this.serial(async () => {
      this.check();
      let remaining = Math.min(Math.max(0, count), this.size);
      if (remaining === 0) return;
      while (remaining > 0) {
        const head = this.segments[0];
        if (!head) break;
        const take = Math.min(head.count - this.cursor, remaining);
        this.cursor += take;
        remaining -= take;
        if (this.cursor < head.count) break;
        // Fully acked: the segment goes (the one this process appends to as well; the next append opens a new one).
        if (this.tail?.segment === head) {
          await this.tail.handle.close();
          this.tail = undefined;
        }
        await rm(join(this.directory, head.file), { force: true });
        this.segments.shift();
        this.cursor = 0;
        this.headRecords = undefined;
      }
      await this.writeCursor();
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      const tail = this.tail;
      this.tail = undefined;
      this.opened = false;
      this.headRecords = undefined;
      await tail?.handle.close();
    });
  }

  // ---- internals ----

  private serial<R>(fn: () => Promise<R>): Promise<R> {
    const result = this.chain.then(fn, fn);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private check(): void {
    if (this.failed) throw this.failed;
    if (!this.opened) throw new JournalError('JOURNAL_NOT_OPEN', 'call open() before using the journal', false);
  }

  private async writableTail(incomingBytes: number) {
    const current = this.tail;
    if (current && (current.segment.bytes === 0 || current.segment.bytes + incomingBytes <= this.segmentMaxBytes)) return current;
    if (current) {
      await current.handle.close();
      this.tail = undefined;
    }
    const id = this.nextId++;
    const file = `seg-${String(id).padStart(16, '0')}.jnl`;
    let handle: FileHandle;
    try {
      handle = await open(join(this.directory, file), 'wx');
    } catch (error) {
      throw asJournalError('JOURNAL_WRITE', `could not create ${join(this.directory, file)}`, error);
    }
    if (this.fsync) await this.syncDirectory();
    const segment: Segment = { id, file, count: 0, bytes: 0 };
    this.segments.push(segment);
    this.tail = { segment, handle };
    return this.tail;
  }

  private async syncDirectory(): Promise<void> {
    try {
      const dir = await open(this.directory, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // Some platforms cannot fsync a directory; the file's own fsync still holds its content.
    }
  }

  private async loadHead(): Promise<T[]> {
    const head = this.segments[0];
    if (!head) return [];
    this.headRecords ??= await this.loadSegment(head);
    return this.headRecords;
  }

  private async loadSegment(segment: Segment): Promise<T[]> {
    const text = await readFile(join(this.directory, segment.file), 'utf8');
    const records = this.parse(segment.file, text);
    // What is on disk is the truth (the count at open and after appends should already agree).
    segment.count = records.length;
    return records;
  }

  private parse(file: string, text: string): T[] {
    const records: T[] = [];
    const lines = text.split('\n');
    const last = lines.pop();
    lines.forEach((line, i) => {
      const match = LINE.exec(line);
      if (!match) return this.corrupt(file, i + 1, 'checksum');
      const json = match[2]!;
      if (crc32Hex(json) !== match[1]) return this.corrupt(file, i + 1, 'checksum');
      try {
        records.push(JSON.parse(json) as T);
      } catch {
        this.corrupt(file, i + 1, 'json');
      }
    });
    if (last) this.corrupt(file, lines.length + 1, 'torn');
    return records;
  }

  private corrupt(file: string, line: number, reason: CorruptRecord['reason']): void {
    try {
      this.onCorruptRecord?.({ file, line, reason });
    } catch {
      // Reporting must not stop a replay.
    }
  }

  private async readCursor(): Promise<{ segment: number; index: number } | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.directory, CURSOR_FILE), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const value = JSON.parse(text) as { segment?: unknown; index?: unknown };
      if (Number.isSafeInteger(value.segment) && Number.isSafeInteger(value.index)) return { segment: value.segment as number, index: value.index as number };
    } catch {
      // Torn by a crash: nothing acked, the records replay (idempotently).
    }
    return undefined;
  }

  private async writeCursor(): Promise<void> {
    const head = this.segments[0];
    const cursor = { segment: head?.id ?? this.nextId, index: head ? this.cursor : 0 };
    const path = join(this.directory, CURSOR_FILE);
    await writeFile(`${path}.tmp`, JSON.stringify(cursor));
    await rename(`${path}.tmp`, path);
  }
}

function encodeLine(record: unknown): string {
  const json = JSON.stringify(record);
  if (json === undefined) throw new JournalError('JOURNAL_RECORD', 'a record must be a JSON value (got undefined or a function)', false);
  // JSON.stringify never emits a raw newline, so one record is always one line.
  return `${crc32Hex(json)} ${json}\n`;
}

function crc32Hex(json: string): string {
  return (crc32(json) >>> 0).toString(16).padStart(8, '0');
}

function asJournalError(code: string, message: string, error: unknown): JournalError {
  if (error instanceof JournalError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  // Disk full, I/O errors and permissions may all be fixed while the process runs: worth another try later.
  return new JournalError(code, `${message}: ${detail}`, true, { cause: error });
}
