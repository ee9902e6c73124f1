import { Hono, type Context } from 'hono';
import { isTerminalCallStatus, type CallDirection, type CallStatus } from '../../shared/contracts/call-status';
import type { CallContext } from '../../shared/store/call-contexts';
import type { Conversation } from '../../shared/store/conversations';
import type { CredentialStore } from '../../shared/store/credentials';
import { isProtocolError } from '../../shared/telephony/protocol-error';
import { verifyTwilioSignature } from '../../shared/telephony/twilio-signature';
import { parseTwilioStatusCallback, parseTwilioVoiceWebhook } from '../../shared/telephony/twilio-webhooks';
import { connectStreamTwiml, sayAndHangupTwiml } from '../../shared/telephony/twiml';
import type { AppEnv, AppStores } from '../app';
import { ApiError } from '../errors';
import { createCallRecords } from './call-records';

/** The assistant version a call runs (pinned when the call is created). */
export interface PinnedAssistant {
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
}

/** The media node chosen to carry a new phone call. */
export interface MediaNodeChoice {
  /** Where the carrier opens the media stream: the node's own public URL, https → wss. */
  readonly mediaBaseUrl: string;
  /** The call's records exist: have that node warm up STT/TTS and the greeting while the phone rings. */
  prewarm?(contextId: string): void;
}

/** What the host decides about a new call, shared by the inbound webhook and `POST /v1/calls`. */
export interface CallHooks {
  /**
   * The node for this call: on a media node, itself; on the edge, a live node with room picked from the
   * registry. Undefined when no node can take it: the call is refused with 503 before anything is stored.
   */
  chooseMediaNode(call: PinnedAssistant): Promise<MediaNodeChoice | undefined>;
  /** Why this assistant cannot take a call now (a provider missing, a credential absent), if it cannot. */
  checkCallable?(call: PinnedAssistant): Promise<string | undefined>;
  /** False when the node or the project is at capacity: new calls are refused with 503. */
  admitCall?(projectId: string): Promise<boolean>;
}

export interface TwilioRouteDeps extends CallHooks {
  readonly stores: AppStores;
  /** The public origin Twilio calls (PUBLIC_BASE_URL): signatures are checked against it, never the socket. */
  readonly publicBaseUrl: string;
}

/**
 * A project's twilio credential: the secret fields stored with `PUT /v1/credentials/:name`
 * (`{ provider: "twilio", accountSid, authToken, apiBaseUrl? }`); `apiBaseUrl` points the REST client
 * elsewhere than api.twilio.com (a local fake in tests).
 */
export interface TwilioCredential {
  readonly accountSid: string;
  readonly authToken: string;
  readonly apiBaseUrl?: string;
}

/** The project's default twilio credential, or undefined when it has none (or it lacks accountSid/authToken). */
export async function resolveTwilioCredential(credentials: Pick<CredentialStore, 'resolve'>, projectId: string): Promise<TwilioCredential | undefined> {
  const stored = await credentials.resolve(projectId, 'twilio');
  let parsed: Record<string, unknown> | undefined;
  try {
    const value: unknown = stored ? JSON.parse(stored) : undefined;
    parsed = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    parsed = undefined;
  }
  const { accountSid, authToken, apiBaseUrl } = parsed ?? {};
  if (typeof accountSid !== 'string' || !accountSid || typeof authToken !== 'string' || !authToken) return undefined;
  return { accountSid, authToken, ...(typeof apiBaseUrl === 'string' && apiBaseUrl ? { apiBaseUrl } : {}) };
}

/** The media WebSocket path of a call context (the id travels in the path, never in a query string). */
export const twilioMediaPath = (contextId: string) => `/v1/talk/twilio/ctx/${contextId}`;

/** `<Connect><Stream>` to the context's media path on `mediaBaseUrl`, with the conversation id as a parameter. */
export function twilioStreamTwiml(mediaBaseUrl: string, context: Pick<CallContext, 'id' | 'conversationId'>): string {
  return connectStreamTwiml({ streamUrl: `${mediaBaseUrl}${twilioMediaPath(context.id)}`, parameters: { conversationId: context.conversationId } });
}

export interface TwilioCallRecordsInput extends PinnedAssistant {
  readonly direction: CallDirection;
  readonly from: string;
  readonly to: string;
  /** Twilio's CallSid, when known already (inbound); an outbound call gets it from the REST answer. */
  readonly callSid?: string;
  /** The call context's carrier status. */
  readonly callStatus: CallStatus;
  /** The conversation's status; default `callStatus`. */
  readonly conversationStatus?: CallStatus;
  readonly variables?: Readonly<Record<string, string>>;
}

/** The conversation and the call context of a new Twilio call (both carrying the call's status). */
export async function createTwilioCallRecords(stores: Pick<AppStores, 'conversations' | 'callContexts'>, input: TwilioCallRecordsInput): Promise<{ conversation: Conversation; context: CallContext }> {
  return createCallRecords(stores, {
    projectId: input.projectId,
    assistantId: input.assistantId,
    assistantVersion: input.assistantVersion,
    channel: 'twilio',
    direction: input.direction,
    callStatus: input.callStatus,
    ...(input.conversationStatus !== undefined ? { conversationStatus: input.conversationStatus } : {}),
    caller: input.from,
    callee: input.to,
    ...(input.callSid !== undefined ? { channelId: input.callSid } : {}),
    metadata: { ...(input.callSid !== undefined ? { callSid: input.callSid } : {}), from: input.from, to: input.to },
    ...(input.variables ? { variables: input.variables } : {}),
  });
}

const xml = (c: Context, body: string, status: 200 | 503 = 200) => c.body(body, status, { 'Content-Type': 'text/xml; charset=utf-8' });

/**
 * Twilio's side of the HTTP app: the number's Voice URL (answers TwiML that opens the media stream at
 * `/v1/talk/twilio/ctx/{contextId}`) and the status callbacks. Every request is checked against the
 * project's Twilio auth token (X-Twilio-Signature over PUBLIC_BASE_URL + path + query, with and without the
 * default port); a wrong or missing signature is 403.
 */
export function twilioRoutes(deps: TwilioRouteDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;

  async function twilioSecret(projectId: string): Promise<TwilioCredential> {
    const secret = await resolveTwilioCredential(stores.credentials, projectId);
    if (!secret) {
      throw new ApiError(403, 'TWILIO_CREDENTIAL_MISSING', 'the project has no twilio credential {accountSid, authToken}: PUT /v1/credentials/<name> with provider "twilio"');
    }
    return secret;
  }

  /** The form body, after checking Twilio signed exactly this request with the project's token. */
  async function signedForm(c: Context<AppEnv>, projectId: string): Promise<{ form: URLSearchParams; secret: TwilioCredential }> {
    const secret = await twilioSecret(projectId);
    const form = new URLSearchParams(await c.req.text());
    const url = new URL(c.req.url);
    const ok = await verifyTwilioSignature({
      authToken: secret.authToken,
      url: `${deps.publicBaseUrl}${url.pathname}${url.search}`,
      params: form,
      signature: c.req.header('x-twilio-signature'),
    });
    if (!ok) throw new ApiError(403, 'TWILIO_SIGNATURE_INVALID', 'X-Twilio-Signature does not match this request (check PUBLIC_BASE_URL and the project\'s twilio auth token)');
    return { form, secret };
  }

  routes.post('/call/:assistantId', async (c) => {
    const assistant = await stores.assistants.get(c.req.param('assistantId'));
    if (!assistant) throw new ApiError(404, 'ASSISTANT_NOT_FOUND', 'no such assistant');
    const { form, secret } = await signedForm(c, assistant.projectId);
    const call = parseTwilioVoiceWebhook(form);
    if (isProtocolError(call)) throw new ApiError(400, 'TWILIO_WEBHOOK_INVALID', call.message, { issues: call.issues.map((message) => ({ message })) });
    if (call.accountSid !== secret.accountSid) throw new ApiError(403, 'TWILIO_ACCOUNT_MISMATCH', 'the call belongs to another Twilio account than the project\'s credential');
    const pinned = { projectId: assistant.projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) return xml(c, sayAndHangupTwiml(`Sorry, this assistant cannot take calls right now. ${unusable}`));
    const busy = () => xml(c, sayAndHangupTwiml('Sorry, all lines are busy. Please call again later.'), 503);
    if (deps.admitCall && !(await deps.admitCall(assistant.projectId))) return busy();
    const node = await deps.chooseMediaNode(pinned);
    if (!node) return busy();
    const { context } = await createTwilioCallRecords(stores, {
      ...pinned,
      direction: call.direction,
      from: call.from,
      to: call.to,
      callSid: call.callSid,
      callStatus: call.callStatus,
      conversationStatus: 'ringing',
    });
    node.prewarm?.(context.id);
    return xml(c, twilioStreamTwiml(node.mediaBaseUrl, context));
  });

  async function recordStatus(c: Context<AppEnv>, contextId: string | undefined, callSid: string | undefined) {
    const context = contextId ? await stores.callContexts.get(contextId) : callSid ? await stores.callContexts.getByChannelId('twilio', callSid) : undefined;
    if (!context) throw new ApiError(404, 'CALL_CONTEXT_NOT_FOUND', 'no call matches this status callback');
    const { form, secret } = await signedForm(c, context.projectId);
    const event = parseTwilioStatusCallback(form);
    if (isProtocolError(event)) throw new ApiError(400, 'TWILIO_STATUS_INVALID', event.message, { issues: event.issues.map((message) => ({ message })) });
    // A valid signature proves the sender holds the auth token, not that this status is about this call.
    if (event.accountSid !== undefined && event.accountSid !== secret.accountSid) {
      throw new ApiError(403, 'TWILIO_ACCOUNT_MISMATCH', "the status callback names another Twilio account than the project's credential");
    }
    if (context.channelId !== undefined && context.channelId !== event.callSid) {
      throw new ApiError(409, 'TWILIO_CALL_MISMATCH', `the status callback is about call ${event.callSid}, not this context's call`);
    }
    // Stored first (deduplicated by Twilio's event id); the status update below is safe to repeat.
    await stores.conversations.recordCallEvent({
      provider: 'twilio',
      providerEventId: event.eventId,
      status: event.status,
      raw: event.raw,
      callContextId: context.id,
      conversationId: context.conversationId,
      ...(event.occurredAtMs !== undefined ? { occurredAt: event.occurredAtMs } : {}),
    });
    await applyCallStatus(stores, context.id, event.status);
    return c.body(null, 204);
  }

  routes.post('/ctx/:contextId/event', (c) => recordStatus(c, c.req.param('contextId'), undefined));
  routes.post('/event', async (c) => {
    const callSid = new URLSearchParams(await c.req.raw.clone().text()).get('CallSid') ?? undefined;
    return recordStatus(c, undefined, callSid);
  });
  return routes;
}

/**
 * A carrier status lands on the context; a call that failed (busy, no answer, failed, canceled) before
 * its media ever connected also fails the context, so the waiting context can never be claimed, and ends
 * its conversation with that status (no media session will ever end it).
 */
export async function applyCallStatus(stores: Pick<AppStores, 'callContexts' | 'conversations'>, contextId: string, status: CallStatus | undefined): Promise<void> {
  if (!status) return;
  const failedBeforeMedia = isTerminalCallStatus(status) && status !== 'completed';
  if (failedBeforeMedia) {
    const reason = `carrier reported ${status}`;
    const result = await stores.callContexts.updateStatus(contextId, { status: status === 'canceled' ? 'canceled' : 'failed', callStatus: status, failureReason: reason }, 'pending');
    if (result.outcome === 'updated') {
      await stores.conversations.end(result.context.conversationId, { status, disconnectReason: reason });
      return;
    }
  }
  // The carrier's status is recorded whatever the context's own state (a call the media session already ended
  // still gets its final `completed`); the store never changes a terminal call status.
  await stores.callContexts.updateStatus(contextId, { callStatus: status }, { status: ['pending', 'claimed', 'completed', 'failed', 'canceled'] });
}
