import { z } from 'zod';
import type { DocumentChunk } from '../contracts/knowledge';
import { chunkText, type ChunkOptions, toPlainText } from './chunking';

/**
 * Ingestion: a document (text, Markdown or HTML) → plain text → chunks → written to an index. Idempotent by
 * document id: ingesting a document again replaces its chunks (and its title/uri), whatever they were.
 * A document without an id gets one from its content (`sha256-<hex>`), so the same content sent twice is
 * still one document.
 */

/** Largest document accepted (characters of the source, before conversion). */
export const MAX_DOCUMENT_CHARS = 2_000_000;

export const DocumentInput = z.object({
  id: z
    .string()
    .min(1)
    .max(512)
    .refine((id) => ![...id].some((ch) => ch.charCodeAt(0) < 0x20), 'no control characters')
    .optional(),
  title: z.string().max(500).optional(),
  uri: z.string().max(2000).optional(),
  contentType: z.enum(['text', 'markdown', 'html']).default('text'),
  content: z.string().max(MAX_DOCUMENT_CHARS),
});
export type DocumentInput = z.input<typeof DocumentInput>;

/** What an index stores about a document besides its chunks. */
export interface DocumentMeta {
  readonly id: string;
  readonly title?: string;
  readonly uri?: string;
  readonly contentType: 'text' | 'markdown' | 'html';
}

/** The write side of a knowledge index (the SQL store, OpenSearch). */
export interface KnowledgeWriter {
  /**
   * Makes `chunks` the document's only chunks, atomically where the index allows it. Resolves false when the
   * knowledge base does not exist.
   */
  replaceDocument(knowledgeBaseId: string, document: DocumentMeta, chunks: readonly DocumentChunk[]): Promise<boolean>;
  /** False when there was no such document. */
  deleteDocument(knowledgeBaseId: string, documentId: string): Promise<boolean>;
}

export interface PreparedDocument {
  readonly document: DocumentMeta;
  readonly chunks: DocumentChunk[];
}

async function contentId(content: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(content));
  return `sha256-${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('').slice(0, 32)}`;
}

export async function prepareDocument(input: DocumentInput, options: ChunkOptions = {}): Promise<PreparedDocument> {
  const parsed = DocumentInput.parse(input);
  const text = toPlainText(parsed.content, parsed.contentType);
  const id = parsed.id ?? (await contentId(parsed.content));
  const document: DocumentMeta = {
    id,
    contentType: parsed.contentType,
    ...(parsed.title ? { title: parsed.title } : {}),
    ...(parsed.uri ? { uri: parsed.uri } : {}),
  };
  return { document, chunks: chunkText(text, options) };
}

export interface IngestResult {
  readonly documentId: string;
  readonly chunks: number;
  /** Characters of plain text indexed. */
  readonly chars: number;
}

/** Prepare and write one document; `undefined` when the knowledge base does not exist. */
export async function ingestDocument(
  writer: KnowledgeWriter,
  knowledgeBaseId: string,
  input: DocumentInput,
  options: ChunkOptions = {},
): Promise<IngestResult | undefined> {
  const { document, chunks } = await prepareDocument(input, options);
  if (!(await writer.replaceDocument(knowledgeBaseId, document, chunks))) return undefined;
  return { documentId: document.id, chunks: chunks.length, chars: chunks.reduce((n, c) => n + c.text.length, 0) };
}

/**
 * Several indexes written as one (the SQL store as the record, OpenSearch as the search index): the first
 * decides whether the knowledge base exists; the others follow it.
 */
export function combineWriters(primary: KnowledgeWriter, ...mirrors: KnowledgeWriter[]): KnowledgeWriter {
  return {
    async replaceDocument(kb, document, chunks) {
      if (!(await primary.replaceDocument(kb, document, chunks))) return false;
      for (const mirror of mirrors) await mirror.replaceDocument(kb, document, chunks);
      return true;
    },
    async deleteDocument(kb, documentId) {
      const deleted = await primary.deleteDocument(kb, documentId);
      for (const mirror of mirrors) await mirror.deleteDocument(kb, documentId);
      return deleted;
    },
  };
}
