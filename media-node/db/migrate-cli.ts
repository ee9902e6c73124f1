/** `npm run db:migrate`: apply infra/migrations to DATABASE_URL (or the embedded PGlite in DATA_DIR). */
import { parseNodeEnv } from '../config/env';
import { migrate } from '../../shared/store/migrate';
import { loadMigrations } from './migrations';
import { openDatabase } from './open';

async function main(): Promise<void> {
  const env = parseNodeEnv(process.env);
  const { db, kind, migrations } = await openDatabase({ ...env, MIGRATE: 'off' });
  try {
    const result = migrations ?? (await migrate(db, await loadMigrations()));
    console.log(`${kind}: applied ${result.applied.length} migration(s)${result.applied.length ? ` (${result.applied.join(', ')})` : ''}; ${result.alreadyApplied.length} already applied`);
  } finally {
    await db.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
