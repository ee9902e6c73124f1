import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { createExotelCall, ExotelApiError, type ExotelCallResource } from '../../shared/telephony/exotel-rest';
import type { AppStores } from '../app';
import { ApiError, silentLogger, type AppLogger } from '../errors';
import { admitOutboundCall, createCallRecords } from './call-records';
import { exotelStatusCallbackUrl, exotelStreamUrl, resolveExotelCredential } from './exotel';
import type { CallHooks, PinnedAssistant } from './twilio';

/**
 * `POST /v1/calls` with `"provider": "exotel"` (edge/routes/calls.ts checks the body, the assistant and the
 * project, then hands over here): Exotel's Connect Voice AI call (shared/telephony/exotel-rest.ts) dials
 * `to` from the ExoPhone `from` (or the credential's `callerId`) and, once answered, opens our media socket
 * `{media base}/v1/talk/exotel/ctx/{callId}` directly; status goes to `{PUBLIC_BASE_URL}/v1/talk/exotel/ctx/{callId}/event`.
 * A refusal fails the context and the conversation and says why (401/403 → 400 `EXOTEL_AUTH`, other 4xx →
 * 400 `EXOTEL_REJECTED`, 429, 5xx/network → 502, time-out → 504).
 */
export interface ExotelCallDeps extends CallHooks {
  readonly stores: AppStores;
  readonly publicBaseUrl: string;
}

export interface ExotelCallOptions {
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
  readonly log?: AppLogger;
  /** Which `apiBaseUrl` a stored exotel credential may name. Default: https Exotel API hosts only (tests allow a fake). */
  readonly allowApiBaseUrl?: (url: string) => boolean;
}

/** https://api.exotel.com, https://api.in.exotel.com and other https `*.exotel.com` API hosts. */
export function isExotelApiUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && /^([a-z0-9-]+\.)*exotel\.com$/.test(u.hostname) && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

export interface ExotelCallRequest extends PinnedAssistant {
  readonly to: string;
  readonly from?: string;
  readonly variables?: Readonly<Record<string, string>>;
}

export async function placeExotelCall(
  deps: ExotelCallDeps,
  call: ExotelCallRequest,
  options: ExotelCallOptions = {},
): Promise<{ status: ContentfulStatusCode; body: { callId: string; conversationId: string; providerCallId: string; status: string } }> {
  const { stores } = deps;
  const log = options.log ?? silentLogger;
  const credential = await resolveExotelCredential(stores.credentials, call.projectId);
  if (!credential) {
    throw new ApiError(400, 'EXOTEL_CREDENTIAL_MISSING', 'the project has no exotel credential {accountSid, apiKey, apiToken}: PUT /v1/credentials/<name> with provider "exotel" first');
  }
  if (credential.apiBaseUrl !== undefined && !(options.allowApiBaseUrl ?? isExotelApiUrl)(credential.apiBaseUrl)) {
    throw new ApiError(400, 'EXOTEL_API_BASE_URL_REFUSED', "the exotel credential's apiBaseUrl must be an https Exotel API URL (e.g. https://api.in.exotel.com)");
  }
  const callerId = call.from ?? credential.callerId;
  if (!callerId) throw new ApiError(400, 'EXOTEL_CALLER_ID_MISSING', 'give "from" (your ExoPhone) or store "callerId" in the exotel credential');
  const pinned = { projectId: call.projectId, assistantId: call.assistantId, assistantVersion: call.assistantVersion };
  await admitOutboundCall(deps, pinned);
  const node = await deps.chooseMediaNode(pinned);
  if (!node) throw new ApiError(503, 'NO_MEDIA_NODE', 'no live media node has room for a call right now; retry shortly', {}, { 'Retry-After': '5' });

  const { conversation, context } = await createCallRecords(stores, {
    ...pinned,
    channel: 'exotel',
    direction: 'outbound',
    callStatus: 'queued',
    caller: callerId,
    callee: call.to,
    metadata: { from: callerId, to: call.to },
    ...(call.variables ? { variables: call.variables } : {}),
  });

  let placed: ExotelCallResource;
  try {
    placed = await createExotelCall({
      accountSid: credential.accountSid,
      apiKey: credential.apiKey,
      apiToken: credential.apiToken,
      ...(credential.apiBaseUrl !== undefined ? { apiBaseUrl: credential.apiBaseUrl } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      to: call.to,
      callerId,
      streamUrl: exotelStreamUrl(node.mediaBaseUrl, context.id, credential.sampleRateHz),
      statusCallback: exotelStatusCallbackUrl(deps.publicBaseUrl, context.id, credential),
      customField: context.id,
    });
  } catch (error) {
    const failureClass = error instanceof ExotelApiError ? error.code : 'INTERNAL';
    try {
      await stores.callContexts.updateStatus(context.id, { status: 'failed', callStatus: 'failed', failureClass, failureReason: error instanceof Error ? error.message : String(error) }, 'pending');
      await stores.conversations.end(conversation.id, { status: 'failed', disconnectReason: `exotel refused the call (${failureClass})` });
    } catch (storeError) {
      log.error('could not mark a refused outbound call failed', { callId: context.id, error: String(storeError) });
    }
    if (!(error instanceof ExotelApiError)) throw error;
    log.warn('exotel refused an outbound call', { callId: context.id, code: error.code, httpStatus: error.httpStatus });
    const details = { callId: context.id, conversationId: conversation.id, retryable: error.retryable, ...(error.httpStatus !== undefined ? { exotelStatus: error.httpStatus } : {}) };
    const message = error.message.startsWith(`${error.code}: `) ? error.message.slice(error.code.length + 2) : error.message;
    const status: ContentfulStatusCode = error.kind === 'auth' || error.kind === 'bad-request' ? 400 : error.kind === 'rate-limit' ? 429 : error.kind === 'timeout' ? 504 : 502;
    throw new ApiError(status, error.code, message, details, status === 429 ? { 'Retry-After': '5' } : {});
  }
  const updated = await stores.callContexts.updateStatus(context.id, { channelId: placed.callSid }, {});
  node.prewarm?.(context.id);
  const status = updated.outcome === 'unknown' ? placed.status : updated.context.callStatus;
  return { status: 201, body: { callId: context.id, conversationId: conversation.id, providerCallId: placed.callSid, status } };
}
