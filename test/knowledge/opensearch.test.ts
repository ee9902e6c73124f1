import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOpenSearchKnowledge } from '../../media-node/knowledge/opensearch';
import { ingestDocument } from '../../shared/knowledge/ingest';

/**
 * A fake of the documented OpenSearch endpoints (PUT /<index>, POST /_bulk, POST /<index>/_delete_by_query,
 * POST /<index>/_search) and of an OpenAI-compatible POST /v1/embeddings. It records every request exactly as
 * received; responses are scripted per route.
 */
interface Received {
  readonly method: string;
  readonly url: string;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  readonly body: string;
}

let server: Server;
let base: string;
const received: Received[] = [];
let respond: (r: Received) => { status: number; body: unknown; delayMs?: number } = () => ({ status: 200, body: {} });
let openSockets = 0;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(r);
      const { status, body, delayMs } = respond(r);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (delayMs) setTimeout(send, delayMs);
      else send();
    });
  });
  server.on('connection', (s) => {
    openSockets++;
    s.on('close', () => openSockets--);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

afterEach(() => {
  received.length = 0;
});

const KB = '0b4c5e52-2c1d-4bb7-9f55-6a1f7e8b9c0d';
const INDEX = `knowledge-${KB}`;
const ndjson = (body: string) => body.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);

function standardResponses(r: Received) {
  if (r.method === 'PUT') return { status: 200, body: { acknowledged: true, index: INDEX } };
  if (r.url.startsWith('/_bulk')) return { status: 200, body: { took: 3, errors: false, items: ndjson(r.body).filter((_, i) => i % 2 === 0).map(() => ({ index: { status: 201 } })) } };
  if (r.url.includes('_delete_by_query')) return { status: 200, body: { deleted: 2, failures: [] } };
  if (r.url.includes('_search')) {
    return {
      status: 200,
      body: {
        took: 2,
        hits: {
          total: { value: 1, relation: 'eq' },
          max_score: 2.5,
          hits: [{ _index: INDEX, _id: 'faq.md#1', _score: 2.5, _source: { document_id: 'faq.md', chunk: 1, text: 'We open at ten on Saturdays.', title: 'FAQ' } }],
        },
      },
    };
  }
  if (r.url === '/v1/embeddings') {
    const input = (JSON.parse(r.body) as { input: string[] }).input;
    return { status: 200, body: { object: 'list', data: input.map((_, i) => ({ object: 'embedding', index: i, embedding: [i + 0.5, 0.25, -1] })), model: 'emb' } };
  }
  return { status: 404, body: { error: 'no such route' } };
}

describe('OpenSearch knowledge against a fake of its endpoints', () => {
  it('BM25: creates the index with explicit mappings once, bulk-indexes chunks as NDJSON, removes stale chunks, searches with match', async () => {
    respond = standardResponses;
    const os = createOpenSearchKnowledge({ url: base });
    const doc = { id: 'faq.md', title: 'FAQ', uri: 'https://shop.example/faq', contentType: 'markdown' as const, content: `${'First fact here. '.repeat(30).trim()}\n\nWe open at ten on Saturdays.` };
    const result = await ingestDocument(os, KB, doc, { maxChars: 520, overlapChars: 0 });
    expect(result!.chunks).toBe(2);

    expect(received.map((r) => `${r.method} ${r.url}`)).toEqual([`PUT /${INDEX}`, 'POST /_bulk?refresh=wait_for', `POST /${INDEX}/_delete_by_query?refresh=true&conflicts=proceed`]);
    expect(JSON.parse(received[0]!.body)).toEqual({
      settings: { index: { number_of_shards: 1 } },
      mappings: {
        dynamic: 'strict',
        properties: {
          document_id: { type: 'keyword' },
          chunk: { type: 'integer' },
          title: { type: 'text', analyzer: 'english' },
          uri: { type: 'keyword', index: false },
          text: { type: 'text', analyzer: 'english' },
        },
      },
    });
    const bulk = received[1]!;
    expect(bulk.contentType).toMatch(/^application\/(x-ndjson|json)/);
    expect(bulk.body.endsWith('\n')).toBe(true);
    const lines = ndjson(bulk.body);
    expect(lines).toEqual([
      { index: { _index: INDEX, _id: 'faq.md#0' } },
      { document_id: 'faq.md', chunk: 0, text: expect.stringMatching(/^First fact here\./), title: 'FAQ', uri: 'https://shop.example/faq' },
      { index: { _index: INDEX, _id: 'faq.md#1' } },
      { document_id: 'faq.md', chunk: 1, text: 'We open at ten on Saturdays.', title: 'FAQ', uri: 'https://shop.example/faq' },
    ]);
    expect(JSON.parse(received[2]!.body)).toEqual({ query: { bool: { filter: [{ term: { document_id: 'faq.md' } }, { range: { chunk: { gte: 2 } } }] } } });

    // Second ingestion: the index is not created again.
    received.length = 0;
    await ingestDocument(os, KB, { ...doc, content: 'Short now.' });
    expect(received.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual(['POST /_bulk', `POST /${INDEX}/_delete_by_query`]);
    expect(JSON.parse(received[1]!.body).query.bool.filter[1]).toEqual({ range: { chunk: { gte: 1 } } });

    received.length = 0;
    const passages = await os.knowledgeBase(KB).search('When do you open on Saturday?', { topK: 3, minScore: 0.5, filter: { documentIds: ['faq.md'] } }, new AbortController().signal);
    expect(JSON.parse(received[0]!.body)).toEqual({
      size: 3,
      query: { bool: { must: [{ match: { text: { query: 'When do you open on Saturday?' } } }], filter: [{ terms: { document_id: ['faq.md'] } }] } },
      _source: ['document_id', 'chunk', 'title', 'uri', 'text'],
      min_score: 0.5,
    });
    expect(received[0]!.url).toBe(`/${INDEX}/_search`);
    expect(passages).toEqual([{ text: 'We open at ten on Saturdays.', score: 2.5, source: { documentId: 'faq.md', chunk: 1, title: 'FAQ' } }]);

    received.length = 0;
    expect(await os.deleteDocument(KB, 'faq.md')).toBe(true);
    expect(JSON.parse(received[0]!.body)).toEqual({ query: { bool: { filter: [{ term: { document_id: 'faq.md' } }, { range: { chunk: { gte: 0 } } }] } } });
    await os.close();
  });

  it('with an embedding provider: knn_vector mapping, vectors in the bulk lines, hybrid match + knn query', async () => {
    respond = standardResponses;
    const os = createOpenSearchKnowledge({ url: base, indexPrefix: 'kb2-', embedding: { endpoint: `${base}/v1/`, apiKey: 'emb-key', model: 'text-embedding-3-small', dimensions: 3 } });
    await ingestDocument(os, KB, { id: 'a', contentType: 'text', content: 'Alpha fact.' });
    expect(received.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([`PUT /kb2-${KB}`, 'POST /v1/embeddings', 'POST /_bulk', `POST /kb2-${KB}/_delete_by_query`]);
    const mapping = JSON.parse(received[0]!.body);
    expect(mapping.settings.index.knn).toBe(true);
    expect(mapping.mappings.properties.embedding).toEqual({ type: 'knn_vector', dimension: 3, method: { name: 'hnsw', space_type: 'cosinesimil', engine: 'lucene' } });
    expect(received[1]!.authorization).toBe('Bearer emb-key');
    expect(JSON.parse(received[1]!.body)).toEqual({ model: 'text-embedding-3-small', input: ['Alpha fact.'] });
    expect(ndjson(received[2]!.body)[1]).toEqual({ document_id: 'a', chunk: 0, text: 'Alpha fact.', embedding: [0.5, 0.25, -1] });

    received.length = 0;
    await os.search(KB, 'alpha', { topK: 2 }, new AbortController().signal);
    expect(JSON.parse(received[0]!.body)).toEqual({ model: 'text-embedding-3-small', input: ['alpha'] });
    expect(JSON.parse(received[1]!.body)).toEqual({
      size: 2,
      query: { bool: { should: [{ match: { text: { query: 'alpha' } } }, { knn: { embedding: { vector: [0.5, 0.25, -1], k: 2 } } }], minimum_should_match: 1, filter: [] } },
      _source: ['document_id', 'chunk', 'title', 'uri', 'text'],
    });
    await os.close();
    expect(() => createOpenSearchKnowledge({ url: base, mode: 'knn' })).toThrow(/needs an embedding provider/);
  });

  it('errors are clear: bulk item failures, malformed responses, missing index on search, credentials masked; abort stops a search', async () => {
    const os = createOpenSearchKnowledge({ url: base.replace('http://', 'http://elastic:hunter2@') });
    respond = (r) =>
      r.url.startsWith('/_bulk')
        ? { status: 200, body: { errors: true, items: [{ index: { status: 400, error: { type: 'mapper_parsing_exception', reason: 'failed to parse field [chunk]' } } }] } }
        : standardResponses(r);
    await expect(ingestDocument(os, KB, { id: 'x', content: 'Some text.' })).rejects.toThrow(/mapper_parsing_exception failed to parse field \[chunk\]/);

    respond = (r) => (r.url.includes('_search') ? { status: 200, body: { hits: 'nope' } } : standardResponses(r));
    await expect(os.search(KB, 'q', {}, new AbortController().signal)).rejects.toThrow(/unexpected shape/);

    respond = (r) => (r.url.includes('_search') ? { status: 404, body: { error: { type: 'index_not_found_exception', reason: 'no such index' }, status: 404 } } : standardResponses(r));
    await expect(os.search(KB, 'q', {}, new AbortController().signal)).resolves.toEqual([]);

    respond = () => ({ status: 500, body: { error: { type: 'x', reason: 'node on fire' } } });
    const failure = await os.search(KB, 'q', {}, new AbortController().signal).catch((e: unknown) => e as Error);
    expect(String(failure)).toMatch(/node on fire/);
    expect(String(failure)).not.toContain('hunter2');

    respond = (r) => ({ ...standardResponses(r), delayMs: 2000 });
    const abort = new AbortController();
    const started = performance.now();
    const pending = os.search(KB, 'q', {}, abort.signal);
    setTimeout(() => abort.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(1000);
    await os.close();
  });
});
