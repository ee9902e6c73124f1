import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { PUBLISHABLE_KEY_PREFIX } from '../../shared/store/projects';
import type { AppEnv, AppStores } from '../app';
import { bearerKey, projectOf } from '../auth';
import { ApiError, badRequest, notFound } from '../errors';
import { readBodyText, SMALL_BODY_BYTES, validate } from '../validation';
import { createCallRecords } from './call-records';
import { CreateCallBody } from './calls';
import type { CallHooks } from './twilio';

/**
 * Asterisk call set-up: `POST /v1/talk/asterisk/call/:assistantId` (mounted at `/v1/talk/asterisk`), made by
 * the dialplan's `CURL()` right before it connects the call to us, by either transport:
 * - chan_websocket: `Dial(WebSocket/<client>/c(slin16)v(contextId=<id>))`, Asterisk connecting to
 *   `/v1/talk/asterisk/ctx?contextId=<id>` (or `/v1/talk/asterisk/ctx/<id>`);
 * - AudioSocket: `AudioSocket(<id>,host:4573)`, the id being the session UUID.
 * The context knows nothing of the transport (provider `asterisk`); whichever connects first claims it.
 *
 * Authentication: the path lies under `/v1/talk/`, which the app's key middleware leaves alone, so the route
 * checks the key itself: `Authorization: Bearer <secret key>` (a project key, or the admin key with
 * `X-Project-Id`); in the dialplan `Set(CURLOPT(httpheader)=Authorization: Bearer <key>)`. Publishable keys
 * are refused (401): they are public.
 *
 * Call variables (`{{name}}` in the prompt and greeting): from the query string, and from the body, either
 * a form (`CURL(url,name=Ada&from=${CALLERID(num)})` posts `application/x-www-form-urlencoded`) whose every
 * field is a variable, or JSON `{ "variables": {…}, "from": "…", "to": "…" }`; the body wins over the query.
 * `from` and `to` also become the call's caller and callee (any form fields of that name stay variables too).
 * Same bounds as `POST /v1/calls` (64 variables, names of letters, digits, `_ . -`, values ≤ 4000 characters).
 *
 * Answer (201): the context id alone as `text/plain` (CURL() puts the body into a dialplan variable), or with
 * `Accept: application/json` `{ contextId, conversationId, webSocketUrl, expiresAt }`. Errors are the app's
 * JSON error bodies (401 UNAUTHENTICATED, 404 ASSISTANT_NOT_FOUND, 422 ASSISTANT_NOT_CALLABLE, 503 AT_CAPACITY /
 * NO_MEDIA_NODE, 400 VALIDATION_FAILED, 415): a dialplan tells them from an id by its length (36).
 */

/** The dialplan connects right after asking; until claimed, the id is all it takes to join the call. */
export const DEFAULT_ASTERISK_CONTEXT_TTL_MS = 2 * 60_000;

export interface AsteriskRouteDeps extends CallHooks {
  readonly stores: Pick<AppStores, 'projects' | 'assistants' | 'conversations' | 'callContexts'>;
  /** How long the context waits for Asterisk to connect; default DEFAULT_ASTERISK_CONTEXT_TTL_MS. */
  readonly contextTtlMs?: number;
}

/** chan_websocket's media path of a context (the query form `/v1/talk/asterisk/ctx?contextId=` works too). */
export const asteriskMediaPath = (contextId: string) => `/v1/talk/asterisk/ctx/${contextId}`;

const Variables = CreateCallBody.shape.variables;
const Party = z.string().trim().min(1).max(128, 'at most 128 characters').optional();

export const AsteriskCallJsonBody = z.strictObject({
  variables: Variables,
  /** The caller (e.g. `${CALLERID(num)}`); free-form, Asterisk numbers need not be E.164. */
  from: Party,
  /** The number or extension called (e.g. `${EXTEN}`). */
  to: Party,
});

/** Query string and form fields: every field is a variable; `from` / `to` also name the parties. */
const FieldVariables = z.strictObject({ variables: Variables, from: Party, to: Party });

const unauthenticated = (message: string) =>
  new ApiError(401, 'UNAUTHENTICATED', message, {}, { 'WWW-Authenticate': 'Bearer realm="voice-runtime"' });

export function asteriskRoutes(deps: AsteriskRouteDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;
  const ttlMs = deps.contextTtlMs ?? DEFAULT_ASTERISK_CONTEXT_TTL_MS;

  async function authorise(c: Context<AppEnv>): Promise<{ projectId: string; keyId: string }> {
    const header = c.req.header('authorization');
    if (!header) throw unauthenticated('send "Authorization: Bearer <secret API key>" (in the dialplan: Set(CURLOPT(httpheader)=Authorization: Bearer <key>))');
    const key = bearerKey(header);
    if (!key) throw unauthenticated('the Authorization header must read "Bearer <key>"');
    if (key.startsWith(PUBLISHABLE_KEY_PREFIX)) throw unauthenticated(`publishable keys (${PUBLISHABLE_KEY_PREFIX}…) only start browser sessions; Asterisk needs a secret API key`);
    const principal = await stores.projects.authenticate(key);
    if (!principal) throw unauthenticated('the API key is unknown or revoked');
    c.set('principal', principal);
    return { projectId: await projectOf(c, stores.projects), keyId: principal.keyId };
  }

  routes.post('/call/:assistantId', async (c) => {
    const caller = await authorise(c);
    const input = await readCallInput(c);

    const assistantId = c.req.param('assistantId');
    const assistant = await stores.assistants.get(assistantId);
    // Another project's assistant reads as absent, as for browser sessions.
    if (!assistant || assistant.projectId !== caller.projectId || assistant.deletedAt) {
      throw notFound('ASSISTANT_NOT_FOUND', `assistant ${assistantId} does not exist in this key's project`);
    }
    const pinned = { projectId: caller.projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) throw new ApiError(422, 'ASSISTANT_NOT_CALLABLE', `assistant ${assistant.id} cannot take calls right now: ${unusable}`);
    if (deps.admitCall && !(await deps.admitCall(caller.projectId))) {
      throw new ApiError(503, 'AT_CAPACITY', 'the project or this deployment is at its concurrent-call limit (or draining); retry shortly', {}, { 'Retry-After': '5' });
    }
    const node = await deps.chooseMediaNode(pinned);
    if (!node) {
      throw new ApiError(503, 'NO_MEDIA_NODE', 'no live media node has room for a call right now; retry shortly', {}, { 'Retry-After': '5' });
    }

    const { conversation, context } = await createCallRecords(stores, {
      ...pinned,
      channel: 'asterisk',
      direction: 'inbound',
      // The caller is already in Asterisk's dialplan, about to be connected to us.
      callStatus: 'ringing',
      ...(input.from !== undefined ? { caller: input.from } : {}),
      ...(input.to !== undefined ? { callee: input.to } : {}),
      metadata: { auth: 'api-key', keyId: caller.keyId, ...(input.from !== undefined ? { from: input.from } : {}), ...(input.to !== undefined ? { to: input.to } : {}) },
      ...(input.variables ? { variables: input.variables } : {}),
      ttlMs,
    });
    node.prewarm?.(context.id);

    // The id admits whoever holds it until Asterisk connects: never cached.
    c.header('Cache-Control', 'no-store');
    if (wantsJson(c.req.header('accept'))) {
      return c.json(
        {
          contextId: context.id,
          conversationId: conversation.id,
          webSocketUrl: `${node.mediaBaseUrl.replace(/\/+$/, '')}${asteriskMediaPath(context.id)}`,
          expiresAt: context.expiresAt.toISOString(),
        },
        201,
      );
    }
    return c.body(context.id, 201, { 'Content-Type': 'text/plain; charset=utf-8' });
  });

  return routes;
}

interface CallInput {
  readonly variables?: Readonly<Record<string, string>>;
  readonly from?: string;
  readonly to?: string;
}

/** Query fields, then the body's (form or JSON), merged and validated. */
async function readCallInput(c: Context<AppEnv>): Promise<CallInput> {
  const query = fieldsInput(new URL(c.req.url).searchParams, 'the query string');
  const text = await readBodyText(c, SMALL_BODY_BYTES);
  const contentType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  let body: CallInput = {};
  if (text.trim() !== '') {
    if (contentType === 'application/x-www-form-urlencoded' || contentType === '') {
      body = fieldsInput(new URLSearchParams(text), 'the form body');
    } else if (/^application\/([a-z0-9.+-]+\+)?json$/.test(contentType)) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw badRequest('BAD_JSON', 'the request body is not valid JSON');
      }
      body = validate(AsteriskCallJsonBody, json);
    } else {
      throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send variables as a form (CURL's default) or as JSON, not "${contentType}"`);
    }
  }
  const variables = query.variables || body.variables ? validate(Variables, { ...query.variables, ...body.variables }, 'the call variables') : undefined;
  const from = body.from ?? query.from;
  const to = body.to ?? query.to;
  return { ...(variables ? { variables } : {}), ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) };
}

function fieldsInput(params: URLSearchParams, what: string): CallInput {
  const fields: Record<string, string> = {};
  for (const [name, value] of params) {
    if (Object.hasOwn(fields, name)) throw badRequest('VALIDATION_FAILED', `${what} is invalid`, { issues: [{ path: name, message: 'given more than once' }] });
    fields[name] = value;
  }
  if (Object.keys(fields).length === 0) return {};
  const { from, to } = fields;
  return validate(FieldVariables, { variables: fields, from, to }, what);
}

/** JSON only when asked for by name: CURL() sends `Accept: *\/*` and wants the bare id. */
function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*application\/json\s*(;|,|$)/i.test(accept);
}
