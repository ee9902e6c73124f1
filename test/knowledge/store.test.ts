import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestDocument } from '../../shared/knowledge/ingest';
import { createKnowledgeStore, type KnowledgeStore } from '../../shared/store/knowledge';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from '../store/backends';
import { seed } from '../store/fixtures';

const HOURS = `# Opening hours

The shop opens at nine in the morning and closes at six in the evening on weekdays.
On Saturdays it opens at ten. It is closed on Sundays and public holidays.`;

const RETURNS = `<h1>Returns</h1><p>Items can be returned within thirty days with the receipt.</p>
<p>Refunds are paid to the original card within five working days.</p>`;

const PARKING = 'Parking is free for customers in the car park behind the shop.';

describe.each(sqlBackends())('knowledge store on $name', (backend) => {
  let db: SqlClient;
  let store: KnowledgeStore;
  let projectId: string;
  let kb: string;

  beforeAll(async () => {
    db = await backend.open();
    store = createKnowledgeStore(db);
    projectId = (await seed(db)).projectId;
    kb = (await store.createKnowledgeBase({ projectId, name: 'Shop FAQ', description: 'store facts' })).id;
    expect(await ingestDocument(store, kb, { id: 'hours.md', title: 'Opening hours', contentType: 'markdown', content: HOURS })).toMatchObject({ documentId: 'hours.md', chunks: 1 });
    await ingestDocument(store, kb, { id: 'returns.html', title: 'Returns', uri: 'https://shop.example/returns', contentType: 'html', content: RETURNS });
    await ingestDocument(store, kb, { id: 'parking.txt', contentType: 'text', content: PARKING });
  });

  afterAll(async () => {
    await db?.close();
  });

  it('creates, gets and lists knowledge bases per project, with document and chunk counts', async () => {
    const other = (await seed(db, 'Globex')).projectId;
    const theirs = await store.createKnowledgeBase({ projectId: other, name: 'Theirs', language: 'french' });
    expect(theirs).toMatchObject({ projectId: other, name: 'Theirs', language: 'french', documentCount: 0, chunkCount: 0 });
    const mine = await store.getKnowledgeBase(kb);
    expect(mine).toMatchObject({ id: kb, projectId, name: 'Shop FAQ', description: 'store facts', language: 'english', documentCount: 3, chunkCount: 3 });
    expect((await store.listKnowledgeBases(projectId)).map((b) => b.id)).toEqual([kb]);
    expect((await store.listKnowledgeBases(other)).map((b) => b.id)).toEqual([theirs.id]);
    expect(await store.getKnowledgeBase('not-a-uuid')).toBeUndefined();
    expect(await store.getKnowledgeBase(crypto.randomUUID())).toBeUndefined();
  });

  it('ranks by relevance with stemming, any-word matching, topK and source', async () => {
    const passages = await store.search(kb, 'When does the shop open on Saturday?');
    expect(passages[0]).toMatchObject({ source: { documentId: 'hours.md', chunk: 0, title: 'Opening hours' } });
    expect(passages[0]!.text).toContain('On Saturdays it opens at ten.');
    expect(passages[0]!.score).toBeGreaterThan(0);
    expect(passages[0]!.score).toBeLessThan(1);
    // "shop" also matches parking; hours ranks first.
    expect(passages.map((p) => p.source.documentId)).toContain('parking.txt');
    for (let i = 1; i < passages.length; i++) expect(passages[i - 1]!.score).toBeGreaterThanOrEqual(passages[i]!.score);

    const refunds = await store.search(kb, 'how do I get a refund on my card');
    expect(refunds[0]).toMatchObject({ source: { documentId: 'returns.html', uri: 'https://shop.example/returns', title: 'Returns' } });
    expect(await store.search(kb, 'shop', { topK: 1 })).toHaveLength(1);
    expect(await store.search(kb, 'what is it')).toEqual([]); // stop words only
    expect(await store.search(kb, 'zebra giraffe')).toEqual([]);
    expect(await store.search(kb, '   ')).toEqual([]);
  });

  it('minScore and the document filter narrow the results', async () => {
    const all = await store.search(kb, 'shop opens Saturdays');
    expect(all.length).toBeGreaterThanOrEqual(2);
    const best = all[0]!.score;
    const strict = await store.search(kb, 'shop opens Saturdays', { minScore: best });
    expect(strict.map((p) => p.source.documentId)).toEqual([all[0]!.source.documentId]);
    const filtered = await store.search(kb, 'shop', { filter: { documentIds: ['parking.txt'] } });
    expect(filtered.map((p) => p.source.documentId)).toEqual(['parking.txt']);
  });

  it('tsquery syntax in the query is plain text, not an error', async () => {
    for (const q of ["it's & | ! ( ) : * <-> 'quoted'", 'shop\'s "opening" hours!!', '\\ \u0000x']) {
      await expect(store.search(kb, q.replace('\u0000', ''))).resolves.toBeInstanceOf(Array);
    }
    expect((await store.search(kb, "shop's (opening) & hours")).length).toBeGreaterThan(0);
  });

  it('re-ingesting a document replaces its chunks; deleting removes them; knowledge bases are isolated', async () => {
    const kb2 = (await store.createKnowledgeBase({ projectId, name: 'Scratch' })).id;
    const long = Array.from({ length: 30 }, (_, i) => `Fact ${i} says the zeppelin ${i} flies at noon.`).join(' ');
    const first = await ingestDocument(store, kb2, { id: 'doc', contentType: 'text', content: long }, { maxChars: 200, overlapChars: 50 });
    expect(first!.chunks).toBeGreaterThan(3);
    expect(await store.documentChunks(kb2, 'doc')).toHaveLength(first!.chunks);
    expect((await store.search(kb2, 'zeppelin', { topK: 50 })).length).toBe(first!.chunks);
    expect(await store.search(kb, 'zeppelin')).toEqual([]);

    const again = await ingestDocument(store, kb2, { id: 'doc', title: 'Airships', contentType: 'text', content: 'Only one balloon now.' });
    expect(again).toMatchObject({ chunks: 1 });
    expect(await store.documentChunks(kb2, 'doc')).toEqual([{ index: 0, text: 'Only one balloon now.' }]);
    expect(await store.search(kb2, 'zeppelin')).toEqual([]);
    expect((await store.search(kb2, 'airships'))[0]).toMatchObject({ source: { documentId: 'doc', title: 'Airships' } }); // title is indexed
    expect(await store.listDocuments(kb2)).toEqual([expect.objectContaining({ id: 'doc', title: 'Airships', contentType: 'text', chunkCount: 1 })]);

    // Concurrent ingestions of one document: one wins whole, never a mix.
    await Promise.all(
      ['alpha', 'beta', 'gamma'].map((w) => ingestDocument(store, kb2, { id: 'race', contentType: 'text', content: Array.from({ length: 20 }, (_, i) => `${w} ${i}.`).join(' ') }, { maxChars: 40, overlapChars: 0 })),
    );
    const raced = await store.documentChunks(kb2, 'race');
    const words = new Set(raced.flatMap((c) => c.text.match(/alpha|beta|gamma/g) ?? []));
    expect(words.size).toBe(1);
    expect(raced.map((c) => c.index)).toEqual(raced.map((_, i) => i));

    expect(await store.deleteDocument(kb2, 'doc')).toBe(true);
    expect(await store.deleteDocument(kb2, 'doc')).toBe(false);
    expect(await store.documentChunks(kb2, 'doc')).toEqual([]);
    expect(await store.search(kb2, 'balloon')).toEqual([]);
    expect(await store.replaceDocument(crypto.randomUUID(), { id: 'x', contentType: 'text' }, [{ index: 0, text: 'x' }])).toBe(false);
    expect(await ingestDocument(store, 'nope', { content: 'x' })).toBeUndefined();
  });

  it('the KnowledgeBase view searches and honours an abort', async () => {
    const view = store.knowledgeBase(kb);
    const passages = await view.search('refund', { topK: 2 }, new AbortController().signal);
    expect(passages[0]!.source.documentId).toBe('returns.html');
    const aborted = new AbortController();
    aborted.abort();
    await expect(view.search('refund', {}, aborted.signal)).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('searches run in a transaction under statement_timeout, so an abandoned statement dies', async () => {
    const statements: string[] = [];
    const inTransaction: boolean[] = [];
    const recording = (client: SqlClient, tx: boolean): SqlClient => ({
      ...client,
      query: (text, params) => {
        statements.push(text);
        inTransaction.push(tx);
        return client.query(text, params);
      },
      transaction: (fn) => client.transaction((inner) => fn(recording(inner, true))),
    });
    const watched = createKnowledgeStore(recording(db, false));
    expect((await watched.search(kb, 'parking'))[0]).toMatchObject({ source: { documentId: 'parking.txt' } });
    expect(statements[0]).toBe("SET LOCAL statement_timeout = '2000ms'");
    expect(statements.length).toBeGreaterThan(1);
    expect(inTransaction.every(Boolean)).toBe(true);
  });

  // PGlite accepts statement_timeout but does not enforce it: the case exists only for PostgreSQL (not registered, not skipped).
  if (backend.name === 'postgres') it('on PostgreSQL a search statement past the timeout is cancelled by the server', async () => {
    // A tier query that would run 3 s: the server ends it after searchTimeoutMs.
    const slow = (client: SqlClient): SqlClient => ({
      ...client,
      query: async (text, params) => {
        if (text.includes('WITH candidates')) await client.query('SELECT pg_sleep(3)');
        return client.query(text, params);
      },
      transaction: (fn) => client.transaction((inner) => fn(slow(inner))),
    });
    const slowStore = createKnowledgeStore(slow(db), { searchTimeoutMs: 100 });
    const started = Date.now();
    await expect(slowStore.search(kb, 'parking')).rejects.toThrow(/statement timeout/i);
    expect(Date.now() - started).toBeLessThan(2000);
    // The timeout was local to the search's transaction.
    expect(await store.search(kb, 'parking')).not.toHaveLength(0);
  });
});
