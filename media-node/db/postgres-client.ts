import postgres from 'postgres';
import { DatabaseUnavailableError, type SqlClient } from '../../shared/store/sql';

export interface PostgresClientOptions {
  /** Pool size. */
  readonly max?: number;
  /** Schema to use as search_path (tests run each suite in a fresh schema). */
  readonly schema?: string;
  readonly connectTimeoutSeconds?: number;
}

// Connection-level failures (the server went away, refused, timed out): a retry later can succeed.
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

function mapError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  // SQLSTATE class 08 = connection exception; 57P01..57P03 = the server is shutting down or starting.
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code))) {
    return new DatabaseUnavailableError(`PostgreSQL is unreachable (${code}): ${(error as Error).message}`, { cause: error });
  }
  return error;
}

type Unsafe = { unsafe(text: string, params?: unknown[]): PromiseLike<unknown> };

function wrap(sql: Unsafe, begin: (<T>(fn: (tx: SqlClient) => Promise<T>) => Promise<T>) | undefined, end: () => Promise<void>): SqlClient {
  const self: SqlClient = {
    async query<Row extends object>(text: string, params: readonly unknown[] = []) {
      try {
        // With parameters postgres.js uses the extended protocol (one statement); without, the simple one.
        return (await sql.unsafe(text, params as unknown[])) as unknown as Row[];
      } catch (error) {
        throw mapError(error);
      }
    },
    transaction: (fn) => (begin ? begin(fn) : fn(self)),
    async exec(text) {
      try {
        await sql.unsafe(text);
      } catch (error) {
        throw mapError(error);
      }
    },
    close: end,
  };
  return self;
}

/** The `postgres` package behind the SqlClient contract (DATABASE_URL). */
export function createPostgresClient(url: string, options: PostgresClientOptions = {}): SqlClient {
  const sql = postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    onnotice: () => undefined,
    ...(options.schema ? { connection: { search_path: options.schema } } : {}),
  });
  const begin = async <T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> => {
    try {
      return (await sql.begin((tx) => fn(wrap(tx as unknown as Unsafe, undefined, async () => undefined)))) as T;
    } catch (error) {
      throw mapError(error);
    }
  };
  return wrap(sql, begin, () => sql.end({ timeout: 5 }));
}
