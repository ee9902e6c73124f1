/**
 * Knowledge retrieval (RAG): a knowledge base answers a query with the passages most relevant to it.
 * Implementations: the embedded full-text index on PostgreSQL/PGlite (shared/store/knowledge.ts) and
 * OpenSearch (media-node/knowledge/opensearch.ts). The engine asks the assistant's knowledge bases on every
 * user turn (shared/engine/retrieval.ts) within a latency budget.
 */

export interface PassageSource {
  /** The document's id as given at ingestion (a file's relative path for `kb:ingest`). */
  readonly documentId: string;
  readonly title?: string;
  readonly uri?: string;
  /** Index of the chunk within its document, from 0. */
  readonly chunk: number;
}

export interface Passage {
  readonly text: string;
  /** Relevance as the implementation ranks it (higher is better); comparable within one knowledge base only. */
  readonly score: number;
  readonly source: PassageSource;
}

export interface SearchOptions {
  /** Most passages returned; default 4. */
  readonly topK?: number;
  /** Passages scoring below this are left out. */
  readonly minScore?: number;
  /** Restrict to these documents (by id). */
  readonly filter?: { readonly documentIds?: readonly string[] };
}

export const DEFAULT_TOP_K = 4;

export interface KnowledgeBase {
  readonly id: string;
  /** Best passages first; stops promptly (rejecting with an AbortError) when `signal` aborts. */
  search(query: string, options: SearchOptions, signal: AbortSignal): Promise<Passage[]>;
}

/** A document as ingested: its content is already plain text (shared/knowledge/chunking.ts converts). */
export interface KnowledgeDocument {
  readonly id: string;
  readonly title?: string;
  readonly uri?: string;
  readonly contentType: 'text' | 'markdown' | 'html';
  readonly content: string;
}

export interface DocumentChunk {
  readonly index: number;
  readonly text: string;
}
