import { Hono } from 'hono';
import type { ReadinessReport } from '../../shared/health/readiness';
import type { AppDeps, AppEnv } from '../app';
import { silentLogger } from '../errors';

/**
 * Probes. `GET /healthz/`: the process answers (liveness; touches nothing). `GET /readiness/`: every
 * dependency reachable now; 200 when ready, else 503. The body is the readiness report plus `failing`, the
 * names of the checks that failed (`["database"]`), so a probe log says what is down.
 */
export function healthRoutes(deps: AppDeps): Hono<AppEnv> {
  const log = deps.log ?? silentLogger;
  const routes = new Hono<AppEnv>({ strict: false });

  routes.get('/healthz', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json({ status: 'ok' });
  });

  routes.get('/readiness', async (c) => {
    let report: ReadinessReport;
    try {
      report = await deps.readiness();
    } catch (error) {
      // checkReadiness never throws; a host's own readiness function might.
      log.error('readiness checks could not run', { error: error instanceof Error ? error.message : String(error) });
      report = { ready: false, checks: { readiness: { ok: false, latencyMs: 0, error: 'the readiness checks could not run; see the server log' } } };
    }
    const failing = Object.entries(report.checks)
      .filter(([, result]) => !result.ok)
      .map(([name]) => name);
    const ready = report.ready && failing.length === 0;
    c.header('Cache-Control', 'no-store');
    return c.json({ ...report, ready, failing }, ready ? 200 : 503);
  });

  return routes;
}
