import { DatabaseUnavailableError, type SqlClient } from './sql';

/**
 * The SqlClient contract over a client of the `postgres` package (postgres.js), runtime-agnostic: the media
 * node (media-node/db/postgres-client.ts, Node sockets) and the Worker (edge/db.ts, workerd sockets through
 * Hyperdrive) each create the `postgres()` instance their way and hand it here. Only the shape of the
 * instance is used (no import of the package), so this file stays a web-standard part of `shared/`.
 */

/** What this adapter uses of a postgres.js instance or of a transaction handle. */
export interface PostgresJsQueryable {
  unsafe(text: string, params?: unknown[]): PromiseLike<unknown>;
}

export interface PostgresJsInstance extends PostgresJsQueryable {
  begin<T>(fn: (tx: PostgresJsQueryable) => Promise<T>): PromiseLike<T>;
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

/** A lost or refused connection becomes DatabaseUnavailableError (retryable); anything else is passed on. */
export function mapPostgresError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  // SQLSTATE class 08 = connection exception; 57P01..57P03 = the server is shutting down or starting.
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code))) {
    return new DatabaseUnavailableError(`PostgreSQL is unreachable (${code}): ${(error as Error).message}`, { cause: error });
  }
  return error;
}

function wrap(sql: PostgresJsQueryable, begin: (<T>(fn: (tx: SqlClient) => Promise<T>) => Promise<T>) | undefined, close: () => Promise<void>): SqlClient {
  const self: SqlClient = {
    async query<Row extends object>(text: string, params: readonly unknown[] = []) {
      try {
        // With parameters postgres.js uses the extended protocol (one statement); without, the simple one.
        return (await sql.unsafe(text, params as unknown[])) as unknown as Row[];
      } catch (error) {
        throw mapPostgresError(error);
      }
    },
    transaction: (fn) => (begin ? begin(fn) : fn(self)),
    async exec(text) {
      try {
        await sql.unsafe(text);
      } catch (error) {
        throw mapPostgresError(error);
      }
    },
    close,
  };
  return self;
}

/**
 * `sql` behind the SqlClient contract. `close` is the host's: `sql.end()` on Node; a no-op in workerd, where
 * `sql.end()` leaves an unhandled rejection and the runtime closes the sockets when the request ends.
 */
export function sqlClientOverPostgresJs(sql: PostgresJsInstance, close: () => Promise<void>): SqlClient {
  const begin = async <T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> => {
    try {
      // Nested `transaction` calls inside run on the transaction's own connection (no second BEGIN).
      return await sql.begin((tx) => fn(wrap(tx, undefined, async () => undefined)));
    } catch (error) {
      throw mapPostgresError(error);
    }
  };
  return wrap(sql, begin, close);
}
