import { Client } from '@opensearch-project/opensearch';
import { z } from 'zod';
import { DEFAULT_TOP_K, type DocumentChunk, type KnowledgeBase, type Passage, type SearchOptions } from '../../shared/contracts/knowledge';
import type { DocumentMeta, KnowledgeWriter } from '../../shared/knowledge/ingest';

/**
 * Knowledge on OpenSearch (`OPENSEARCH_URL`), through `@opensearch-project/opensearch`. One index per knowledge
 * base (`<indexPrefix><id>`), created on first write with explicit mappings (strict: a stray field is an
 * error, not a silent new mapping). Chunks are written with `_bulk` (NDJSON, one `index` action per chunk,
 * `_id` = `<documentId>#<chunk>`), then the document's chunks beyond the new count are removed with
 * `_delete_by_query`: re-ingesting replaces a document without a window where it is missing.
 *
 * Search: BM25 `match` on the text. With an `embedding` provider (an OpenAI-compatible `/embeddings`
 * endpoint) chunks also get a `knn_vector` (HNSW, cosine, Lucene engine) and search is `knn` or, by default,
 * hybrid: a `bool.should` of the `match` and the `knn` clause (scores add up; no search pipeline needed).
 * The SQL store stays the record of knowledge bases and documents; this is the search index.
 */

export interface EmbeddingConfig {
  /** Base URL of an OpenAI-compatible API, e.g. `https://api.openai.com/v1` (`/embeddings` is appended). */
  readonly endpoint: string;
  readonly apiKey?: string;
  readonly model: string;
  /** Vector size the model returns (the index mapping needs it). */
  readonly dimensions: number;
  /** Texts per `/embeddings` request while ingesting (default 64). */
  readonly batchSize?: number;
}

export interface OpenSearchKnowledgeOptions {
  /** OPENSEARCH_URL, e.g. `https://admin:secret@search.internal:9200`. */
  readonly url: string;
  readonly indexPrefix?: string;
  /** Analyzer of the text and title fields (default `english`). */
  readonly analyzer?: string;
  readonly embedding?: EmbeddingConfig;
  /** With an embedding provider: `hybrid` (default), `knn`; without one only `bm25` is possible. */
  readonly mode?: 'bm25' | 'knn' | 'hybrid';
  /** Per-request timeout, ms (default 10 000). */
  readonly requestTimeoutMs?: number;
  /** For the embeddings endpoint (default: global fetch). */
  readonly fetch?: typeof fetch;
}

export interface OpenSearchKnowledge extends KnowledgeWriter {
  knowledgeBase(id: string): KnowledgeBase;
  search(knowledgeBaseId: string, query: string, options: SearchOptions, signal: AbortSignal): Promise<Passage[]>;
  indexName(knowledgeBaseId: string): string;
  close(): Promise<void>;
}

const Hit = z.object({
  _id: z.string(),
  _score: z.number().nullable(),
  _source: z.object({
    document_id: z.string(),
    chunk: z.number().int(),
    text: z.string(),
    title: z.string().optional(),
    uri: z.string().optional(),
  }),
});
const SearchResponse = z.object({ hits: z.object({ hits: z.array(Hit) }) });
const BulkResponse = z.object({
  errors: z.boolean(),
  items: z.array(z.record(z.string(), z.object({ status: z.number(), error: z.object({ type: z.string().optional(), reason: z.string().optional() }).passthrough().optional() }).passthrough())),
});
const DeleteByQueryResponse = z.object({ deleted: z.number() });
const EmbeddingsResponse = z.object({ data: z.array(z.object({ index: z.number().int(), embedding: z.array(z.number()) })) });

function abortError(): Error {
  const error = new Error('the knowledge search was aborted');
  error.name = 'AbortError';
  return error;
}

export class OpenSearchError extends Error {
  override readonly name = 'OpenSearchError';
}

function describe(error: unknown): string {
  const e = error as { name?: string; message?: string; meta?: { statusCode?: number; body?: unknown } };
  const status = e.meta?.statusCode ? ` (HTTP ${e.meta.statusCode})` : '';
  const reason = (e.meta?.body as { error?: { reason?: string } } | undefined)?.error?.reason;
  // Never the URL: OPENSEARCH_URL may carry credentials.
  return `${e.name ?? 'Error'}${status}: ${reason ?? e.message ?? String(error)}`.replace(/\/\/[^/@\s]+@/g, '//***@');
}

export function createOpenSearchKnowledge(options: OpenSearchKnowledgeOptions): OpenSearchKnowledge {
  const prefix = options.indexPrefix ?? 'knowledge-';
  const analyzer = options.analyzer ?? 'english';
  const embedding = options.embedding;
  const mode = embedding ? (options.mode ?? 'hybrid') : 'bm25';
  if (!embedding && options.mode && options.mode !== 'bm25') throw new OpenSearchError(`OpenSearch knowledge mode "${options.mode}" needs an embedding provider`);
  const client = new Client({ node: options.url, requestTimeout: options.requestTimeoutMs ?? 10_000, maxRetries: 1 });
  const doFetch = options.fetch ?? fetch;
  const ensured = new Map<string, Promise<void>>();

  function indexName(knowledgeBaseId: string): string {
    const id = knowledgeBaseId.toLowerCase();
    if (!/^[a-z0-9][a-z0-9_-]{0,200}$/.test(id)) throw new OpenSearchError(`"${knowledgeBaseId}" cannot name an OpenSearch index`);
    return `${prefix}${id}`;
  }

  /**
   * One request through the client's transport. An abort settles the returned promise at once; the request
   * itself runs out in the background (bounded by the request timeout) and its outcome is dropped: aborting
   * the client's request object raises an exception outside any promise in @opensearch-project/opensearch 3.9.
   */
  async function request<T>(params: { method: string; path: string; body?: unknown; bulkBody?: unknown[]; querystring?: Record<string, string> }, signal?: AbortSignal, ignore?: number[]): Promise<{ statusCode: number; body: T }> {
    if (signal?.aborted) throw abortError();
    const pending = Promise.resolve(client.transport.request(params as never, ignore ? { ignore } : {}));
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError());
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      const response = await Promise.race([pending, aborted]);
      return { statusCode: response.statusCode ?? 200, body: response.body as T };
    } catch (error) {
      if (signal?.aborted) {
        pending.catch(() => undefined);
        throw abortError();
      }
      throw new OpenSearchError(`OpenSearch ${params.method} ${params.path} failed: ${describe(error)}`, { cause: error });
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  function mappings() {
    return {
      settings: { index: { number_of_shards: 1, ...(embedding ? { knn: true } : {}) } },
      mappings: {
        dynamic: 'strict',
        properties: {
          document_id: { type: 'keyword' },
          chunk: { type: 'integer' },
          title: { type: 'text', analyzer },
          uri: { type: 'keyword', index: false },
          text: { type: 'text', analyzer },
          ...(embedding
            ? { embedding: { type: 'knn_vector', dimension: embedding.dimensions, method: { name: 'hnsw', space_type: 'cosinesimil', engine: 'lucene' } } }
            : {}),
        },
      },
    };
  }

  function ensureIndex(knowledgeBaseId: string): Promise<void> {
    const index = indexName(knowledgeBaseId);
    let done = ensured.get(index);
    if (!done) {
      done = (async () => {
        const { statusCode, body } = await request<{ error?: { type?: string } }>({ method: 'PUT', path: `/${index}`, body: mappings() }, undefined, [400]);
        if (statusCode === 400 && body.error?.type !== 'resource_already_exists_exception') {
          throw new OpenSearchError(`creating index ${index} failed: ${JSON.stringify(body.error ?? body).slice(0, 300)}`);
        }
      })();
      ensured.set(index, done);
      done.catch(() => ensured.delete(index));
    }
    return done;
  }

  async function embed(texts: readonly string[], signal?: AbortSignal): Promise<number[][]> {
    if (!embedding) return [];
    const out: number[][] = [];
    const batch = Math.max(1, embedding.batchSize ?? 64);
    for (let i = 0; i < texts.length; i += batch) {
      const input = texts.slice(i, i + batch);
      const response = await doFetch(`${embedding.endpoint.replace(/\/+$/, '')}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(embedding.apiKey ? { authorization: `Bearer ${embedding.apiKey}` } : {}) },
        body: JSON.stringify({ model: embedding.model, input }),
        ...(signal ? { signal } : {}),
      });
      const text = await response.text();
      if (!response.ok) throw new OpenSearchError(`embeddings request failed: HTTP ${response.status}: ${text.slice(0, 200)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new OpenSearchError('embeddings response is not JSON');
      }
      const parsed = EmbeddingsResponse.safeParse(json);
      if (!parsed.success) throw new OpenSearchError(`embeddings response has an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
      const vectors = [...parsed.data.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
      if (vectors.length !== input.length || vectors.some((v) => v.length !== embedding.dimensions)) {
        throw new OpenSearchError(`embeddings response has ${vectors.length} vectors for ${input.length} texts, or not of dimension ${embedding.dimensions}`);
      }
      out.push(...vectors);
    }
    return out;
  }

  async function deleteChunks(index: string, documentId: string, fromChunk: number): Promise<number> {
    const { statusCode, body } = await request<unknown>(
      {
        method: 'POST',
        path: `/${index}/_delete_by_query`,
        querystring: { refresh: 'true', conflicts: 'proceed' },
        body: { query: { bool: { filter: [{ term: { document_id: documentId } }, { range: { chunk: { gte: fromChunk } } }] } } },
      },
      undefined,
      [404],
    );
    if (statusCode === 404) return 0;
    const parsed = DeleteByQueryResponse.safeParse(body);
    if (!parsed.success) throw new OpenSearchError('_delete_by_query response has an unexpected shape');
    return parsed.data.deleted;
  }

  async function search(knowledgeBaseId: string, query: string, opts: SearchOptions, signal: AbortSignal): Promise<Passage[]> {
    const text = query.trim().slice(0, 1000);
    if (!text) return [];
    const topK = Math.max(1, Math.min(50, Math.floor(opts.topK ?? DEFAULT_TOP_K)));
    const filter = opts.filter?.documentIds ? [{ terms: { document_id: [...opts.filter.documentIds] } }] : [];
    const match = { match: { text: { query: text } } };
    let clause: Record<string, unknown>;
    if (mode === 'bm25') clause = { bool: { must: [match], filter } };
    else {
      const [vector] = await embed([text], signal);
      const knn = { knn: { embedding: { vector, k: topK } } };
      clause = mode === 'knn' ? { bool: { must: [knn], filter } } : { bool: { should: [match, knn], minimum_should_match: 1, filter } };
    }
    const body = {
      size: topK,
      query: clause,
      _source: ['document_id', 'chunk', 'title', 'uri', 'text'],
      ...(opts.minScore !== undefined ? { min_score: opts.minScore } : {}),
    };
    const index = indexName(knowledgeBaseId);
    const response = await request<unknown>({ method: 'POST', path: `/${index}/_search`, body }, signal, [404]);
    if (response.statusCode === 404) return []; // nothing ingested yet
    const parsed = SearchResponse.safeParse(response.body);
    if (!parsed.success) throw new OpenSearchError(`_search response has an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
    return parsed.data.hits.hits.map((h) => ({
      text: h._source.text,
      score: h._score ?? 0,
      source: {
        documentId: h._source.document_id,
        chunk: h._source.chunk,
        ...(h._source.title !== undefined ? { title: h._source.title } : {}),
        ...(h._source.uri !== undefined ? { uri: h._source.uri } : {}),
      },
    }));
  }

  return {
    indexName,
    search,

    async replaceDocument(knowledgeBaseId, document: DocumentMeta, chunks: readonly DocumentChunk[]) {
      const index = indexName(knowledgeBaseId);
      await ensureIndex(knowledgeBaseId);
      if (chunks.length > 0) {
        const vectors = await embed(chunks.map((c) => c.text));
        const lines: unknown[] = [];
        chunks.forEach((c, i) => {
          lines.push({ index: { _index: index, _id: `${document.id}#${c.index}` } });
          lines.push({
            document_id: document.id,
            chunk: c.index,
            text: c.text,
            ...(document.title !== undefined ? { title: document.title } : {}),
            ...(document.uri !== undefined ? { uri: document.uri } : {}),
            ...(embedding ? { embedding: vectors[i] } : {}),
          });
        });
        const { body } = await request<unknown>({ method: 'POST', path: '/_bulk', bulkBody: lines, querystring: { refresh: 'wait_for' } });
        const parsed = BulkResponse.safeParse(body);
        if (!parsed.success) throw new OpenSearchError('_bulk response has an unexpected shape');
        if (parsed.data.errors) {
          const failed = parsed.data.items.map((item) => Object.values(item)[0]).find((r) => r?.error);
          throw new OpenSearchError(`_bulk indexing of ${document.id} failed: ${failed?.error?.type ?? ''} ${failed?.error?.reason ?? ''}`.trim());
        }
      }
      await deleteChunks(index, document.id, chunks.length);
      return true;
    },

    async deleteDocument(knowledgeBaseId, documentId) {
      return (await deleteChunks(indexName(knowledgeBaseId), documentId, 0)) > 0;
    },

    knowledgeBase(id) {
      return { id, search: (query, opts, signal) => search(id, query, opts, signal) };
    },

    async close() {
      await client.close();
    },
  };
}
