import { describe, expect, it } from 'vitest';
import { MemoryCache } from '../../shared/cache/memory';
import { cacheCheck, checkReadiness, databaseCheck, searchCheck } from '../../shared/health/readiness';
import type { SqlClient } from '../../shared/store/sql';

/** A SqlClient double that records its queries and answers (or fails) as told. */
function fakeSql(answer: (text: string) => Promise<unknown[]>): SqlClient & { queries: string[] } {
  const queries: string[] = [];
  const client: SqlClient & { queries: string[] } = {
    queries,
    async query<Row extends object>(text: string) {
      queries.push(text);
      return (await answer(text)) as Row[];
    },
    transaction: (fn) => fn(client),
    exec: async () => {},
    close: async () => {},
  };
  return client;
}

describe('checkReadiness', () => {
  it('ready when every dependency answers: database runs SELECT 1, cache pings, search is skipped when not configured', async () => {
    const sql = fakeSql(async () => [{ '?column?': 1 }]);
    const report = await checkReadiness({ database: databaseCheck(sql), cache: cacheCheck(new MemoryCache()), search: searchCheck() }, 1_000);
    expect(sql.queries).toEqual(['SELECT 1']);
    expect(report.ready).toBe(true);
    expect(report.checks.database).toEqual({ ok: true, latencyMs: expect.any(Number) });
    expect(report.checks.cache).toEqual({ ok: true, latencyMs: expect.any(Number) });
    expect(report.checks.search).toEqual({ ok: true, latencyMs: expect.any(Number), skipped: expect.stringMatching(/^not configured/) });
  });

  it('a failing dependency makes it not ready, with the error (credentials masked), the others still reported', async () => {
    const sql = fakeSql(async () => {
      throw new Error('DATABASE_UNAVAILABLE: connect ECONNREFUSED for postgres://app:hunter2@db.internal:5432/voice');
    });
    const report = await checkReadiness({ database: databaseCheck(sql), cache: cacheCheck(new MemoryCache()) }, 1_000);
    expect(report.ready).toBe(false);
    expect(report.checks.database).toEqual({
      ok: false,
      latencyMs: expect.any(Number),
      error: 'DATABASE_UNAVAILABLE: connect ECONNREFUSED for postgres://***@db.internal:5432/voice',
    });
    expect(report.checks.cache?.ok).toBe(true);
  });

  it('a hanging dependency times out: the report arrives in bounded time and the check is told to stop', async () => {
    let aborted: AbortSignal | undefined;
    const startedAt = performance.now();
    const report = await checkReadiness(
      {
        search: searchCheck((signal) => {
          aborted = signal;
          return new Promise<void>(() => {}); // never settles
        }),
        cache: cacheCheck(new MemoryCache()),
      },
      150,
    );
    const elapsedMs = performance.now() - startedAt;
    expect(elapsedMs).toBeGreaterThanOrEqual(140);
    expect(elapsedMs).toBeLessThan(1_000);
    expect(report.ready).toBe(false);
    expect(report.checks.search).toEqual({ ok: false, latencyMs: expect.any(Number), error: 'timed out after 150 ms' });
    expect(report.checks.search?.latencyMs).toBeGreaterThanOrEqual(140);
    expect(report.checks.cache?.ok).toBe(true);
    expect(aborted?.aborted).toBe(true);
  });

  it('checks run in parallel: three slow ones take as long as the slowest, not the sum', async () => {
    const slow = (ms: number) => () => new Promise<void>((resolve) => setTimeout(resolve, ms));
    const startedAt = performance.now();
    const report = await checkReadiness({ a: slow(200), b: slow(200), c: slow(200) }, 1_000);
    expect(report.ready).toBe(true);
    expect(performance.now() - startedAt).toBeLessThan(500);
    expect(report.checks.a?.latencyMs).toBeGreaterThanOrEqual(190);
  });

  it('a check that throws synchronously or rejects with a non-Error still yields a report', async () => {
    const report = await checkReadiness(
      {
        sync: () => {
          throw new TypeError('search client not constructed');
        },
        odd: () => Promise.reject('plain string'),
        failingProbe: searchCheck(async () => {
          throw new Error('OpenSearch cluster health is red');
        }),
      },
      500,
    );
    expect(report.ready).toBe(false);
    expect(report.checks.sync?.error).toBe('search client not constructed');
    expect(report.checks.odd?.error).toBe('plain string');
    expect(report.checks.failingProbe).toMatchObject({ ok: false, error: 'OpenSearch cluster health is red' });
  });

  it('no dependencies: ready', async () => {
    expect(await checkReadiness({}, 100)).toEqual({ ready: true, checks: {} });
  });
});
