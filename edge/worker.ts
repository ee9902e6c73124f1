import { checkReadiness, cacheCheck, databaseCheck, searchCheck } from '../shared/health/readiness';
import { createAssistantStore } from '../shared/store/assistants';
import { createCallContextStore } from '../shared/store/call-contexts';
import { createConversationStore } from '../shared/store/conversations';
import { createCredentialStore } from '../shared/store/credentials';
import { createProjectStore } from '../shared/store/projects';
import { isUuid } from '../shared/store/rows';
import { createSecretBox, type SecretBox } from '../shared/store/secret-box';
import { createSipRoutingStore } from '../shared/store/sip-routing';
import { createApp, type AppStores } from './app';
import { createUpstashClient, UpstashCache } from './cache/upstash';
import { createEdgeSqlClient } from './db';
import { misconfiguredResponse, parseEdgeEnv, type EdgeConfig, type EdgeConfigResult, type LogLevel } from './env';
import type { AppLogger } from './errors';
import { edgeMediaNodeChooser } from './media-nodes';
import { callRoutes } from './routes/calls';
import { twilioRoutes, type TwilioRouteDeps } from './routes/twilio';
import { asteriskRoutes } from './routes/asterisk';
import { exotelRoutes } from './routes/exotel';
import { vonageRoutes } from './routes/vonage';
import { webSessionRoutes } from './routes/web-session';

/**
 * The Cloudflare Worker entry: the same Hono app as the media node (edge/app.ts), on PostgreSQL through
 * Hyperdrive (edge/db.ts) and the Redis registry through Upstash (edge/cache/upstash.ts), plus
 *   - the Twilio webhooks and `POST /v1/calls`, whose media URL names a live media node picked from the
 *     registry, pre-warmed by a signed `POST /internal/prewarm` (edge/media-nodes.ts);
 *   - `POST /v1/talk/web/session` (edge/routes/web-session.ts): a browser session whose socket URL is this origin;
 *   - `GET /v1/talk/web/ctx/:contextId` (WebSocket): handed untouched to the TalkSession Durable Object named
 *     by the context id, which runs the browser call (edge/talk/durable-object.ts).
 *
 * Stores and clients are built per request: workerd sockets belong to the request that opened them. Only
 * what holds no I/O is kept across requests of an isolate: the parsed environment and the SECRET_KEY box.
 */
export { TalkSession } from './talk/durable-object';

/** What workerd passes as the third argument (only waitUntil is used). */
export interface WorkerContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** Cloudflare's request metadata; `region` is e.g. "Oregon" (absent in local tests unless given). */
type CfRequest = Request & { readonly cf?: { readonly region?: unknown } };

const TALK_WEB_PATH = /^\/v1\/talk\/web\/ctx\/([^/]+)\/?$/;
const LIVENESS_PATH = /^\/healthz\/?$/;

const parsedEnvs = new WeakMap<object, EdgeConfigResult>();
const secretBoxes = new Map<string, Promise<SecretBox>>();

function configOf(env: Record<string, unknown>): EdgeConfigResult {
  let result = parsedEnvs.get(env);
  if (!result) {
    result = parseEdgeEnv(env);
    parsedEnvs.set(env, result);
  }
  return result;
}

/** HKDF runs once per isolate and key (the derived CryptoKey holds no I/O, so it may outlive a request). */
function secretBoxFor(secretKey: string): Promise<SecretBox> {
  let box = secretBoxes.get(secretKey);
  if (!box) {
    box = createSecretBox(secretKey);
    secretBoxes.clear(); // one key per deployment; a rotated key replaces the old one
    secretBoxes.set(secretKey, box);
  }
  return box;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** JSON lines on the console (Workers Logs / `wrangler tail` pick them up). Fields never hold secrets. */
function consoleLogger(level: LogLevel): AppLogger {
  const line = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: Readonly<Record<string, unknown>>) => {
    if (LEVEL_RANK[at] < LEVEL_RANK[level]) return;
    const text = JSON.stringify({ level: at, message, ...fields });
    if (at === 'error') console.error(text);
    else if (at === 'warn') console.warn(text);
    else console.log(text);
  };
  return { info: (m, f) => line('info', m, f), warn: (m, f) => line('warn', m, f), error: (m, f) => line('error', m, f) };
}

function jsonError(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}

/** The browser's call socket goes to the Durable Object of its context; the request is passed on as it came. */
function forwardTalkSession(request: Request, config: EdgeConfig, rawContextId: string): Promise<Response> | Response {
  if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
    return jsonError(426, 'UPGRADE_REQUIRED', 'this is the browser call WebSocket: open it with a GET and "Upgrade: websocket"', { Upgrade: 'websocket' });
  }
  let contextId: string;
  try {
    contextId = decodeURIComponent(rawContextId);
  } catch {
    contextId = '';
  }
  // No context has any other shape: refuse before creating a Durable Object for an arbitrary name.
  if (!isUuid(contextId)) return jsonError(404, 'CALL_CONTEXT_NOT_FOUND', 'no call context has this id');
  return config.talkSessions.getByName(contextId.toLowerCase()).fetch(request);
}

async function handleWithApp(request: CfRequest, config: EdgeConfig, ctx: WorkerContext, log: AppLogger): Promise<Response> {
  const db = createEdgeSqlClient(config.database);
  const cache = new UpstashCache(createUpstashClient(config.upstash));
  const stores: AppStores = {
    projects: createProjectStore(db),
    assistants: createAssistantStore(db),
    conversations: createConversationStore(db),
    callContexts: createCallContextStore(db),
    credentials: createCredentialStore(db, await secretBoxFor(config.secretKey)),
    sip: createSipRoutingStore(db),
  };
  const region = typeof request.cf?.region === 'string' && request.cf.region ? request.cf.region : undefined;
  // Checks that need a provider registry (checkCallable) and node capacity (admitCall) happen on the chosen
  // node when the media stream connects; the edge only needs a node with room.
  const callDeps: TwilioRouteDeps = {
    stores,
    publicBaseUrl: config.publicBaseUrl,
    chooseMediaNode: edgeMediaNodeChooser({
      cache,
      internalSecret: config.internalSecret,
      regionHints: [region, config.defaultRegion],
      waitUntil: (promise) => ctx.waitUntil(promise),
      log,
    }),
  };
  const app = createApp(
    {
      stores,
      readiness: () => checkReadiness({ database: databaseCheck(db), cache: cacheCheck(cache), search: searchCheck() }),
      publicBaseUrl: config.publicBaseUrl,
      log,
    },
    {
      extraRoutes: [
        { path: '/v1/talk/twilio', routes: twilioRoutes(callDeps) },
        // The other carriers' webhooks: media goes to the chosen node like Twilio's (docs/channels/*.md).
        { path: '/v1/talk/vonage', routes: vonageRoutes(callDeps) },
        { path: '/v1/talk/exotel', routes: exotelRoutes(callDeps, { clientAddress: (c) => c.req.header('cf-connecting-ip') }) },
        { path: '/v1/talk/asterisk', routes: asteriskRoutes(callDeps) },
        // Browser sessions: the socket URL is this origin (https → wss), whose ctx path goes to the Durable Object.
        { path: '/v1/talk/web', routes: webSessionRoutes({ stores, webSocketBaseUrl: () => config.publicBaseUrl.replace(/^http/, 'ws') }) },
        { path: '/v1/calls', routes: callRoutes(callDeps, { log }) },
      ],
    },
  );
  return app.fetch(request);
}

export default {
  async fetch(request: Request, env: Record<string, unknown>, ctx: WorkerContext): Promise<Response> {
    const { pathname } = new URL(request.url);
    const parsed = configOf(env);
    if (!parsed.ok) {
      // Liveness still answers (the isolate runs); readiness and everything else say what is misconfigured.
      if (request.method === 'GET' && LIVENESS_PATH.test(pathname)) return Response.json({ status: 'ok' }, { headers: { 'cache-control': 'no-store' } });
      consoleLogger('error').error('the Worker environment is invalid', { variables: parsed.issues.map((issue) => issue.variable) });
      return misconfiguredResponse(parsed.issues);
    }
    const talk = TALK_WEB_PATH.exec(pathname);
    if (talk) return forwardTalkSession(request, parsed.config, talk[1]!);
    return handleWithApp(request as CfRequest, parsed.config, ctx, consoleLogger(parsed.config.logLevel));
  },
};
