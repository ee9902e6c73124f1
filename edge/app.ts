import { Hono } from 'hono';
import type { Clock } from '../shared/contracts/clock';
import { ConfigError } from '../shared/contracts/errors';
import type { ReadinessReport } from '../shared/health/readiness';
import type { AssistantStore } from '../shared/store/assistants';
import type { CallContextStore } from '../shared/store/call-contexts';
import type { ConversationStore } from '../shared/store/conversations';
import type { CredentialStore } from '../shared/store/credentials';
import type { KnowledgeWriter } from '../shared/knowledge/ingest';
import type { KnowledgeStore } from '../shared/store/knowledge';
import type { Principal, ProjectStore } from '../shared/store/projects';
import type { SipRoutingStore } from '../shared/store/sip-routing';
import { authenticate } from './auth';
import { errorResponse, handleError, silentLogger, type AppLogger } from './errors';
import { assistantRoutes } from './routes/assistants';
import { conversationRoutes } from './routes/conversations';
import { credentialRoutes } from './routes/credentials';
import { healthRoutes } from './routes/health';
import { knowledgeRoutes } from './routes/knowledge';
import { projectRoutes } from './routes/projects';
import { sipRoutes } from './routes/sip';

/**
 * The HTTP app: Hono on web-standard Request/Response only, so the same app runs in the Cloudflare Worker
 * and on the media node. Nothing here reads the environment: whatever it needs arrives in `deps`.
 *
 *   GET  /healthz/                       liveness (200 {status:"ok"})
 *   GET  /readiness/                     200 or 503 with the readiness report (`failing` names the parts down)
 *   admin key:
 *   GET  /v1/projects                    projects
 *   POST /v1/projects                    {name} → the project and its first API key (shown once)
 *   GET  /v1/projects/:id/keys           key metadata (prefix, dates; never the key or its hash)
 *   POST /v1/projects/:id/keys           {name} → a new API key (shown once)
 *   POST /v1/projects/:id/publishable-keys {allowedOrigins} → a publishable key (public, for the widget)
 *   project key (or admin key + X-Project-Id):
 *   POST /v1/assistants                  the configuration → version 1
 *   GET  /v1/assistants                  live assistants at their latest version
 *   GET  /v1/assistants/:id[?version=n]  latest, or a pinned version (also of a deleted assistant)
 *   GET  /v1/assistants/:id/versions     version numbers and dates
 *   PUT  /v1/assistants/:id              the configuration (+ optional `expectedVersion`) → the next version
 *   DELETE /v1/assistants/:id            soft delete (pinned versions stay readable for running calls)
 *   PUT  /v1/credentials/:name           {provider, isDefault?, ...secret fields} → metadata (never the secret)
 *   GET  /v1/credentials[/:name]         metadata
 *   DELETE /v1/credentials/:name
 *   GET  /v1/conversations/:id           conversation, messages (text, heardText, interrupted), turn metrics, call events
 *   GET  /v1/conversations?assistantId=&limit=&before=   newest first; `nextBefore` pages on
 *   POST /v1/knowledge-bases, GET /v1/knowledge-bases[/:id], POST /v1/knowledge-bases/:id/documents,
 *   DELETE /v1/knowledge-bases/:id/documents/:docId     (edge/routes/knowledge.ts)
 *   PUT|GET /v1/assistants/:id/numbers, PUT|GET|DELETE /v1/sip/trunks[/:name]   (edge/routes/sip.ts)
 *
 * Errors: `{ "error": { "code", "message", ... } }` (edge/errors.ts). Auth: edge/auth.ts. Call creation and
 * the telephony webhooks (`POST /v1/calls`, `/v1/talk/...`) come in as `extraRoutes`.
 */

export interface AppStores {
  readonly projects: ProjectStore;
  readonly assistants: AssistantStore;
  readonly conversations: ConversationStore;
  readonly callContexts: CallContextStore;
  readonly credentials: CredentialStore;
  /** Knowledge bases (`/v1/knowledge-bases`, edge/routes/knowledge.ts); absent: those routes are not mounted. */
  readonly knowledge?: KnowledgeStore;
  /** SIP numbers and trunks (edge/routes/sip.ts); absent: those routes are not mounted. */
  readonly sip?: SipRoutingStore;
}

export interface AppDeps {
  readonly stores: AppStores;
  /** Database, cache, search (and whatever else this host depends on), checked now. */
  readiness(): Promise<ReadinessReport>;
  /** This deployment's public origin, e.g. `https://voice.example.com` (PUBLIC_BASE_URL). */
  readonly publicBaseUrl: string;
  /** For request timings; default: performance.now(). */
  readonly clock?: Pick<Clock, 'now'>;
  readonly log?: AppLogger;
  /** A search index that mirrors ingested documents besides the store (OpenSearch when OPENSEARCH_URL is set). */
  readonly knowledgeIndex?: KnowledgeWriter;
}

/** Hono's per-request variables in this app. */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** Set by the auth middleware on every authenticated `/v1/` request. */
    principal: Principal | undefined;
    /** Set by `projectOf` once resolved. */
    projectId: string | undefined;
  };
}

export type AppRoutes = Hono<AppEnv>;

/**
 * Routes mounted by the host besides the built-in ones (call creation, telephony webhooks). Mounted under
 * `path` with `app.route`, after the auth middleware: under `/v1/` they need an API key (helpers in
 * edge/auth.ts: `principalOf`, `projectOf`, `assertSameProject`), except under `/v1/talk/`. Errors they throw
 * (ApiError, ConfigError, StoreError, ...) get the common error shape.
 */
export interface RouteModule {
  readonly path: string;
  readonly routes: AppRoutes;
}

export interface AppOptions {
  readonly extraRoutes?: readonly RouteModule[];
}

/** Paths probed every few seconds: not worth a log line each while they succeed. */
const QUIET_PATHS = /^\/(healthz|readiness)\/?$/;

export function createApp(deps: AppDeps, options: AppOptions = {}): Hono<AppEnv> {
  const log = deps.log ?? silentLogger;
  const now = deps.clock ? () => deps.clock!.now() : () => performance.now();
  const resolved: AppDeps = { ...deps, publicBaseUrl: normalisePublicBaseUrl(deps.publicBaseUrl), log };

  // strict: false: every route answers with and without a trailing slash (`/healthz/` and `/healthz`).
  const app = new Hono<AppEnv>({ strict: false });

  app.use('*', async (c, next) => {
    const requestId = globalThis.crypto.randomUUID();
    c.set('requestId', requestId);
    c.header('X-Request-Id', requestId);
    const startedAt = now();
    await next();
    const status = c.res.status;
    if (QUIET_PATHS.test(c.req.path) && status < 500) return;
    // Path only: query strings and bodies may carry what must not be logged.
    const fields = { requestId, method: c.req.method, path: c.req.path, status, durationMs: Math.round(now() - startedAt) };
    if (status >= 500) log.error('request failed', fields);
    else log.info('request', fields);
  });

  app.route('/', healthRoutes(resolved));
  app.use('/v1/*', authenticate(deps.stores.projects));
  app.route('/v1/projects', projectRoutes(resolved));
  app.route('/v1/assistants', assistantRoutes(resolved));
  app.route('/v1/credentials', credentialRoutes(resolved));
  app.route('/v1/conversations', conversationRoutes(resolved));
  if (deps.stores.knowledge) app.route('/v1/knowledge-bases', knowledgeRoutes(resolved, deps.stores.knowledge));
  if (deps.stores.sip) app.route('/v1', sipRoutes(resolved, deps.stores.sip));
  for (const extra of options.extraRoutes ?? []) app.route(extra.path, extra.routes);

  app.notFound((c) => errorResponse(c, 404, 'NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => handleError(error, c, log, c.get('requestId')));
  return app;
}

/** `https://voice.example.com/` → `https://voice.example.com`; anything but an http(s) origin is refused. */
export function normalisePublicBaseUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username || url.password) {
    throw new ConfigError('PUBLIC_BASE_URL_INVALID', `the public base URL must be an http(s) URL such as https://voice.example.com, got "${value}"`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
