import type { SqlClient } from './sql';

export interface Migration {
  /** File name, e.g. `001_core.sql`: applied in name order. */
  readonly name: string;
  readonly sql: string;
}

export interface MigrationResult {
  readonly applied: string[];
  readonly alreadyApplied: string[];
}

// Any constant works; every migrator of every node takes the same lock.
const MIGRATION_LOCK = 4_140_917_362;

async function checksum(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Forward-only migrations, each in its own transaction under an advisory lock (several nodes starting at
 * once apply each migration exactly once). Applied ones are recorded with a checksum: editing a migration
 * after it ran is an error, not a silent divergence.
 */
export async function migrate(db: SqlClient, migrations: readonly Migration[]): Promise<MigrationResult> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  for (const migration of [...migrations].sort((a, b) => a.name.localeCompare(b.name))) {
    const sum = await checksum(migration.sql);
    await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const [row] = await tx.query<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE name = $1', [migration.name]);
      if (row) {
        if (row.checksum !== sum) {
          throw new Error(
            `MIGRATION_CHANGED: ${migration.name} was modified after it was applied (checksum ${row.checksum.slice(0, 12)}… ≠ ${sum.slice(0, 12)}…). Migrations are forward-only: add a new one instead.`,
          );
        }
        alreadyApplied.push(migration.name);
        return;
      }
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)', [migration.name, sum]);
      applied.push(migration.name);
    });
  }
  return { applied, alreadyApplied };
}
