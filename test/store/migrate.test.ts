import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPgliteClient } from '../../media-node/db/pglite-client';
import { loadMigrations } from '../../media-node/db/migrations';
import { migrate } from '../../shared/store/migrate';
import { sqlBackends } from './backends';

describe.each(sqlBackends())('migrations on $name', (backend) => {
  it('creates every table, records the migrations and is a no-op when run again', async () => {
    const db = await backend.open(); // open() has migrated once already
    try {
      const again = await migrate(db, await loadMigrations());
      expect(again.applied).toEqual([]);
      expect(again.alreadyApplied).toContain('001_core.sql');
      const tables = await db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`,
      );
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(['api_keys', 'assistant_versions', 'assistants', 'call_contexts', 'call_events', 'conversations', 'credentials', 'messages', 'projects', 'publishable_keys', 'schema_migrations', 'turn_metrics', 'webhook_deliveries']),
      );
    } finally {
      await db.close();
    }
  });

  it('refuses a migration whose text changed after it was applied', async () => {
    const db = await backend.open();
    try {
      const migrations = await loadMigrations();
      const edited = migrations.map((m) => (m.name === '001_core.sql' ? { ...m, sql: `${m.sql}\n-- edited` } : m));
      await expect(migrate(db, edited)).rejects.toThrow(/MIGRATION_CHANGED: 001_core\.sql/);
    } finally {
      await db.close();
    }
  });

  it('applies a new migration once, even when two migrators race', async () => {
    const db = await backend.open();
    try {
      const extra = [...(await loadMigrations()), { name: '999_test_extra.sql', sql: 'CREATE TABLE test_extra (id integer PRIMARY KEY);' }];
      const [a, b] = await Promise.all([migrate(db, extra), migrate(db, extra)]);
      expect([...a.applied, ...b.applied]).toEqual(['999_test_extra.sql']);
      await db.query('INSERT INTO test_extra VALUES (1)');
    } finally {
      await db.close();
    }
  });

  it('a failing migration rolls back entirely and is not recorded', async () => {
    const db = await backend.open();
    try {
      const bad = [...(await loadMigrations()), { name: '998_bad.sql', sql: 'CREATE TABLE half_done (id integer); SELECT no_such_function();' }];
      await expect(migrate(db, bad)).rejects.toThrow();
      const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'half_done'`);
      expect(row!.n).toBe(0);
      const recorded = await db.query(`SELECT name FROM schema_migrations WHERE name = '998_bad.sql'`);
      expect(recorded).toEqual([]);
    } finally {
      await db.close();
    }
  });
});

describe('PGlite data directory', () => {
  it('survives a restart: write, close, reopen, read back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pglite-restart-'));
    try {
      const first = await createPgliteClient({ dataDir: dir });
      await migrate(first, await loadMigrations());
      await first.query(`INSERT INTO projects (name) VALUES ('kept across restarts')`);
      await first.close();
      const second = await createPgliteClient({ dataDir: dir });
      const result = await migrate(second, await loadMigrations());
      expect(result.applied).toEqual([]);
      const rows = await second.query<{ name: string }>('SELECT name FROM projects');
      expect(rows.map((r) => r.name)).toEqual(['kept across restarts']);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
