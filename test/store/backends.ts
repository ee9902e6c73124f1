import { PGlite } from '@electric-sql/pglite';
import { createPgliteClient } from '../../media-node/db/pglite-client';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { loadMigrations } from '../../media-node/db/migrations';
import { migrate } from '../../shared/store/migrate';
import type { SqlClient } from '../../shared/store/sql';

export interface SqlBackend {
  readonly name: 'pglite' | 'postgres';
  /** A fresh, migrated database: PGlite in memory, or a new schema in TEST_DATABASE_URL (dropped on close). */
  open(): Promise<SqlClient>;
}

// One PGlite per test process (booting the WASM takes seconds); each open() gets a schema of its own.
let sharedPglite: Promise<PGlite> | undefined;
const pglite: SqlBackend = {
  name: 'pglite',
  async open() {
    sharedPglite ??= PGlite.create();
    const instance = await sharedPglite;
    const schema = freshSchemaName();
    await instance.exec(`CREATE SCHEMA ${schema}`);
    const db = await createPgliteClient({ db: instance, schema });
    await migrate(db, await loadMigrations());
    return {
      ...db,
      async close() {
        await instance.exec(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  },
};

const freshSchemaName = () => `t_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;

function postgresBackend(url: string): SqlBackend {
  return {
    name: 'postgres',
    async open() {
      const schema = freshSchemaName();
      const admin = createPostgresClient(url, { max: 1 });
      try {
        await admin.query(`CREATE SCHEMA ${schema}`);
      } catch (error) {
        await admin.close();
        throw new Error(`TEST_DATABASE_URL=${url} is unreachable or refused: ${(error as Error).message}`, { cause: error });
      }
      const db = createPostgresClient(url, { schema, max: 10 });
      await migrate(db, await loadMigrations());
      return {
        ...db,
        async close() {
          await db.close();
          await admin.query(`DROP SCHEMA ${schema} CASCADE`);
          await admin.close();
        },
      };
    },
  };
}

/**
 * The backends a store suite runs against: PGlite always, real PostgreSQL when TEST_DATABASE_URL is set.
 * Under CI=true a missing TEST_DATABASE_URL fails the run instead of quietly shrinking it.
 */
export function sqlBackends(): SqlBackend[] {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    if (process.env.CI === 'true') throw new Error('TEST_DATABASE_URL is not set: under CI=true the PostgreSQL store suites must run (.ci/run sets it)');
    console.warn('TEST_DATABASE_URL not set: store suites run on PGlite only');
    return [pglite];
  }
  return [pglite, postgresBackend(url)];
}
