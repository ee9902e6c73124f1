/**
 * The SQL client every store is written against. Concrete clients live outside `shared/`: the `postgres`
 * package (DATABASE_URL; it also runs on Workers) and PGlite (embedded default), both in media-node/db/.
 * Parameters are positional (`$1`, `$2`, ...). Rows come back as plain objects keyed by column name.
 */
export interface SqlClient {
  query<Row extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs `fn` inside BEGIN/COMMIT; a throw rolls back. Nested calls run in the outer transaction. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  /** Several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Both clients map a lost connection to this, so callers (the batched writer) know a retry can help. */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(`DATABASE_UNAVAILABLE: ${message}`, options);
  }
}
