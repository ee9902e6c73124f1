import { Hono, type Context } from 'hono';
import { isTerminalCallStatus, type CallStatus } from '../../shared/contracts/call-status';
import { isProtocolError } from '../../shared/telephony/protocol-error';
import { verifyTwilioSignature } from '../../shared/telephony/twilio-signature';
import { parseTwilioStatusCallback, parseTwilioVoiceWebhook } from '../../shared/telephony/twilio-webhooks';
import { connectStreamTwiml, sayAndHangupTwiml } from '../../shared/telephony/twiml';
import type { AppEnv, AppStores } from '../app';
import { ApiError } from '../errors';

export interface TwilioRouteDeps {
  readonly stores: AppStores;
  /** The public origin Twilio calls (PUBLIC_BASE_URL): signatures are checked against it, never the socket. */
  readonly publicBaseUrl: string;
  /** Where Twilio should open the media stream (this node's own public URL, https → wss). */
  mediaBaseUrl(): string;
  /** Why this assistant cannot take a call now (a provider missing, a credential absent), if it cannot. */
  checkCallable?(call: { projectId: string; assistantId: string; assistantVersion: number }): Promise<string | undefined>;
  /** False when the node or the project is at capacity: the webhook answers 503 so Twilio can fail over. */
  admitCall?(projectId: string): Promise<boolean>;
  /** Resources for the call were created: warm up STT/TTS and the greeting while the phone rings. */
  prewarm?(contextId: string): void;
}

interface TwilioSecret {
  readonly accountSid: string;
  readonly authToken: string;
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

  async function twilioSecret(projectId: string): Promise<TwilioSecret> {
    const stored = await stores.credentials.resolve(projectId, 'twilio');
    let parsed: Partial<TwilioSecret> | undefined;
    try {
      parsed = stored ? (JSON.parse(stored) as Partial<TwilioSecret>) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed?.authToken || !parsed.accountSid) {
      throw new ApiError(403, 'TWILIO_CREDENTIAL_MISSING', 'the project has no twilio credential {accountSid, authToken}: PUT /v1/credentials/<name> with provider "twilio"');
    }
    return { accountSid: parsed.accountSid, authToken: parsed.authToken };
  }

  /** The form body, after checking Twilio signed exactly this request with the project's token. */
  async function signedForm(c: Context<AppEnv>, projectId: string): Promise<{ form: URLSearchParams; secret: TwilioSecret }> {
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
    if (deps.admitCall && !(await deps.admitCall(assistant.projectId))) {
      return xml(c, sayAndHangupTwiml('Sorry, all lines are busy. Please call again later.'), 503);
    }
    const conversation = await stores.conversations.create({ ...pinned, channel: 'twilio', direction: call.direction ?? 'inbound', status: 'ringing', metadata: { callSid: call.callSid, from: call.from, to: call.to } });
    const context = await stores.callContexts.create({
      ...pinned,
      conversationId: conversation.id,
      provider: 'twilio',
      direction: call.direction ?? 'inbound',
      caller: call.from,
      callee: call.to,
      channelId: call.callSid,
      callStatus: call.callStatus ?? 'ringing',
    });
    deps.prewarm?.(context.id);
    return xml(
      c,
      connectStreamTwiml({
        // The context id travels in the path, never in a query string.
        streamUrl: `${deps.mediaBaseUrl()}/v1/talk/twilio/ctx/${context.id}`,
        parameters: { conversationId: conversation.id },
      }),
    );
  });

  async function recordStatus(c: Context<AppEnv>, contextId: string | undefined, callSid: string | undefined) {
    const context = contextId ? await stores.callContexts.get(contextId) : callSid ? await stores.callContexts.getByChannelId('twilio', callSid) : undefined;
    if (!context) throw new ApiError(404, 'CALL_CONTEXT_NOT_FOUND', 'no call matches this status callback');
    const { form } = await signedForm(c, context.projectId);
    const event = parseTwilioStatusCallback(form);
    if (isProtocolError(event)) throw new ApiError(400, 'TWILIO_STATUS_INVALID', event.message, { issues: event.issues.map((message) => ({ message })) });
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
 * its media ever connected also fails the context, so the waiting context can never be claimed.
 */
export async function applyCallStatus(stores: Pick<AppStores, 'callContexts'>, contextId: string, status: CallStatus | undefined): Promise<void> {
  if (!status) return;
  const failedBeforeMedia = isTerminalCallStatus(status) && status !== 'completed';
  if (failedBeforeMedia) {
    const result = await stores.callContexts.updateStatus(contextId, { status: status === 'canceled' ? 'canceled' : 'failed', callStatus: status, failureReason: `carrier reported ${status}` }, 'pending');
    if (result.outcome === 'updated') return;
  }
  // The carrier's status is recorded whatever the context's own state (a call the media session already ended
  // still gets its final `completed`); the store never changes a terminal call status.
  await stores.callContexts.updateStatus(contextId, { callStatus: status }, { status: ['pending', 'claimed', 'completed', 'failed', 'canceled'] });
}
