import postgres from 'postgres';
import { sqlClientOverPostgresJs, type PostgresJsInstance } from '../shared/store/postgres-js';
import type { SqlClient } from '../shared/store/sql';
import type { EdgeConfig } from './env';

/**
 * PostgreSQL for one Worker request: postgres.js (its `workerd` build, over `cloudflare:sockets`; needs the
 * nodejs_compat flag) through Hyperdrive's connection string, or DATABASE_URL over plain TCP.
 *
 * - Created per request: workerd sockets cannot outlive the request that opened them.
 * - At most EDGE_DB_MAX_CONNECTIONS sockets: a Worker invocation may hold 6 outbound connections at once, and
 *   the same request may also be talking to Upstash (fetch), a media node (the pre-warm) and Twilio's API.
 * - `fetch_types: false`: no type-discovery round trip on connect (the stores read arrays as JSON, so they
 *   need no array parsers); prepared statements stay on (Hyperdrive caches them).
 * - Never `sql.end()`: in workerd it leaves an unhandled "Stream was cancelled" rejection
 *   (porsager/postgres#1202); the runtime closes the sockets when the request ends. `close()` is a no-op.
 */
export const EDGE_DB_MAX_CONNECTIONS = 2;

export function createEdgeSqlClient(database: EdgeConfig['database']): SqlClient {
  const sql = postgres(database.connectionString, {
    max: EDGE_DB_MAX_CONNECTIONS,
    fetch_types: false,
    connect_timeout: 10,
    onnotice: () => undefined,
    ...(database.schema ? { connection: { search_path: database.schema } } : {}),
  });
  return sqlClientOverPostgresJs(sql as unknown as PostgresJsInstance, async () => undefined);
}
