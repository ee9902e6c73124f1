import postgres from 'postgres';
import { sqlClientOverPostgresJs, type PostgresJsInstance } from '../../shared/store/postgres-js';
import { DatabaseUnavailableError, type SqlClient } from '../../shared/store/sql';
import type { EdgeConfig } from '../env';

/**
 * How long one statement or transaction of a call may take before the connection is given up. Measured
 * reason: postgres.js's workerd socket never reports a connection the peer dropped (its read loop ends on
 * EOF without a close event), so a query sent on it waits forever; without a deadline the call's writer
 * would sit on that query and never move its records to the journal.
 */
export const SESSION_QUERY_DEADLINE_MS = 4_000;

export interface SessionDatabase {
  readonly client: SqlClient;
  /** Connections replaced after a missed deadline (diagnostics). */
  readonly replaced: number;
}

/**
 * The PostgreSQL connection of a browser call. Unlike the Worker's per-request client (edge/db.ts, up to 2
 * sockets), a call's client is created once per session and reused by every later event of the object (a
 * Durable Object keeps its I/O across events, which a stateless Worker request cannot), and it holds a
 * single socket: the call's connection budget counts it as one of its 6. Otherwise set up like edge/db.ts:
 * Hyperdrive or DATABASE_URL, DATABASE_SCHEMA as search_path, no type discovery.
 *
 * Every statement runs against a deadline; a miss fails it with DatabaseUnavailableError (retryable, so the
 * writer backs off and journals) and replaces the client: the stuck one is ended without waiting, which
 * releases its socket (postgres.js may then log "Stream was cancelled", porsager/postgres#1202: harmless
 * here, and the reason the healthy client is never ended; the runtime closes its socket with the object).
 */
export function openSessionDatabase(database: EdgeConfig['database'], options: { deadlineMs?: number } = {}): SessionDatabase {
  const deadlineMs = options.deadlineMs ?? SESSION_QUERY_DEADLINE_MS;
  let current = connect(database);
  let replaced = 0;

  async function withDeadline<T>(what: string, run: (client: SqlClient) => Promise<T>): Promise<T> {
    const used = current;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const missed = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (current === used) {
          current = connect(database);
          replaced++;
          used.abandon();
        }
        reject(new DatabaseUnavailableError(`PostgreSQL did not answer ${what} within ${deadlineMs} ms; the connection was replaced`));
      }, deadlineMs);
    });
    try {
      return await Promise.race([run(used.client), missed]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    client: {
      query: (text, params) => withDeadline('a query', (client) => client.query(text, params)),
      transaction: (fn) => withDeadline('a transaction', (client) => client.transaction(fn)),
      exec: (text) => withDeadline('a statement', (client) => client.exec(text)),
      close: async () => undefined,
    },
    get replaced() {
      return replaced;
    },
  };
}

function connect(database: EdgeConfig['database']): { client: SqlClient; abandon(): void } {
  const sql = postgres(database.connectionString, {
    max: 1,
    fetch_types: false,
    connect_timeout: 5,
    onnotice: () => undefined,
    ...(database.schema ? { connection: { search_path: database.schema } } : {}),
  });
  return {
    client: sqlClientOverPostgresJs(sql as unknown as PostgresJsInstance, async () => undefined),
    abandon: () => void sql.end({ timeout: 0 }).catch(() => undefined),
  };
}
