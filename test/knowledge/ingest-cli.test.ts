import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { openDatabase } from '../../media-node/db/open';
import { createKnowledgeStore } from '../../shared/store/knowledge';

const run = promisify(execFile);

describe('npm run kb:ingest', () => {
  let dir: string;
  let docs: string;
  let kb: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kb-ingest-'));
    docs = join(dir, 'docs');
    await mkdir(join(docs, 'policies'), { recursive: true });
    await mkdir(join(docs, '.git'), { recursive: true });
    await writeFile(join(docs, 'hours.md'), '# Opening hours\n\nWe open at nine on weekdays.');
    await writeFile(join(docs, 'policies', 'returns.html'), '<html><head><title>Returns</title></head><body><p>Refunds within thirty days.</p></body></html>');
    await writeFile(join(docs, 'notes.txt'), 'Parking is free.');
    await writeFile(join(docs, 'image.png'), 'not text');
    await writeFile(join(docs, '.git', 'config'), 'hidden');
    const { db } = await openDatabase(parseNodeEnv({ DATA_DIR: dir }));
    const projectId = crypto.randomUUID();
    await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'Acme']);
    kb = (await createKnowledgeStore(db).createKnowledgeBase({ projectId, name: 'Docs' })).id;
    await db.close();
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const ingest = (...args: string[]) =>
    run('npx', ['tsx', 'media-node/knowledge/ingest-cli.ts', ...args], { env: { ...process.env, DATA_DIR: dir, DATABASE_URL: '', OPENSEARCH_URL: '' }, timeout: 120_000 });

  it('ingests .txt/.md/.html under the folder with relative paths as ids; running it again replaces, not duplicates', async () => {
    const first = await ingest(docs, '--kb', kb);
    expect(first.stdout).toContain('hours.md: 1 chunk(s)');
    expect(first.stdout).toContain('policies/returns.html: 1 chunk(s)');
    expect(first.stdout).toContain('skipped image.png');
    expect(first.stdout).not.toContain('.git');
    expect(first.stdout).toContain(`pglite: 3 document(s), 3 chunk(s) in knowledge base ${kb}`);
    await writeFile(join(docs, 'notes.txt'), 'Parking is free. Bicycles park at the front.');
    await ingest(docs, '--kb', kb);

    const { db } = await openDatabase(parseNodeEnv({ DATA_DIR: dir }));
    try {
      const store = createKnowledgeStore(db);
      const docsIn = await store.listDocuments(kb);
      expect(docsIn.map((d) => [d.id, d.title])).toEqual([
        ['hours.md', 'Opening hours'],
        ['notes.txt', 'notes.txt'],
        ['policies/returns.html', 'Returns'],
      ]);
      expect((await store.search(kb, 'bicycle'))[0]!.source.documentId).toBe('notes.txt');
      expect((await store.getKnowledgeBase(kb))!.chunkCount).toBe(3);
    } finally {
      await db.close();
    }
  }, 120_000);

  it('an unknown knowledge base or a missing argument fails with a clear message', async () => {
    const unknown = await ingest(docs, '--kb', crypto.randomUUID()).catch((e: { stderr: string; code: number }) => e);
    expect((unknown as { code: number }).code).toBe(1);
    expect((unknown as { stderr: string }).stderr).toMatch(/KNOWLEDGE_BASE_NOT_FOUND/);
    const usage = await ingest(docs).catch((e: { stderr: string }) => e);
    expect((usage as { stderr: string }).stderr).toMatch(/usage: npm run kb:ingest/);
  }, 120_000);
});
