import { Hono, type Context } from 'hono';
import type { CallContext } from '../../shared/store/call-contexts';
import type { CredentialStore } from '../../shared/store/credentials';
import {
  checkBasicAuth,
  exotelStreamUrlAnswer,
  ipAllowed,
  parseExotelCallRequest,
  parseExotelCredential,
  parseExotelStatusCallback,
  type ExotelCredential,
} from '../../shared/telephony/exotel-webhooks';
import { isProtocolError } from '../../shared/telephony/protocol-error';
import type { AppEnv, AppStores } from '../app';
import { ApiError } from '../errors';
import { readBodyText, SMALL_BODY_BYTES } from '../validation';
import { createCallRecords } from './call-records';
import { applyCallStatus, type CallHooks } from './twilio';

/**
 * Exotel's side of the HTTP app. Exotel signs nothing, so every request must carry HTTP Basic credentials
 * (the project's exotel credential: `webhookUsername`/`webhookPassword`, default its `apiKey`/`apiToken`)
 * and, when the credential lists `allowedIps`, come from one of them. Media sockets are protected by their
 * unguessable, claim-once context id instead.
 *
 * - `GET|POST /v1/talk/exotel/call/:assistantId`: the Voicebot applet's dynamic URL. Creates the call's
 *   records and answers `200 {"url": "wss://{media node}/v1/talk/exotel/ctx/{contextId}?sample-rate=8000"}`.
 * - `POST /v1/talk/exotel/ctx/:contextId/event` (per call, what outbound calls ask for) and
 *   `POST /v1/talk/exotel/event` (found by `CallSid`): status callbacks, stored once, status normalised.
 */
export interface ExotelRouteDeps extends CallHooks {
  readonly stores: AppStores;
}

export interface ExotelRouteOptions {
  /**
   * The address the request came from, for the allow-list: the socket peer on a node, `CF-Connecting-IP` on
   * Workers. Absent or unknown while an allow-list is set: the request is refused (fail closed).
   */
  clientAddress?(c: Context<AppEnv>): string | undefined;
}

export const exotelMediaPath = (contextId: string) => `/v1/talk/exotel/ctx/${contextId}`;

/** The project's exotel credential; undefined when none is stored; an ApiError when the stored one is unusable. */
export async function resolveExotelCredential(credentials: Pick<CredentialStore, 'resolve'>, projectId: string): Promise<ExotelCredential | undefined> {
  const parsed = parseExotelCredential(await credentials.resolve(projectId, 'exotel'));
  if (parsed && 'issues' in parsed) {
    throw new ApiError(400, 'EXOTEL_CREDENTIAL_INVALID', `the project's exotel credential is unusable: ${parsed.issues.join('; ')}`, {
      issues: parsed.issues.map((message) => ({ message })),
    });
  }
  return parsed;
}

/** The media socket URL Exotel connects to for this context (the sample rate Exotel should stream, as its query parameter). */
export function exotelStreamUrl(mediaBaseUrl: string, contextId: string, sampleRateHz = 8000): string {
  return `${mediaBaseUrl}${exotelMediaPath(contextId)}?sample-rate=${sampleRateHz}`;
}

/** Where Exotel posts status for this call; the Basic credentials ride in the URL's user info (Exotel's documented way to send them). */
export function exotelStatusCallbackUrl(publicBaseUrl: string, contextId: string, credential: ExotelCredential): string {
  const url = new URL(`${publicBaseUrl}${exotelMediaPath(contextId)}/event`);
  url.username = credential.webhookUsername ?? credential.apiKey;
  url.password = credential.webhookPassword ?? credential.apiToken;
  return url.toString();
}

export function exotelRoutes(deps: ExotelRouteDeps, options: ExotelRouteOptions = {}): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;

  /** The project's credential, after checking this request is Exotel's (address, then Basic credentials). */
  async function authenticated(c: Context<AppEnv>, projectId: string): Promise<ExotelCredential> {
    const credential = await resolveExotelCredential(stores.credentials, projectId);
    // The same answer for "no credential" and "wrong credentials" would hide a set-up mistake; neither leaks a secret.
    if (!credential) throw new ApiError(403, 'EXOTEL_CREDENTIAL_MISSING', 'the project has no exotel credential: PUT /v1/credentials/<name> with provider "exotel"');
    if (credential.allowedIps && credential.allowedIps.length > 0) {
      const address = options.clientAddress?.(c);
      if (!ipAllowed(address, credential.allowedIps)) {
        throw new ApiError(403, 'EXOTEL_ADDRESS_REFUSED', "the request does not come from an address in the exotel credential's allowedIps");
      }
    }
    const ok = await checkBasicAuth(c.req.header('authorization'), credential.webhookUsername ?? credential.apiKey, credential.webhookPassword ?? credential.apiToken);
    if (!ok) {
      throw new ApiError(401, 'EXOTEL_AUTH_INVALID', "HTTP Basic credentials missing or wrong (the exotel credential's webhookUsername/webhookPassword, default apiKey/apiToken)", {}, {
        'WWW-Authenticate': 'Basic realm="exotel"',
      });
    }
    return credential;
  }

  /** Query parameters, plus a form or JSON body when there is one (Exotel's flow builder sends GET; POST is accepted). */
  async function requestParams(c: Context<AppEnv>): Promise<Record<string, unknown>> {
    const params: Record<string, unknown> = { ...c.req.query() };
    if (c.req.method !== 'POST') return params;
    const text = await readBodyText(c, SMALL_BODY_BYTES);
    if (!text.trim()) return params;
    if ((c.req.header('content-type') ?? '').includes('json')) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new ApiError(400, 'BAD_JSON', 'the request body is not valid JSON');
      }
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ApiError(400, 'BAD_JSON', 'the request body must be a JSON object');
      return { ...params, ...(json as Record<string, unknown>) };
    }
    return { ...params, ...Object.fromEntries(new URLSearchParams(text)) };
  }

  const streamUrlRequest = async (c: Context<AppEnv>) => {
    const assistant = await stores.assistants.get(c.req.param('assistantId') ?? '');
    if (!assistant) throw new ApiError(404, 'ASSISTANT_NOT_FOUND', 'no such assistant');
    const credential = await authenticated(c, assistant.projectId);
    const strings = Object.fromEntries(Object.entries(await requestParams(c)).filter((e): e is [string, string] => typeof e[1] === 'string'));
    const call = parseExotelCallRequest(strings);
    if (isProtocolError(call)) throw new ApiError(400, 'EXOTEL_WEBHOOK_INVALID', call.message, { issues: call.issues.map((message) => ({ message })) });
    const pinned = { projectId: assistant.projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    // No stream URL means the applet fails and Exotel moves on in the flow: say why in the answer.
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) throw new ApiError(503, 'ASSISTANT_NOT_CALLABLE', `this assistant cannot take calls right now: ${unusable}`);
    const busy = () => new ApiError(503, 'AT_CAPACITY', 'all lines are busy; call again later', {}, { 'Retry-After': '5' });
    if (deps.admitCall && !(await deps.admitCall(assistant.projectId))) throw busy();
    const node = await deps.chooseMediaNode(pinned);
    if (!node) throw busy();
    const { context } = await createCallRecords(stores, {
      ...pinned,
      channel: 'exotel',
      direction: 'inbound',
      // The applet runs on an answered call.
      callStatus: 'in-progress',
      conversationStatus: 'ringing',
      ...(call.from !== undefined ? { caller: call.from } : {}),
      ...(call.to !== undefined ? { callee: call.to } : {}),
      ...(call.callSid !== undefined ? { channelId: call.callSid } : {}),
      metadata: { ...(call.callSid !== undefined ? { callSid: call.callSid } : {}), ...(call.from ? { from: call.from } : {}), ...(call.to ? { to: call.to } : {}), ...(call.customField ? { customField: call.customField } : {}) },
    });
    node.prewarm?.(context.id);
    return c.json(exotelStreamUrlAnswer(exotelStreamUrl(node.mediaBaseUrl, context.id, credential.sampleRateHz)), 200);
  };
  routes.get('/call/:assistantId', streamUrlRequest);
  routes.post('/call/:assistantId', streamUrlRequest);

  async function recordStatus(c: Context<AppEnv>, context: CallContext | undefined, params: Record<string, unknown>) {
    if (!context || context.provider !== 'exotel') throw new ApiError(404, 'CALL_CONTEXT_NOT_FOUND', 'no Exotel call matches this status callback');
    await authenticated(c, context.projectId);
    const event = parseExotelStatusCallback(params);
    if (isProtocolError(event)) throw new ApiError(400, 'EXOTEL_STATUS_INVALID', event.message, { issues: event.issues.map((message) => ({ message })) });
    if (context.channelId !== undefined && context.channelId !== event.callSid) {
      throw new ApiError(409, 'EXOTEL_CALL_MISMATCH', `the status callback is about call ${event.callSid}, not this context's call`);
    }
    // Stored first (deduplicated: Exotel retries a callback up to twice); the status update is safe to repeat.
    await stores.conversations.recordCallEvent({
      provider: 'exotel',
      providerEventId: event.eventId,
      status: event.status,
      raw: event.raw,
      callContextId: context.id,
      conversationId: context.conversationId,
    });
    await applyCallStatus(stores, context.id, event.status);
    return c.body(null, 204);
  }

  routes.post('/ctx/:contextId/event', async (c) => {
    const params = await requestParams(c);
    return recordStatus(c, await stores.callContexts.get(c.req.param('contextId')), params);
  });
  routes.post('/event', async (c) => {
    const params = await requestParams(c);
    const callSid = typeof params.CallSid === 'string' ? params.CallSid : undefined;
    return recordStatus(c, callSid ? await stores.callContexts.getByChannelId('exotel', callSid) : undefined, params);
  });
  return routes;
}
