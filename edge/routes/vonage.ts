import { Hono, type Context } from 'hono';
import type { CallDirection, CallStatus } from '../../shared/contracts/call-status';
import type { CallContext } from '../../shared/store/call-contexts';
import type { Conversation } from '../../shared/store/conversations';
import type { CredentialStore } from '../../shared/store/credentials';
import { isProtocolError } from '../../shared/telephony/protocol-error';
import { VONAGE_DEFAULT_SAMPLE_RATE, type VonageSampleRate } from '../../shared/telephony/vonage';
import { verifyVonageWebhook } from '../../shared/telephony/vonage-jwt';
import { isVonageWebSocketLeg, parseVonageAnswerWebhook, parseVonageEvent, vonageConnectNcco, vonageTalkNcco, type VonageParams } from '../../shared/telephony/vonage-webhooks';
import type { AppEnv, AppStores } from '../app';
import { ApiError } from '../errors';
import { createCallRecords } from './call-records';
import { applyCallStatus, type CallHooks, type PinnedAssistant } from './twilio';

/**
 * Vonage's side of the HTTP app (telephony reference §2):
 * - `GET|POST /v1/talk/vonage/call/:assistantId[?rate=8000]`: the application's answer URL. Creates the call's
 *   records and answers the NCCO `connect` → `websocket` `{media base}/v1/talk/vonage/ctx/{contextId}` in L16 at
 *   16 kHz (`rate=8000` asks for narrowband);
 * - `POST /v1/talk/vonage/ctx/:contextId/event`: the events of one call (the NCCO's and the outbound call's
 *   `eventUrl`); `POST /v1/talk/vonage/event`: the application's event URL (the call found by its `uuid`).
 * Every request must be a Vonage signed webhook (`Authorization: Bearer` JWT, HS256 with the signature secret
 * of the project's `vonage` credential, fresh `iat`, `payload_hash` when present): unsigned → 401, a bad or
 * stale token → 403.
 */

export interface VonageRouteDeps extends CallHooks {
  readonly stores: AppStores;
  /** The public origin (PUBLIC_BASE_URL): event URLs handed to Vonage derive from it. */
  readonly publicBaseUrl: string;
  /** Wall clock for token freshness (tests move it). */
  now?(): number;
}

/**
 * A project's vonage credential, stored with `PUT /v1/credentials/:name` `{ provider: "vonage", ... }`:
 * `signatureSecret` checks signed webhooks; `applicationId` + `privateKey` (PEM) place outbound calls;
 * `apiKey` (optional) must match the tokens' `api_key` claim; `apiBaseUrl` points the REST client elsewhere
 * than api.nexmo.com (a local fake in tests).
 */
export interface VonageCredential {
  readonly apiKey?: string;
  readonly signatureSecret?: string;
  readonly applicationId?: string;
  readonly privateKey?: string;
  readonly apiBaseUrl?: string;
}

/** The project's default vonage credential (its string fields), or undefined when it has none. */
export async function resolveVonageCredential(credentials: Pick<CredentialStore, 'resolve'>, projectId: string): Promise<VonageCredential | undefined> {
  const stored = await credentials.resolve(projectId, 'vonage');
  if (!stored) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(stored);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const fields = value as Record<string, unknown>;
  const pick = (name: keyof VonageCredential) => (typeof fields[name] === 'string' && fields[name] ? { [name]: fields[name] as string } : {});
  return { ...pick('apiKey'), ...pick('signatureSecret'), ...pick('applicationId'), ...pick('privateKey'), ...pick('apiBaseUrl') };
}

/** The media WebSocket path of a call context. */
export const vonageMediaPath = (contextId: string) => `/v1/talk/vonage/ctx/${contextId}`;
/** Where one call's events go. */
export const vonageEventUrl = (publicBaseUrl: string, contextId: string) => `${publicBaseUrl}${vonageMediaPath(contextId)}/event`;

/**
 * The NCCO of a call: `connect` to the context's media WebSocket. Its headers (back in the first WebSocket
 * message) name the context, the conversation and, when known, Vonage's call uuid.
 */
export function vonageStreamNcco(
  urls: { readonly mediaBaseUrl: string; readonly publicBaseUrl: string },
  context: Pick<CallContext, 'id' | 'conversationId'>,
  options: { readonly sampleRateHz?: VonageSampleRate; readonly callUuid?: string } = {},
): readonly Record<string, unknown>[] {
  return vonageConnectNcco({
    websocketUri: `${urls.mediaBaseUrl}${vonageMediaPath(context.id)}`,
    sampleRateHz: options.sampleRateHz ?? VONAGE_DEFAULT_SAMPLE_RATE,
    headers: { contextId: context.id, conversationId: context.conversationId, ...(options.callUuid ? { callUuid: options.callUuid } : {}) },
    eventUrl: vonageEventUrl(urls.publicBaseUrl, context.id),
  });
}

export interface VonageCallRecordsInput extends PinnedAssistant {
  readonly direction: CallDirection;
  readonly from: string;
  readonly to: string;
  /** Vonage's uuid of the phone leg, when known (inbound); an outbound call gets it from the REST answer. */
  readonly uuid?: string;
  readonly conversationUuid?: string;
  readonly callStatus: CallStatus;
  readonly conversationStatus?: CallStatus;
  readonly variables?: Readonly<Record<string, string>>;
}

export async function createVonageCallRecords(stores: Pick<AppStores, 'conversations' | 'callContexts'>, input: VonageCallRecordsInput): Promise<{ conversation: Conversation; context: CallContext }> {
  return createCallRecords(stores, {
    projectId: input.projectId,
    assistantId: input.assistantId,
    assistantVersion: input.assistantVersion,
    channel: 'vonage',
    direction: input.direction,
    callStatus: input.callStatus,
    ...(input.conversationStatus !== undefined ? { conversationStatus: input.conversationStatus } : {}),
    caller: input.from,
    callee: input.to,
    ...(input.uuid !== undefined ? { channelId: input.uuid } : {}),
    metadata: {
      ...(input.uuid !== undefined ? { uuid: input.uuid } : {}),
      ...(input.conversationUuid !== undefined ? { conversationUuid: input.conversationUuid } : {}),
      from: input.from,
      to: input.to,
    },
    ...(input.variables ? { variables: input.variables } : {}),
  });
}

/** `rate` on the answer URL: 16000 (default) or 8000. */
function sampleRateOf(value: string | undefined): VonageSampleRate {
  if (value === undefined || value === '') return VONAGE_DEFAULT_SAMPLE_RATE;
  if (value === '16000' || value === '8000') return Number(value) as VonageSampleRate;
  throw new ApiError(400, 'VONAGE_RATE_INVALID', `rate=${value.slice(0, 20)} is not supported: use rate=16000 (default) or rate=8000 on the answer URL`);
}

const ncco = (c: Context, body: readonly Record<string, unknown>[], status: 200 | 503 = 200) => c.json(body, status);

export function vonageRoutes(deps: VonageRouteDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;
  const now = () => deps.now?.() ?? Date.now();

  /** The request's parameters (GET query or POST JSON body), after checking Vonage signed them for this project. */
  async function signedParams(c: Context<AppEnv>, projectId: string, body: string): Promise<VonageParams> {
    const credential = await resolveVonageCredential(stores.credentials, projectId);
    if (!credential?.signatureSecret) {
      throw new ApiError(403, 'VONAGE_CREDENTIAL_MISSING', 'the project has no vonage credential with a signatureSecret: PUT /v1/credentials/<name> with provider "vonage"');
    }
    const url = new URL(c.req.url);
    const verdict = await verifyVonageWebhook({
      authorization: c.req.header('authorization'),
      signatureSecret: credential.signatureSecret,
      body,
      query: url.searchParams,
      ...(credential.apiKey ? { apiKey: credential.apiKey } : {}),
      ...(credential.applicationId ? { applicationId: credential.applicationId } : {}),
      nowMs: now(),
    });
    if (!verdict.ok) {
      if (verdict.reason === 'missing') throw new ApiError(401, 'VONAGE_SIGNATURE_MISSING', `${verdict.detail} (signed webhooks are required)`, {}, { 'WWW-Authenticate': 'Bearer' });
      throw new ApiError(403, 'VONAGE_SIGNATURE_INVALID', `${verdict.detail} (check the vonage credential's signatureSecret and the server clock)`);
    }
    return c.req.method === 'GET' ? Object.fromEntries(url.searchParams) : jsonObject(body);
  }

  const answer = async (c: Context<AppEnv>) => {
    const assistant = await stores.assistants.get(c.req.param('assistantId') ?? '');
    if (!assistant) throw new ApiError(404, 'ASSISTANT_NOT_FOUND', 'no such assistant');
    const sampleRateHz = sampleRateOf(c.req.query('rate'));
    const params = await signedParams(c, assistant.projectId, c.req.method === 'GET' ? '' : await c.req.text());
    const call = parseVonageAnswerWebhook(params);
    if (isProtocolError(call)) throw new ApiError(400, 'VONAGE_WEBHOOK_INVALID', call.message, { issues: call.issues.map((message) => ({ message })) });
    const pinned = { projectId: assistant.projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) return ncco(c, vonageTalkNcco(`Sorry, this assistant cannot take calls right now. ${unusable}`));
    // 503 lets Vonage try the application's fallback answer URL (another region, another node pool).
    const busy = () => ncco(c, vonageTalkNcco('Sorry, all lines are busy. Please call again later.'), 503);
    if (deps.admitCall && !(await deps.admitCall(assistant.projectId))) return busy();
    const node = await deps.chooseMediaNode(pinned);
    if (!node) return busy();
    const { context } = await createVonageCallRecords(stores, {
      ...pinned,
      direction: 'inbound',
      from: call.from,
      to: call.to,
      uuid: call.uuid,
      ...(call.conversationUuid ? { conversationUuid: call.conversationUuid } : {}),
      callStatus: 'ringing',
    });
    node.prewarm?.(context.id);
    return ncco(c, vonageStreamNcco({ mediaBaseUrl: node.mediaBaseUrl, publicBaseUrl: deps.publicBaseUrl }, context, { sampleRateHz, callUuid: call.uuid }));
  };
  routes.get('/call/:assistantId', answer);
  routes.post('/call/:assistantId', answer);

  async function recordEvent(c: Context<AppEnv>, context: CallContext | undefined, body: string) {
    if (!context || context.provider !== 'vonage') throw new ApiError(404, 'CALL_CONTEXT_NOT_FOUND', 'no Vonage call matches this event');
    const event = parseVonageEvent(await signedParams(c, context.projectId, body));
    if (isProtocolError(event)) throw new ApiError(400, 'VONAGE_EVENT_INVALID', event.message, { issues: event.issues.map((message) => ({ message })) });
    // A valid token proves the sender holds the secret, not that the event is about this call. The WebSocket
    // leg's events (to = our media URI) come here too: stored, but they are not the phone call's state.
    const webSocketLeg = isVonageWebSocketLeg(event);
    if (webSocketLeg) {
      const named = contextIdInUri(event.to) ?? contextIdInUri(event.from);
      if (named !== undefined && named !== context.id) throw new ApiError(409, 'VONAGE_CALL_MISMATCH', "the event is about another call's media stream");
    } else if (context.channelId !== undefined && event.uuid !== undefined && event.uuid !== context.channelId) {
      throw new ApiError(409, 'VONAGE_CALL_MISMATCH', `the event is about call ${event.uuid}, not this context's call`);
    }
    await stores.conversations.recordCallEvent({
      provider: 'vonage',
      providerEventId: event.eventId,
      ...(event.status !== undefined && !webSocketLeg ? { status: event.status } : {}),
      raw: event.raw,
      callContextId: context.id,
      conversationId: context.conversationId,
      ...(event.occurredAtMs !== undefined ? { occurredAt: event.occurredAtMs } : {}),
    });
    if (!webSocketLeg) await applyCallStatus(stores, context.id, event.status);
    return c.body(null, 204);
  }

  routes.post('/ctx/:contextId/event', async (c) => recordEvent(c, await stores.callContexts.get(c.req.param('contextId')), await c.req.text()));
  routes.post('/event', async (c) => {
    const body = await c.req.text();
    const loose = jsonObject(body);
    const uuid = typeof loose.uuid === 'string' ? loose.uuid : undefined;
    let context = uuid ? await stores.callContexts.getByChannelId('vonage', uuid) : undefined;
    if (!context) {
      // The media WebSocket's own leg: its `to` is our media URI, which names the context.
      const named = contextIdInUri(typeof loose.to === 'string' ? loose.to : undefined);
      if (named) context = await stores.callContexts.get(named);
    }
    return recordEvent(c, context, body);
  });
  return routes;
}

function contextIdInUri(uri: string | undefined): string | undefined {
  const match = uri ? /\/v1\/talk\/vonage\/ctx\/([^/?#]+)/.exec(uri) : null;
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return undefined;
  }
}

function jsonObject(body: string): Record<string, unknown> {
  if (!body) return {};
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new ApiError(400, 'VONAGE_WEBHOOK_INVALID', 'the body is not JSON (Vonage posts application/json)');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError(400, 'VONAGE_WEBHOOK_INVALID', 'the body is JSON but not an object');
  return value as Record<string, unknown>;
}
