import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { createVonageCall, VonageApiError, type VonageCallResource } from '../../shared/telephony/vonage-rest';
import type { AppEnv, AppStores } from '../app';
import { ApiError, silentLogger, type AppLogger } from '../errors';
import type { CallHooks } from './twilio';
import { admitOutboundCall } from './call-records';
import { createVonageCallRecords, resolveVonageCredential, vonageEventUrl, vonageStreamNcco } from './vonage';

/**
 * `POST /v1/calls` with `provider: "vonage"` (edge/routes/calls.ts hands the checked body here):
 *
 *   → 201 { "callId": "<call context id>", "conversationId": "…", "providerCallId": "<Vonage uuid>", "status": "queued" }
 *
 * Needs the project's vonage credential with `applicationId` and `privateKey` (400 `VONAGE_CREDENTIAL_MISSING`
 * otherwise). Creates the conversation and the call context (outbound, queued), then `POST {api}/v1/calls` with
 * an RS256 application JWT, the NCCO the inbound webhook answers (connect → websocket, L16 16 kHz) and the
 * per-call event URL. Vonage's refusal fails the context and the conversation and is answered like Twilio's:
 * credential refused → 400 `VONAGE_AUTH` / `VONAGE_KEY`, call refused → 400 `VONAGE_REJECTED`, rate limit → 429,
 * Vonage down or unreadable → 502, time-out → 504.
 */

export interface VonageCallDeps extends CallHooks {
  readonly stores: AppStores;
  readonly publicBaseUrl: string;
}

export interface VonageCallOptions {
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
  readonly log?: AppLogger;
  /** Which `apiBaseUrl` a stored vonage credential may name; default https Vonage API hosts only (the JWT is a bearer token). */
  readonly allowApiBaseUrl?: (url: string) => boolean;
}

export interface VonageCallRequest {
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  readonly to: string;
  readonly from: string;
  readonly variables?: Readonly<Record<string, string>>;
}

/** https://api.nexmo.com, its regional twins (api-us, api-eu, api-ap) and api.vonage.com hosts. */
export function isVonageApiUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && /^api(-[a-z0-9]+)?\.(nexmo|vonage)\.com$/.test(u.hostname);
  } catch {
    return false;
  }
}

export async function placeVonageCall(c: Context<AppEnv>, deps: VonageCallDeps, options: VonageCallOptions, request: VonageCallRequest): Promise<Response> {
  const { stores } = deps;
  const log = options.log ?? silentLogger;
  const credential = await resolveVonageCredential(stores.credentials, request.projectId);
  if (!credential?.applicationId || !credential.privateKey) {
    throw new ApiError(400, 'VONAGE_CREDENTIAL_MISSING', 'the project has no vonage credential with applicationId and privateKey: PUT /v1/credentials/<name> with provider "vonage" first');
  }
  if (credential.apiBaseUrl !== undefined && !(options.allowApiBaseUrl ?? isVonageApiUrl)(credential.apiBaseUrl)) {
    throw new ApiError(400, 'VONAGE_API_BASE_URL_REFUSED', "the vonage credential's apiBaseUrl must be an https Vonage API URL (e.g. https://api.nexmo.com)");
  }
  const pinned = { projectId: request.projectId, assistantId: request.assistantId, assistantVersion: request.assistantVersion };
  await admitOutboundCall(deps, pinned);
  const node = await deps.chooseMediaNode(pinned);
  if (!node) throw new ApiError(503, 'NO_MEDIA_NODE', 'no live media node has room for a call right now; retry shortly', {}, { 'Retry-After': '5' });

  const { conversation, context } = await createVonageCallRecords(stores, {
    ...pinned,
    direction: 'outbound',
    from: request.from,
    to: request.to,
    callStatus: 'queued',
    ...(request.variables ? { variables: request.variables } : {}),
  });

  let placed: VonageCallResource;
  try {
    placed = await createVonageCall({
      applicationId: credential.applicationId,
      privateKey: credential.privateKey,
      ...(credential.apiBaseUrl !== undefined ? { apiBaseUrl: credential.apiBaseUrl } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      to: request.to,
      from: request.from,
      ncco: vonageStreamNcco({ mediaBaseUrl: node.mediaBaseUrl, publicBaseUrl: deps.publicBaseUrl }, context),
      eventUrl: vonageEventUrl(deps.publicBaseUrl, context.id),
    });
  } catch (error) {
    const failureClass = error instanceof VonageApiError ? error.code : 'INTERNAL';
    try {
      await stores.callContexts.updateStatus(context.id, { status: 'failed', callStatus: 'failed', failureClass, failureReason: error instanceof Error ? error.message : String(error) }, 'pending');
      await stores.conversations.end(conversation.id, { status: 'failed', disconnectReason: `vonage refused the call (${failureClass})` });
    } catch (storeError) {
      log.error('could not mark a refused outbound call failed', { callId: context.id, conversationId: conversation.id, error: String(storeError) });
    }
    if (!(error instanceof VonageApiError)) throw error;
    log.warn('vonage refused an outbound call', { callId: context.id, code: error.code, httpStatus: error.httpStatus });
    throw vonageApiError(error, { callId: context.id, conversationId: conversation.id });
  }

  // Any status: an event may already have moved the context on; the uuid still belongs to it.
  const updated = await stores.callContexts.updateStatus(context.id, { channelId: placed.uuid }, {});
  node.prewarm?.(context.id);
  const status = updated.outcome === 'unknown' ? placed.status : updated.context.callStatus;
  return c.json({ callId: context.id, conversationId: conversation.id, providerCallId: placed.uuid, status }, 201);
}

function vonageApiError(error: VonageApiError, call: { callId: string; conversationId: string }): ApiError {
  const message = error.message.startsWith(`${error.code}: `) ? error.message.slice(error.code.length + 2) : error.message;
  const details = { ...call, retryable: error.retryable, ...(error.httpStatus !== undefined ? { vonageStatus: error.httpStatus } : {}) };
  const mayHaveDialled = ' (Vonage may still have placed the call; its media stream would be refused)';
  let status: ContentfulStatusCode;
  let text = message;
  const headers: Record<string, string> = {};
  switch (error.kind) {
    case 'auth':
    case 'bad-request':
      status = 400;
      break;
    case 'rate-limit':
      status = 429;
      headers['Retry-After'] = '5';
      break;
    case 'timeout':
      status = 504;
      text += mayHaveDialled;
      break;
    default:
      status = 502;
      if (error.code === 'VONAGE_NETWORK') text += mayHaveDialled;
  }
  return new ApiError(status, error.code, text, details, headers);
}
