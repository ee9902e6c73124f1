import { JournalError, type Journal } from '../../shared/store/journal';
import type { DurableObjectStorage } from './workerd-types';

/**
 * The batched writer's journal (contract: shared/store/journal.ts) in a Durable Object's own SQLite: what
 * a browser call could not write to PostgreSQL waits here, survives a restart of the object (deploys and
 * evictions end the isolate, not the storage), and is replayed in order once the database answers again.
 *
 * One row per record, keyed by an increasing sequence: `read` takes the oldest rows, `ack` deletes them.
 * Calls are synchronous SQLite under the hood (no await between statements), so no two can interleave.
 * Appends run in one `transactionSync`: all or nothing, as the contract asks. Durability is the platform's:
 * a write is confirmed once the storage layer has it (the output gate holds outgoing messages until then).
 */

const TABLE = 'talk_writer_journal';
/** DO SQLite refuses rows over 2 MB; a record that large is a bug upstream, not something to retry. */
const MAX_RECORD_CHARS = 1_000_000;

/** Creates the table if needed: call it from the object's constructor (cheap, idempotent). */
export function ensureJournalTable(storage: DurableObjectStorage): void {
  storage.sql.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)`);
}

export interface SqliteJournal<T> extends Journal<T> {
  /** Records pending, read from storage (not the cached count): for diagnostics and the wake-up alarm. */
  storedCount(): number;
}

export function createSqliteJournal<T = unknown>(storage: DurableObjectStorage): SqliteJournal<T> {
  const sql = storage.sql;
  let opened = false;
  let size = 0;

  const countRows = () => Number(sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${TABLE}`).one().n);
  const requireOpen = () => {
    if (!opened) throw new JournalError('JOURNAL_NOT_OPEN', 'call open() before using the journal', false);
  };
  const storageError = (what: string, error: unknown) =>
    error instanceof JournalError ? error : new JournalError('JOURNAL_STORAGE', `${what} in the Durable Object's SQLite failed: ${error instanceof Error ? error.message : String(error)}`, true, { cause: error });

  return {
    async open() {
      try {
        ensureJournalTable(storage);
        size = countRows();
        opened = true;
      } catch (error) {
        throw storageError('opening the journal', error);
      }
    },
    get size() {
      return size;
    },
    async append(records) {
      requireOpen();
      // Serialise everything before touching storage: a record that cannot be stored fails the whole append.
      const lines = records.map((record) => {
        const line = JSON.stringify(record);
        if (line === undefined) throw new JournalError('JOURNAL_RECORD', 'a record must be a JSON value (got undefined or a function)', false);
        if (line.length > MAX_RECORD_CHARS) throw new JournalError('JOURNAL_RECORD', `a record of ${line.length} characters exceeds the ${MAX_RECORD_CHARS} the journal stores`, false);
        return line;
      });
      if (lines.length === 0) return;
      try {
        storage.transactionSync(() => {
          for (const line of lines) sql.exec(`INSERT INTO ${TABLE} (record) VALUES (?)`, line);
        });
      } catch (error) {
        throw storageError('appending to the journal', error);
      }
      size += lines.length;
    },
    async read(max) {
      requireOpen();
      const limit = Math.max(0, Math.floor(max));
      if (limit === 0) return [];
      let rows: { record: string }[];
      try {
        rows = sql.exec<{ record: string }>(`SELECT record FROM ${TABLE} ORDER BY seq LIMIT ?`, limit).toArray();
      } catch (error) {
        throw storageError('reading the journal', error);
      }
      return rows.map((row) => {
        try {
          return JSON.parse(row.record) as T;
        } catch {
          // Unreadable rows come back as null: the writer rejects them as invalid records and acks them.
          return null as T;
        }
      });
    },
    async ack(count) {
      requireOpen();
      const n = Math.min(Math.max(0, Math.floor(count)), size);
      if (n === 0) return;
      try {
        sql.exec(`DELETE FROM ${TABLE} WHERE seq IN (SELECT seq FROM ${TABLE} ORDER BY seq LIMIT ?)`, n);
      } catch (error) {
        throw storageError('acknowledging journal records', error);
      }
      size -= n;
    },
    async close() {
      opened = false;
    },
    storedCount: countRows,
  };
}
