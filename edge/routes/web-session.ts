import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { normaliseOrigin, PUBLISHABLE_KEY_PREFIX } from '../../shared/store/projects';
import type { AppEnv, AppStores } from '../app';
import { bearerKey, projectOf } from '../auth';
import { ApiError, notFound } from '../errors';
import { readJson } from '../validation';
import { createCallRecords } from './call-records';
import { CreateCallBody } from './calls';
import type { CallHooks } from './twilio';

/**
 * Browser sessions: `POST /v1/talk/web/session` (mounted at `/v1/talk/web`)
 *
 *   { "assistantId": "…", "assistantVersion": 2, "variables": { "name": "Ada" } }
 *   → 201 { "contextId", "conversationId", "url": "wss://…/v1/talk/web/ctx/{contextId}", "expiresAt": "2026-…Z" }
 *
 * The browser then opens `url` and speaks talk_api protobuf frames (protos/talk_api.proto). The path lies under
 * `/v1/talk/`, which the app's key middleware leaves alone, so the route authenticates itself with either
 * - a publishable key (`Authorization: Bearer vr_pk_…`) whose allowed origins include the request's `Origin`:
 *   no Origin or another origin → 403 `ORIGIN_NOT_ALLOWED`; unknown or revoked key → 401; or
 * - a secret key (`vr_sk_…`, or the admin key with `X-Project-Id`), for a backend that hands the URL on.
 * The assistant must belong to the key's project (404 `ASSISTANT_NOT_FOUND` otherwise, so a public key cannot
 * probe other projects), be callable (422 `ASSISTANT_NOT_CALLABLE` with the reason) and be admitted (503
 * `AT_CAPACITY`). The session is an inbound call on channel `web`: a conversation (`queued`) and a pending
 * call context holding the variables, claimable once until `expiresAt`.
 *
 * CORS: the preflight carries no key, so it is allowed for any http(s) origin (POST with Authorization and
 * Content-Type); the real request is the one checked, and only a publishable key's allowed origin gets
 * `Access-Control-Allow-Origin` (on errors too, so the widget can read them). Secret keys never do: they
 * belong on servers. Every answer says `Vary: Origin`.
 */

/**
 * Why 2 minutes and not the store's 10: a browser opens the URL right after asking for it, and until the
 * context is claimed its id is all it takes to join the call, so a leaked URL should go stale quickly.
 */
export const DEFAULT_WEB_SESSION_TTL_MS = 2 * 60_000;
const PREFLIGHT_MAX_AGE_S = 600;

export const WebSessionBody = z.strictObject({
  assistantId: z.string().min(1).max(100),
  /** Pin a version; default the latest. */
  assistantVersion: z.number().int().min(1).max(2_147_483_647).optional(),
  /** `{{name}}` values for the prompt and greeting: the same names and bounds as `POST /v1/calls`. */
  variables: CreateCallBody.shape.variables,
});
export type WebSessionBody = z.output<typeof WebSessionBody>;

export interface WebSessionRouteDeps extends Pick<CallHooks, 'checkCallable' | 'admitCall'> {
  readonly stores: Pick<AppStores, 'projects' | 'assistants' | 'conversations' | 'callContexts'>;
  /**
   * The ws(s) origin browsers connect to: on a media node its own public URL (https → wss); on the edge the
   * edge's PUBLIC_BASE_URL (https → wss), which hands `/v1/talk/web/ctx/…` to the call's Durable Object.
   */
  webSocketBaseUrl(): string;
  /** How long the session waits for its socket; default DEFAULT_WEB_SESSION_TTL_MS. */
  readonly contextTtlMs?: number;
}

/** The browser media WebSocket path of a call context. */
export const webMediaPath = (contextId: string) => `/v1/talk/web/ctx/${contextId}`;

/** Who asked for the session. */
type SessionCaller =
  | { readonly kind: 'publishable'; readonly projectId: string; readonly keyId: string; readonly origin: string }
  | { readonly kind: 'secret'; readonly projectId: string; readonly keyId: string };

const unauthenticated = (message: string) =>
  new ApiError(401, 'UNAUTHENTICATED', message, {}, { 'WWW-Authenticate': 'Bearer realm="voice-runtime"' });

export function webSessionRoutes(deps: WebSessionRouteDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;
  const ttlMs = deps.contextTtlMs ?? DEFAULT_WEB_SESSION_TTL_MS;

  async function authorise(c: Context<AppEnv>): Promise<SessionCaller> {
    const header = c.req.header('authorization');
    if (!header) throw unauthenticated('send "Authorization: Bearer <key>": a publishable key (vr_pk_…) from a browser, or a secret API key from a server');
    const key = bearerKey(header);
    if (!key) throw unauthenticated('the Authorization header must read "Bearer <key>"');

    if (key.startsWith(PUBLISHABLE_KEY_PREFIX)) {
      const rawOrigin = c.req.header('origin');
      const check = await stores.projects.checkOrigin(key, rawOrigin);
      if (!check.ok) {
        if (check.reason !== 'origin-not-allowed') throw unauthenticated('the publishable key is unknown or revoked');
        const origin = rawOrigin === undefined ? undefined : normaliseOrigin(rawOrigin);
        throw new ApiError(
          403,
          'ORIGIN_NOT_ALLOWED',
          origin
            ? `this publishable key may not be used from ${origin}: add the origin to the key's allowedOrigins`
            : 'publishable keys start sessions from web pages only: the request carries no http(s) Origin header',
        );
      }
      // Allowed, so the header is a valid origin; it is echoed as the browser sent it (browsers compare exactly).
      return { kind: 'publishable', projectId: check.projectId, keyId: check.keyId, origin: rawOrigin! };
    }

    const principal = await stores.projects.authenticate(key);
    if (!principal) throw unauthenticated('the API key is unknown or revoked');
    c.set('principal', principal);
    return { kind: 'secret', projectId: await projectOf(c, stores.projects), keyId: principal.keyId };
  }

  routes.options('/session', (c) => {
    const origin = c.req.header('origin');
    c.header('Vary', 'Origin');
    if (origin !== undefined && normaliseOrigin(origin) !== undefined) {
      c.header('Access-Control-Allow-Origin', origin);
      c.header('Access-Control-Allow-Methods', 'POST');
      c.header('Access-Control-Allow-Headers', 'Authorization, Content-Type');
      c.header('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
    }
    return c.body(null, 204);
  });

  routes.post('/session', async (c) => {
    c.header('Vary', 'Origin');
    const caller = await authorise(c);
    if (caller.kind === 'publishable') {
      // Set before anything else can fail, so the page can read the error bodies that follow.
      c.header('Access-Control-Allow-Origin', caller.origin);
      c.header('Access-Control-Expose-Headers', 'X-Request-Id');
    }
    const body = await readJson(c, WebSessionBody);

    const assistant = await stores.assistants.get(body.assistantId, body.assistantVersion);
    // Another project's assistant reads as absent: a publishable key is public and must not probe ids.
    if (!assistant || assistant.projectId !== caller.projectId || assistant.deletedAt) {
      const which = body.assistantVersion === undefined ? `assistant ${body.assistantId}` : `version ${body.assistantVersion} of assistant ${body.assistantId}`;
      throw notFound('ASSISTANT_NOT_FOUND', `${which} does not exist in this key's project`);
    }
    const pinned = { projectId: caller.projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) throw new ApiError(422, 'ASSISTANT_NOT_CALLABLE', `assistant ${assistant.id} cannot take calls right now: ${unusable}`);
    if (deps.admitCall && !(await deps.admitCall(caller.projectId))) {
      throw new ApiError(503, 'AT_CAPACITY', 'the project or this deployment is at its concurrent-call limit (or draining); retry shortly', {}, { 'Retry-After': '5' });
    }

    const { conversation, context } = await createCallRecords(stores, {
      ...pinned,
      channel: 'web',
      direction: 'inbound',
      callStatus: 'queued',
      metadata: caller.kind === 'publishable' ? { auth: 'publishable-key', keyId: caller.keyId, origin: caller.origin } : { auth: 'api-key', keyId: caller.keyId },
      ...(body.variables ? { variables: body.variables } : {}),
      ttlMs,
    });

    // The URL admits whoever holds it until the context is claimed: no caching anywhere on the way.
    c.header('Cache-Control', 'no-store');
    return c.json(
      {
        contextId: context.id,
        conversationId: conversation.id,
        url: `${deps.webSocketBaseUrl().replace(/\/+$/, '')}${webMediaPath(context.id)}`,
        expiresAt: context.expiresAt.toISOString(),
      },
      201,
    );
  });

  return routes;
}
