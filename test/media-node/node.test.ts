import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode } from '../../media-node/node';

describe('a media node on embedded defaults', () => {
  it('starts with no server, generates the admin key once, and keeps its data across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-start-'));
    try {
      const env = parseNodeEnv({ DATA_DIR: dir });
      const first = await startNode(env);
      expect(first.databaseKind).toBe('pglite');
      expect(first.cacheDescription).toBe('memory');
      expect(first.generatedAdminKey).toMatch(/^vr_ak_/);
      expect((await first.readiness()).ready).toBe(true);
      const admin = await first.stores.projects.authenticate(first.generatedAdminKey!);
      expect(admin?.kind).toBe('admin');
      const project = await first.stores.projects.createProject('Kept');
      await first.close();

      const second = await startNode(env);
      expect(second.generatedAdminKey).toBeUndefined(); // shown once, never again
      expect((await second.stores.projects.listProjects()).map((p) => p.id)).toContain(project.id);
      expect(await second.stores.projects.authenticate(first.generatedAdminKey!)).toMatchObject({ kind: 'admin' });
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
