import { z } from 'zod';
import { DEFAULT_TOP_K, type DocumentChunk, type KnowledgeBase, type Passage, type SearchOptions } from '../contracts/knowledge';
import type { DocumentMeta, KnowledgeWriter } from '../knowledge/ingest';
import { isUuid, jsonParam, onlyRow, toDate, toNumber, toStringOrUndefined } from './rows';
import type { SqlClient } from './sql';

/**
 * The embedded knowledge index on PostgreSQL / PGlite full-text search (infra/migrations/003_knowledge.sql).
 *
 * Search: the query's words go through the knowledge base's text search configuration (stemming, stop words).
 * A spoken question rarely has every word of the answer (AND alone, as `websearch_to_tsquery` does, misses
 * most), and OR alone ranks half the index when a word is common: chunks are looked for in tiers (every word,
 * any two words, any word; see `tiers`) until `topK` are found. Each is scored with `ts_rank` against the OR
 * of all words (title weighted above text), normalised to 0..1 (rank / (rank + 1)); `minScore` applies to it.
 */

/** Text search configurations available on PostgreSQL and PGlite alike. */
export const KNOWLEDGE_LANGUAGES = [
  'simple', 'arabic', 'armenian', 'basque', 'catalan', 'danish', 'dutch', 'english', 'estonian', 'finnish', 'french', 'german',
  'greek', 'hindi', 'hungarian', 'indonesian', 'irish', 'italian', 'lithuanian', 'nepali', 'norwegian', 'portuguese',
  'romanian', 'russian', 'serbian', 'spanish', 'swedish', 'tamil', 'turkish', 'yiddish',
] as const;
export const KnowledgeLanguage = z.enum(KNOWLEDGE_LANGUAGES);
export type KnowledgeLanguage = z.output<typeof KnowledgeLanguage>;

/** Most passages one search returns, whatever `topK` asks. */
export const MAX_TOP_K = 50;
/** Longest query text searched (a turn's transcript beyond this adds nothing). */
export const MAX_QUERY_CHARS = 1000;

export interface KnowledgeBaseInfo {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  readonly description: string;
  readonly language: KnowledgeLanguage;
  readonly documentCount: number;
  readonly chunkCount: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface KnowledgeDocumentInfo {
  readonly id: string;
  readonly title?: string;
  readonly uri?: string;
  readonly contentType: 'text' | 'markdown' | 'html';
  readonly chunkCount: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface KnowledgeStore extends KnowledgeWriter {
  createKnowledgeBase(input: { readonly projectId: string; readonly name: string; readonly description?: string; readonly language?: KnowledgeLanguage }): Promise<KnowledgeBaseInfo>;
  getKnowledgeBase(id: string): Promise<KnowledgeBaseInfo | undefined>;
  /** Oldest first. */
  listKnowledgeBases(projectId: string): Promise<KnowledgeBaseInfo[]>;
  listDocuments(knowledgeBaseId: string): Promise<KnowledgeDocumentInfo[]>;
  /** The chunks of one document, in order (what was indexed). */
  documentChunks(knowledgeBaseId: string, documentId: string): Promise<DocumentChunk[]>;
  search(knowledgeBaseId: string, query: string, options?: SearchOptions): Promise<Passage[]>;
  /** The `KnowledgeBase` view of one knowledge base (what the engine searches). */
  knowledgeBase(id: string): KnowledgeBase;
}

type Row = Record<string, unknown>;

const SELECT_BASE = `
  SELECT kb.id, kb.project_id, kb.name, kb.description, kb.language::text AS language, kb.created_at, kb.updated_at,
         (SELECT count(*) FROM knowledge_documents d WHERE d.knowledge_base_id = kb.id) AS document_count,
         (SELECT coalesce(sum(d.chunk_count), 0) FROM knowledge_documents d WHERE d.knowledge_base_id = kb.id) AS chunk_count
    FROM knowledge_bases kb`;

function toBase(row: Row): KnowledgeBaseInfo {
  const language = KnowledgeLanguage.safeParse(row.language);
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    name: String(row.name),
    description: String(row.description ?? ''),
    language: language.success ? language.data : 'simple',
    documentCount: toNumber(row.document_count, 'document_count'),
    chunkCount: toNumber(row.chunk_count, 'chunk_count'),
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
  };
}

function toDocument(row: Row): KnowledgeDocumentInfo {
  const title = toStringOrUndefined(row.title);
  const uri = toStringOrUndefined(row.uri);
  return {
    id: String(row.id),
    ...(title !== undefined ? { title } : {}),
    ...(uri !== undefined ? { uri } : {}),
    contentType: String(row.content_type) as KnowledgeDocumentInfo['contentType'],
    chunkCount: toNumber(row.chunk_count, 'chunk_count'),
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
  };
}

function abortError(): Error {
  const error = new Error('the knowledge search was aborted');
  error.name = 'AbortError';
  return error;
}

/** A lexeme as a tsquery operand: quoted, so no character in it reads as tsquery syntax. */
const operand = (lexeme: string) => `'${lexeme.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** Rows ranked per tier at most: a tier that matches more is cut to its first rows in index order. */
const TIER_CANDIDATES = 2000;

/**
 * The tiers a search goes through until it has `topK` passages: chunks with every query word, then chunks with
 * any two of them, then chunks with any one. Strict tiers are selective (the GIN index finds few rows) and their
 * passages are the better ones, so the broad OR tier, which may match most of the index, rarely runs.
 */
function tiers(lexemes: readonly string[]): string[] {
  const ops = lexemes.slice(0, 12).map(operand);
  const out: string[] = [];
  if (ops.length >= 2) out.push(ops.join(' & '));
  if (ops.length >= 3) {
    const pairs: string[] = [];
    for (let i = 0; i < ops.length; i++) for (let j = i + 1; j < ops.length; j++) pairs.push(`(${ops[i]} & ${ops[j]})`);
    out.push(pairs.join(' | '));
  }
  out.push(ops.join(' | '));
  return out;
}

/** Longest a search statement may run: the SQL clients cannot cancel one, so an abandoned (aborted) search dies by this. */
export const SEARCH_STATEMENT_TIMEOUT_MS = 2000;

export interface KnowledgeStoreOptions {
  /** Per-statement deadline of search queries (default SEARCH_STATEMENT_TIMEOUT_MS; PGlite accepts it but does not enforce it). */
  readonly searchTimeoutMs?: number;
}

export function createKnowledgeStore(db: SqlClient, storeOptions: KnowledgeStoreOptions = {}): KnowledgeStore {
  const searchTimeoutMs = Math.max(1, Math.floor(storeOptions.searchTimeoutMs ?? SEARCH_STATEMENT_TIMEOUT_MS));

  async function search(knowledgeBaseId: string, query: string, options: SearchOptions = {}, signal?: AbortSignal): Promise<Passage[]> {
    if (!isUuid(knowledgeBaseId)) return [];
    const text = query.slice(0, MAX_QUERY_CHARS).trim();
    if (!text) return [];
    // SET LOCAL bounds every statement of the search and ends with its transaction (the connection goes back clean).
    return db.transaction(async (tx) => {
      await tx.query(`SET LOCAL statement_timeout = '${searchTimeoutMs}ms'`);
      return searchIn(tx, knowledgeBaseId, text, options, signal);
    });
  }

  async function searchIn(tx: SqlClient, knowledgeBaseId: string, text: string, options: SearchOptions, signal: AbortSignal | undefined): Promise<Passage[]> {
    const topK = Math.max(1, Math.min(MAX_TOP_K, Math.floor(options.topK ?? DEFAULT_TOP_K)));
    const documentIds = options.filter?.documentIds;
    // The query's lexemes in the knowledge base's configuration (stemmed, stop words dropped).
    const [row] = await tx.query<Row>(
      'SELECT array_to_json(tsvector_to_array(to_tsvector(kb.language, $2::text))) AS lexemes FROM knowledge_bases kb WHERE kb.id = $1::uuid',
      [knowledgeBaseId, text],
    );
    const lexemes = Array.isArray(row?.lexemes) ? (row.lexemes as unknown[]).map(String) : [];
    if (lexemes.length === 0) return [];
    const rankQuery = lexemes.slice(0, 12).map(operand).join(' | ');
    const passages: Passage[] = [];
    const seen = new Set<string>();
    for (const tier of tiers(lexemes)) {
      // An abandoned search starts no further statement.
      if (signal?.aborted) return passages;
      const rows = await tx.query<Row>(
        `WITH candidates AS (
           SELECT c.document_id, c.chunk, c.text, c.title, c.tsv
             FROM knowledge_chunks c
            WHERE c.knowledge_base_id = $1::uuid AND c.tsv @@ $2::text::tsquery
              AND ($5::text IS NULL OR c.document_id IN (SELECT jsonb_array_elements_text($5::text::jsonb)))
            LIMIT ${TIER_CANDIDATES}
         )
         SELECT c.document_id, c.chunk, c.text, c.title, d.uri,
                ts_rank('{0.4, 0.4, 1.0, 1.0}'::float4[], c.tsv, $3::text::tsquery, 32) AS score
           FROM candidates c
           JOIN knowledge_documents d ON d.knowledge_base_id = $1::uuid AND d.id = c.document_id
          ORDER BY score DESC, c.document_id, c.chunk
          LIMIT $4::int`,
        [knowledgeBaseId, tier, rankQuery, topK + passages.length, documentIds ? jsonParam(documentIds) : null],
      );
      for (const r of rows) {
        const key = `${String(r.document_id)}\u0000${String(r.chunk)}`;
        if (seen.has(key) || passages.length >= topK) continue;
        const score = toNumber(r.score, 'score');
        if (options.minScore !== undefined && score < options.minScore) continue;
        seen.add(key);
        const title = toStringOrUndefined(r.title);
        const uri = toStringOrUndefined(r.uri);
        passages.push({
          text: String(r.text),
          score,
          source: {
            documentId: String(r.document_id),
            chunk: toNumber(r.chunk, 'chunk'),
            ...(title !== undefined ? { title } : {}),
            ...(uri !== undefined ? { uri } : {}),
          },
        });
      }
      if (passages.length >= topK) break;
    }
    return passages;
  }

  const store: KnowledgeStore = {
    async createKnowledgeBase({ projectId, name, description = '', language = 'english' }) {
      const rows = await db.query<Row>(
        `WITH created AS (
           INSERT INTO knowledge_bases (id, project_id, name, description, language)
           VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::text::regconfig) RETURNING *
         )
         SELECT id, project_id, name, description, language::text AS language, created_at, updated_at, 0 AS document_count, 0 AS chunk_count FROM created`,
        [globalThis.crypto.randomUUID(), projectId, name, description, KnowledgeLanguage.parse(language)],
      );
      return toBase(onlyRow(rows, 'knowledge base insert'));
    },

    async getKnowledgeBase(id) {
      if (!isUuid(id)) return undefined;
      const [row] = await db.query<Row>(`${SELECT_BASE} WHERE kb.id = $1::uuid`, [id]);
      return row ? toBase(row) : undefined;
    },

    async listKnowledgeBases(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>(`${SELECT_BASE} WHERE kb.project_id = $1::uuid ORDER BY kb.created_at, kb.id`, [projectId]);
      return rows.map(toBase);
    },

    async listDocuments(knowledgeBaseId) {
      if (!isUuid(knowledgeBaseId)) return [];
      const rows = await db.query<Row>('SELECT * FROM knowledge_documents WHERE knowledge_base_id = $1::uuid ORDER BY id', [knowledgeBaseId]);
      return rows.map(toDocument);
    },

    async documentChunks(knowledgeBaseId, documentId) {
      if (!isUuid(knowledgeBaseId)) return [];
      const rows = await db.query<Row>('SELECT chunk, text FROM knowledge_chunks WHERE knowledge_base_id = $1::uuid AND document_id = $2::text ORDER BY chunk', [
        knowledgeBaseId,
        documentId,
      ]);
      return rows.map((r) => ({ index: toNumber(r.chunk, 'chunk'), text: String(r.text) }));
    },

    async replaceDocument(knowledgeBaseId, document: DocumentMeta, chunks) {
      if (!isUuid(knowledgeBaseId)) return false;
      return db.transaction(async (tx) => {
        // The document row first: its row lock orders concurrent ingestions of the same document.
        const upserted = await tx.query<Row>(
          `INSERT INTO knowledge_documents (knowledge_base_id, id, title, uri, content_type, chunk_count)
           SELECT kb.id, $2::text, $3::text, $4::text, $5::text, $6::int FROM knowledge_bases kb WHERE kb.id = $1::uuid
           ON CONFLICT (knowledge_base_id, id) DO UPDATE
             SET title = EXCLUDED.title, uri = EXCLUDED.uri, content_type = EXCLUDED.content_type,
                 chunk_count = EXCLUDED.chunk_count, updated_at = now()
           RETURNING id`,
          [knowledgeBaseId, document.id, document.title ?? null, document.uri ?? null, document.contentType, chunks.length],
        );
        if (upserted.length === 0) return false;
        await tx.query('DELETE FROM knowledge_chunks WHERE knowledge_base_id = $1::uuid AND document_id = $2::text', [knowledgeBaseId, document.id]);
        if (chunks.length > 0) {
          await tx.query(
            `INSERT INTO knowledge_chunks (knowledge_base_id, document_id, chunk, title, text, language)
             SELECT kb.id, $2::text, (e.ordinality - 1)::int, $3::text, e.value, kb.language
               FROM knowledge_bases kb, jsonb_array_elements_text($4::text::jsonb) WITH ORDINALITY AS e(value, ordinality)
              WHERE kb.id = $1::uuid`,
            [knowledgeBaseId, document.id, document.title ?? null, jsonParam(chunks.map((c) => c.text))],
          );
        }
        await tx.query('UPDATE knowledge_bases SET updated_at = now() WHERE id = $1::uuid', [knowledgeBaseId]);
        return true;
      });
    },

    async deleteDocument(knowledgeBaseId, documentId) {
      if (!isUuid(knowledgeBaseId)) return false;
      const rows = await db.query('DELETE FROM knowledge_documents WHERE knowledge_base_id = $1::uuid AND id = $2::text RETURNING id', [knowledgeBaseId, documentId]);
      return rows.length > 0;
    },

    search: (knowledgeBaseId, query, options) => search(knowledgeBaseId, query, options),

    knowledgeBase(id) {
      return {
        id,
        async search(query, options, signal) {
          if (signal.aborted) throw abortError();
          // The SQL clients cannot cancel a running statement: an abort settles this promise at once, the
          // statement's result is dropped, no further tier is queried, and statement_timeout ends a slow one.
          return new Promise<Passage[]>((resolve, reject) => {
            const onAbort = () => reject(abortError());
            signal.addEventListener('abort', onAbort, { once: true });
            search(id, query, options, signal).then(
              (passages) => {
                signal.removeEventListener('abort', onAbort);
                resolve(passages);
              },
              (error: unknown) => {
                signal.removeEventListener('abort', onAbort);
                reject(error instanceof Error ? error : new Error(String(error)));
              },
            );
          });
        },
      };
    },
  };
  return store;
}
