import { createConversationOpsApplier, type ConversationOp } from '../../shared/store/call-recorder';
import type { Journal } from '../../shared/store/journal';
import type { SqlClient } from '../../shared/store/sql';
import { createBatchedWriter, isRetryableWriteError, type BatchedWriter, type JournalRecord, type WriterErrorEvent } from '../../shared/store/writer';
import type { EdgeConfig } from '../env';
import { openSessionDatabase } from './session-database';

export type TalkLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/**
 * Writer tuning for a Durable Object. Memory is the object's 128 MB and it is gone when the object is reset
 * (a deploy ends every live call), so records move to the object's SQLite journal after a few ops instead of
 * the node's 1,000; the backoff is capped low because a browser call is short and its records should land
 * soon after the database is back.
 */
const EDGE_WRITER = { spillAtOps: 4, maxMemoryOps: 2_000, retry: { initialDelayMs: 100, maxDelayMs: 3_000 } } as const;

/**
 * workerd reports a lost or refused TCP connection as a plain Error ("Network connection lost", "connection
 * refused", "Stream was cancelled") without the Node error codes the default policy knows: those are
 * outages too, and must be retried rather than rejected as bad data.
 */
export function isRetryableOnEdge(error: unknown): boolean {
  if (isRetryableWriteError(error)) return true;
  const message = error instanceof Error ? `${error.message} ${String((error as { cause?: unknown }).cause ?? '')}` : String(error);
  return /network connection lost|connection (was )?(refused|reset|closed|lost)|stream was cancelled|socket (is )?closed|proxy request failed|cannot connect|disconnected/i.test(message);
}

export interface CallRecordsOptions {
  readonly db: SqlClient;
  readonly journal: Journal<JournalRecord<ConversationOp>>;
  readonly log: TalkLog;
  /** The writer could not reach the database (retrying, spilling to the journal). */
  onTrouble?(event: WriterErrorEvent<ConversationOp>): void;
}

/** The batched writer of a call's records (messages, metrics, its start and end), journaled in the object. */
export function createCallRecordsWriter(options: CallRecordsOptions): BatchedWriter<ConversationOp> {
  const { log } = options;
  return createBatchedWriter<ConversationOp>({
    apply: createConversationOpsApplier(options.db),
    journal: options.journal,
    ...EDGE_WRITER,
    isRetryable: isRetryableOnEdge,
    onError: (event) => {
      log(event.type === 'retrying' ? 'warn' : 'error', 'call records: writer trouble', { type: event.type, ...('error' in event ? { error: String(event.error) } : {}) });
      options.onTrouble?.(event);
    },
  });
}

/**
 * Replays what a finished call left in the journal (the database was away when it ended): a writer over the
 * journal alone, flushed within `timeoutMs`. Returns the records still pending.
 */
export async function replayCallRecords(options: { database: EdgeConfig['database']; journal: SqliteJournalLike; log: TalkLog; timeoutMs: number }): Promise<number> {
  const database = openSessionDatabase(options.database);
  const writer = createCallRecordsWriter({ db: database.client, journal: options.journal, log: options.log });
  await writer.flush({ timeoutMs: options.timeoutMs });
  await writer.close({ timeoutMs: 1_000 });
  return options.journal.storedCount();
}

type SqliteJournalLike = Journal<JournalRecord<ConversationOp>> & { storedCount(): number };
