/**
 * Retrieval latency of the embedded knowledge index: 10 000 chunks ingested into PGlite (and PostgreSQL when
 * TEST_DATABASE_URL is set), then 200 spoken-style queries timed through the store's `search` (topK 4).
 * Prints a table and writes JSON to test/bench/results/. Step 5 of `npm run bench`; alone:
 * `npx tsx test/bench/retrieval.ts` (BENCH_KB_CHUNKS, BENCH_KB_QUERIES).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { loadMigrations } from '../../media-node/db/migrations';
import { createPgliteClient } from '../../media-node/db/pglite-client';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { migrate } from '../../shared/store/migrate';
import { createKnowledgeStore } from '../../shared/store/knowledge';
import type { SqlClient } from '../../shared/store/sql';

export interface RetrievalBench {
  readonly backend: 'pglite' | 'postgres';
  readonly chunks: number;
  readonly queries: number;
  readonly ingestSeconds: number;
  readonly hitsPerQuery: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number };
}

/** Deterministic pseudo-random numbers (mulberry32): every run searches the same corpus. */
function random(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ren', 'tos', 'vel', 'dra', 'pun', 'sil', 'mor', 'tek', 'an', 'qui', 'zen', 'bor', 'lia', 'fer', 'gon', 'har', 'ist'];

/** A vocabulary of 3000 made-up words, used with a Zipf-like distribution (a few common, most rare), like text. */
function corpus(rand: () => number) {
  const words = Array.from({ length: 3000 }, (_, i) => {
    let w = '';
    for (let n = i + 1; n > 0; n = Math.floor(n / SYLLABLES.length)) w += SYLLABLES[n % SYLLABLES.length];
    return w;
  });
  const word = () => words[Math.min(words.length - 1, Math.floor(Math.pow(rand(), 2.2) * words.length))]!;
  const sentence = () => {
    const n = 6 + Math.floor(rand() * 10);
    const s = Array.from({ length: n }, word).join(' ');
    return `${s[0]!.toUpperCase()}${s.slice(1)}.`;
  };
  const chunk = () => Array.from({ length: 5 + Math.floor(rand() * 4) }, sentence).join(' ');
  const query = () => `what about the ${Array.from({ length: 3 + Math.floor(rand() * 4) }, word).join(' ')}?`;
  return { chunk, query };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export async function benchRetrievalOn(backend: 'pglite' | 'postgres', db: SqlClient, chunkCount: number, queryCount: number): Promise<RetrievalBench> {
  await migrate(db, await loadMigrations());
  const store = createKnowledgeStore(db);
  const projectId = crypto.randomUUID();
  await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'bench']);
  const kb = (await store.createKnowledgeBase({ projectId, name: 'bench', language: 'english' })).id;
  const rand = random(7);
  const { chunk, query } = corpus(rand);
  const perDocument = 20;
  const ingestStarted = performance.now();
  for (let d = 0; d * perDocument < chunkCount; d++) {
    const n = Math.min(perDocument, chunkCount - d * perDocument);
    await store.replaceDocument(kb, { id: `doc-${d}.txt`, title: `Document ${d}`, contentType: 'text' }, Array.from({ length: n }, (_, index) => ({ index, text: chunk() })));
  }
  const ingestSeconds = (performance.now() - ingestStarted) / 1000;
  await db.exec('ANALYZE knowledge_chunks');
  const queries = Array.from({ length: queryCount }, query);
  for (const q of queries.slice(0, 10)) await store.search(kb, q); // warm-up
  const times: number[] = [];
  let hits = 0;
  for (const q of queries) {
    const started = performance.now();
    hits += (await store.search(kb, q, { topK: 4 })).length;
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    backend,
    chunks: chunkCount,
    queries: queryCount,
    ingestSeconds: round(ingestSeconds),
    hitsPerQuery: round(hits / queryCount),
    latencyMs: {
      p50: round(percentile(times, 50)),
      p90: round(percentile(times, 90)),
      p99: round(percentile(times, 99)),
      max: round(times.at(-1)!),
      mean: round(times.reduce((a, b) => a + b, 0) / times.length),
    },
  };
}

export async function benchRetrieval(log: (line: string) => void, chunkCount = 10_000, queryCount = 200): Promise<RetrievalBench[]> {
  const results: RetrievalBench[] = [];
  const pglite = await PGlite.create();
  const lite = await createPgliteClient({ db: pglite });
  try {
    results.push(await benchRetrievalOn('pglite', lite, chunkCount, queryCount));
  } finally {
    await lite.close();
    await pglite.close().catch(() => undefined);
  }
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const schema = `bench_kb_${crypto.randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const admin = createPostgresClient(url, { max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const db = createPostgresClient(url, { schema, max: 2 });
    try {
      results.push(await benchRetrievalOn('postgres', db, chunkCount, queryCount));
    } finally {
      await db.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    }
  } else log('TEST_DATABASE_URL not set: PostgreSQL skipped');
  log(`Knowledge search over ${chunkCount} chunks, ${queryCount} queries, topK 4 (ms)`);
  log('backend     ingest s   hits/q      p50      p90      p99      max');
  for (const r of results) {
    log(
      `${r.backend.padEnd(10)} ${r.ingestSeconds.toFixed(1).padStart(9)} ${r.hitsPerQuery.toFixed(2).padStart(8)} ${r.latencyMs.p50.toFixed(2).padStart(8)} ${r.latencyMs.p90.toFixed(2).padStart(8)} ${r.latencyMs.p99.toFixed(2).padStart(8)} ${r.latencyMs.max.toFixed(2).padStart(8)}`,
    );
  }
  log(`target: p99 within the 150 ms retrieval budget → ${results.every((r) => r.latencyMs.p99 <= 150) ? 'met' : 'MISSED'}`);
  return results;
}

if (process.argv[1]?.endsWith('retrieval.ts')) {
  const startedAt = new Date().toISOString();
  benchRetrieval((l) => console.log(l), Number(process.env.BENCH_KB_CHUNKS ?? 10_000), Number(process.env.BENCH_KB_QUERIES ?? 200))
    .then(async (retrieval) => {
      const dir = new URL('./results/', import.meta.url);
      await mkdir(dir, { recursive: true });
      const file = new URL(`retrieval-${startedAt.replace(/[:.]/g, '-')}.json`, dir);
      await writeFile(file, JSON.stringify({ startedAt, node: process.version, retrieval }, null, 2));
      console.log(`\nresults: ${file.pathname}`);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
