import type { KeyValueCache } from '../cache/key-value-cache';
import type { SqlClient } from '../store/sql';

/**
 * `GET /readiness/`: is every dependency this process needs reachable right now? Each dependency is one
 * check; all run in parallel, each bounded by `timeoutMs`, so a hanging dependency makes the answer "not
 * ready" in bounded time instead of hanging the probe. The HTTP route answers 200 when `ready`, else 503,
 * with the report as its body.
 *
 * A check resolves (ok), rejects (not ok, with the error's message) or resolves `skipped(reason)`: ok, and
 * says why nothing was checked. The search check is skipped when no search backend is configured: the
 * embedded default (the PostgreSQL full-text index) lives in the database, which has its own check.
 */
export type ReadinessCheck = (signal: AbortSignal) => Promise<void | { skipped: string }>;

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
  /** Set when the check had nothing to check (ok). */
  skipped?: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

export const READINESS_TIMEOUT_MS = 2_000;

export function skipped(reason: string): { skipped: string } {
  return { skipped: reason };
}

export async function checkReadiness(checks: Readonly<Record<string, ReadinessCheck>>, timeoutMs = READINESS_TIMEOUT_MS): Promise<ReadinessReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => runCheck(checks[name] as ReadinessCheck, timeoutMs)));
  const report: ReadinessReport = { ready: true, checks: {} };
  names.forEach((name, i) => {
    const result = results[i] as CheckResult;
    report.checks[name] = result;
    if (!result.ok) report.ready = false;
  });
  return report;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  const controller = new AbortController();
  const startedAt = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    // A check that throws synchronously counts as a failure too.
    const outcome = await Promise.race([Promise.resolve().then(() => check(controller.signal)), timedOut]);
    const latencyMs = Math.round(performance.now() - startedAt);
    if (outcome === 'timeout') {
      controller.abort(new Error(`timed out after ${timeoutMs} ms`));
      return { ok: false, latencyMs, error: `timed out after ${timeoutMs} ms` };
    }
    return outcome && typeof outcome === 'object' && typeof outcome.skipped === 'string'
      ? { ok: true, latencyMs, skipped: outcome.skipped }
      : { ok: true, latencyMs };
  } catch (error) {
    return { ok: false, latencyMs: Math.round(performance.now() - startedAt), error: describeError(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The error's message, with any credentials in URLs masked (the report may be served to a load balancer). */
function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message || error.name : String(error);
  return message.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1***@');
}

/** Database: `SELECT 1` through the store's SQL client. */
export function databaseCheck(sql: Pick<SqlClient, 'query'>): ReadinessCheck {
  return async () => {
    await sql.query('SELECT 1');
  };
}

/** Cache: a PING round trip (memory answers at once; Redis must be reachable). */
export function cacheCheck(cache: Pick<KeyValueCache, 'ping'>): ReadinessCheck {
  return () => cache.ping();
}

/**
 * Search: the injected probe of the search backend (e.g. OpenSearch cluster health), or, when none is
 * configured, skipped with "not configured" (ok: the embedded full-text index needs no server).
 */
export function searchCheck(probe?: (signal: AbortSignal) => Promise<void>): ReadinessCheck {
  if (!probe) return async () => skipped('not configured (the embedded full-text index lives in the database)');
  return (signal) => probe(signal);
}
