import { Hono } from 'hono';
import { z } from 'zod';
import {
  createReplayGuard,
  INTERNAL_SIGNATURE_HEADER,
  INTERNAL_TIMESTAMP_HEADER,
  PREWARM_PATH,
  verifyInternalRequest,
  type InternalAuthFailure,
  type ReplayGuard,
} from '../shared/cluster/internal-auth';
import type { AppEnv } from '../edge/app';
import { ApiError, silentLogger, type AppLogger } from '../edge/errors';
import { readBodyText, zodIssues } from '../edge/validation';

/**
 * Node-to-node routes, mounted at `/internal` on the media node (outside `/v1/`, so no API key: the
 * HMAC signature of shared/cluster/internal-auth.ts with INTERNAL_SECRET is the authentication).
 *
 *   POST /internal/prewarm   { "contextId": "<call context uuid>" }  → 202 { "accepted": true }
 *
 * The edge sends it right after answering a carrier's webhook with this node's media URL, so the node
 * prepares the call (providers, greeting, STT socket) while the phone rings. Missing, malformed, stale,
 * wrong or replayed signature → 401 (before the body is even parsed); a body that is not
 * `{ contextId: uuid }` → 400. An unknown context is accepted and ignored by the pre-warm itself.
 */

export interface InternalRouteDeps {
  /** INTERNAL_SECRET (at least 32 characters), shared with the edge. */
  readonly internalSecret: string;
  /** Starts warming up the call; must not throw (failures are the pre-warm's to log). */
  prewarm(contextId: string): void;
  readonly log?: AppLogger;
  /** Epoch ms; default Date.now (signatures carry the sender's wall clock). */
  readonly clock?: { now(): number };
  /** Default: an in-memory guard per mounted module (each node refuses a signature it has already seen). */
  readonly replayGuard?: ReplayGuard;
}

/** A pre-warm body is ~60 bytes; anything much larger is not one. */
const MAX_INTERNAL_BODY_BYTES = 4 * 1024;

const PrewarmBody = z.strictObject({
  contextId: z.uuid('contextId must be a call context id (a UUID)'),
});

const FAILURE_MESSAGES: Record<InternalAuthFailure, string> = {
  missing: `the request must be signed: send ${INTERNAL_TIMESTAMP_HEADER} and ${INTERNAL_SIGNATURE_HEADER}`,
  malformed: `${INTERNAL_TIMESTAMP_HEADER} must be epoch milliseconds and ${INTERNAL_SIGNATURE_HEADER} "v1=<hex HMAC-SHA256>"`,
  stale: `${INTERNAL_TIMESTAMP_HEADER} is more than 60 s away from this node's clock (check NTP on both ends)`,
  'bad-signature': 'the signature does not match: the sender and this node must share the same INTERNAL_SECRET',
  replayed: 'this signed request was already received; sign every request anew',
};

export function internalRoutes(deps: InternalRouteDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const log = deps.log ?? silentLogger;
  const now = () => (deps.clock ? deps.clock.now() : Date.now());
  const replayGuard = deps.replayGuard ?? createReplayGuard();

  routes.post('/prewarm', async (c) => {
    const body = await readBodyText(c, MAX_INTERNAL_BODY_BYTES);
    const url = new URL(c.req.url);
    const verdict = await verifyInternalRequest(
      deps.internalSecret,
      // The path this route answers, whatever host or proxy prefix the sender addressed.
      { method: c.req.method, path: `${PREWARM_PATH}${url.search}`, body },
      { timestamp: c.req.header(INTERNAL_TIMESTAMP_HEADER), signature: c.req.header(INTERNAL_SIGNATURE_HEADER), nowMs: now(), replayGuard },
    );
    if (!verdict.ok) {
      log.warn('internal request refused', { path: PREWARM_PATH, reason: verdict.reason });
      throw new ApiError(401, 'INTERNAL_AUTH_FAILED', FAILURE_MESSAGES[verdict.reason], { reason: verdict.reason });
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new ApiError(400, 'BAD_JSON', 'the body must be JSON: { "contextId": "<uuid>" }');
    }
    const parsed = PrewarmBody.safeParse(json);
    if (!parsed.success) throw new ApiError(400, 'VALIDATION_FAILED', 'the body must be { "contextId": "<uuid>" }', { issues: zodIssues(parsed.error) });
    deps.prewarm(parsed.data.contextId);
    return c.json({ accepted: true }, 202);
  });

  return routes;
}
