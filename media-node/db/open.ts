import { join } from 'node:path';
import { migrate, type MigrationResult } from '../../shared/store/migrate';
import type { SqlClient } from '../../shared/store/sql';
import type { NodeEnv } from '../config/env';
import { loadMigrations } from './migrations';
import { createPgliteClient } from './pglite-client';
import { createPostgresClient } from './postgres-client';

export interface OpenedDatabase {
  readonly db: SqlClient;
  readonly kind: 'postgres' | 'pglite';
  readonly migrations: MigrationResult | undefined;
}

/**
 * The node's database: PostgreSQL when DATABASE_URL is set (in DATABASE_SCHEMA if given) (migrated at start-up only with MIGRATE=auto),
 * else PGlite in DATA_DIR/pglite (always migrated: it is this process's own database).
 */
export async function openDatabase(env: NodeEnv): Promise<OpenedDatabase> {
  if (env.DATABASE_URL) {
    const db = createPostgresClient(env.DATABASE_URL, env.DATABASE_SCHEMA ? { schema: env.DATABASE_SCHEMA } : {});
    const migrations = env.MIGRATE === 'auto' ? await migrate(db, await loadMigrations()) : undefined;
    return { db, kind: 'postgres', migrations };
  }
  const db = await createPgliteClient({ dataDir: join(env.DATA_DIR, 'pglite') });
  return { db, kind: 'pglite', migrations: await migrate(db, await loadMigrations()) };
}
