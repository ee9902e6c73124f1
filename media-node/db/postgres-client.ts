import postgres from 'postgres';
import { sqlClientOverPostgresJs, type PostgresJsInstance } from '../../shared/store/postgres-js';
import type { SqlClient } from '../../shared/store/sql';

export interface PostgresClientOptions {
  /** Pool size. */
  readonly max?: number;
  /** Schema to use as search_path (tests run each suite in a fresh schema). */
  readonly schema?: string;
  readonly connectTimeoutSeconds?: number;
}

/** The `postgres` package behind the SqlClient contract (DATABASE_URL); the adapter itself is shared/store/postgres-js.ts. */
export function createPostgresClient(url: string, options: PostgresClientOptions = {}): SqlClient {
  const sql = postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    onnotice: () => undefined,
    ...(options.schema ? { connection: { search_path: options.schema } } : {}),
  });
  // postgres.js's own types are more precise than the structural shape the adapter needs.
  return sqlClientOverPostgresJs(sql as unknown as PostgresJsInstance, () => sql.end({ timeout: 5 }));
}
