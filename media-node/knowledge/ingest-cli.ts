/**
 * `npm run kb:ingest -- <folder> --kb <knowledge-base-id> [--max-chars 800] [--overlap 160]`
 *
 * Ingests every .txt, .md/.markdown and .html/.htm file under <folder> (recursively; hidden entries skipped)
 * into a knowledge base of DATABASE_URL, or of the embedded PGlite in DATA_DIR. The document id is the file's
 * path relative to <folder> (with "/"), so running it again replaces each file's chunks instead of adding
 * copies. With OPENSEARCH_URL set, the chunks are also written to OpenSearch.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { combineWriters, ingestDocument, MAX_DOCUMENT_CHARS, type KnowledgeWriter } from '../../shared/knowledge/ingest';
import { createKnowledgeStore } from '../../shared/store/knowledge';
import { parseNodeEnv } from '../config/env';
import { openDatabase } from '../db/open';
import { createOpenSearchKnowledge } from './opensearch';

const TYPES: Record<string, 'text' | 'markdown' | 'html'> = { '.txt': 'text', '.md': 'markdown', '.markdown': 'markdown', '.html': 'html', '.htm': 'html' };

export interface FolderIngestResult {
  readonly documents: { readonly id: string; readonly chunks: number }[];
  readonly skipped: { readonly path: string; readonly reason: string }[];
}

async function* files(dir: string): AsyncGenerator<string> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

function titleOf(content: string, type: 'text' | 'markdown' | 'html', fallback: string): string {
  const found = type === 'markdown' ? /^\s{0,3}#\s+(.+?)\s*#*\s*$/m.exec(content)?.[1] : type === 'html' ? /<title[^>]*>([^<]+)<\/title>/i.exec(content)?.[1] : undefined;
  return (found ?? fallback).trim().slice(0, 500);
}

export async function ingestFolder(writer: KnowledgeWriter, knowledgeBaseId: string, folder: string, options: { maxChars?: number; overlapChars?: number; log?: (line: string) => void } = {}): Promise<FolderIngestResult> {
  const log = options.log ?? (() => undefined);
  const documents: { id: string; chunks: number }[] = [];
  const skipped: { path: string; reason: string }[] = [];
  for await (const path of files(folder)) {
    const id = relative(folder, path).split(sep).join('/');
    const type = TYPES[extname(path).toLowerCase()];
    if (!type) {
      skipped.push({ path: id, reason: 'not .txt, .md or .html' });
      continue;
    }
    if ((await stat(path)).size > MAX_DOCUMENT_CHARS * 4) {
      skipped.push({ path: id, reason: 'larger than a document may be' });
      continue;
    }
    const content = await readFile(path, 'utf8');
    if (content.length > MAX_DOCUMENT_CHARS) {
      skipped.push({ path: id, reason: `more than ${MAX_DOCUMENT_CHARS} characters` });
      continue;
    }
    const result = await ingestDocument(writer, knowledgeBaseId, { id, title: titleOf(content, type, id), contentType: type, content }, options);
    if (!result) throw new Error(`KNOWLEDGE_BASE_NOT_FOUND: knowledge base ${knowledgeBaseId} does not exist (create one with POST /v1/knowledge-bases)`);
    documents.push({ id, chunks: result.chunks });
    log(`${id}: ${result.chunks} chunk(s)`);
  }
  return { documents, skipped };
}

function parseArgs(argv: readonly string[]): { folder: string; kb: string; maxChars?: number; overlapChars?: number } {
  let folder: string | undefined;
  let kb: string | undefined;
  let maxChars: number | undefined;
  let overlapChars: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--kb') kb = value();
    else if (arg === '--max-chars') maxChars = Number(value());
    else if (arg === '--overlap') overlapChars = Number(value());
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else folder = arg;
  }
  if (!folder || !kb) throw new Error('usage: npm run kb:ingest -- <folder> --kb <knowledge-base-id> [--max-chars 800] [--overlap 160]');
  for (const [name, n] of [['--max-chars', maxChars], ['--overlap', overlapChars]] as const) {
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new Error(`${name} must be a whole number`);
  }
  return { folder, kb, maxChars, overlapChars };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = parseNodeEnv(process.env);
  const { db, kind } = await openDatabase(env);
  const store = createKnowledgeStore(db);
  const openSearchUrl = process.env.OPENSEARCH_URL;
  const mirror = openSearchUrl ? createOpenSearchKnowledge({ url: openSearchUrl }) : undefined;
  try {
    if (!(await store.getKnowledgeBase(args.kb))) throw new Error(`KNOWLEDGE_BASE_NOT_FOUND: knowledge base ${args.kb} does not exist in the ${kind} database (create one with POST /v1/knowledge-bases)`);
    const writer = mirror ? combineWriters(store, mirror) : store;
    const result = await ingestFolder(writer, args.kb, args.folder, { maxChars: args.maxChars, overlapChars: args.overlapChars, log: (l) => console.log(l) });
    for (const s of result.skipped) console.log(`skipped ${s.path}: ${s.reason}`);
    const chunks = result.documents.reduce((n, d) => n + d.chunks, 0);
    console.log(`${kind}${mirror ? ' + OpenSearch' : ''}: ${result.documents.length} document(s), ${chunks} chunk(s) in knowledge base ${args.kb}`);
  } finally {
    await mirror?.close();
    await db.close();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split(sep).join('/'))) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
