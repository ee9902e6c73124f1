import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import type { CallContext } from '../../shared/store/call-contexts';
import type { Conversation } from '../../shared/store/conversations';
import { ALL_TWILIO_STATUS_CALLBACK_EVENTS, createTwilioCall, TwilioApiError, type TwilioCallResource } from '../../shared/telephony/twilio-rest';
import type { AppEnv } from '../app';
import { assertSameProject, projectOf } from '../auth';
import { ApiError, notFound, silentLogger, type AppLogger } from '../errors';
import { readJson } from '../validation';
import { placeVonageCall } from './vonage-calls';
import { placeExotelCall } from './exotel-calls';
import { createTwilioCallRecords, resolveTwilioCredential, twilioMediaPath, twilioStreamTwiml, type TwilioRouteDeps } from './twilio';
import { admitOutboundCall } from './call-records';

/**
 * Outbound calls: `POST /v1/calls` (project key, or admin key + X-Project-Id)
 *
 *   { "assistantId": "…", "provider": "twilio", "to": "+14155550123", "from": "+14155550100", "variables": { "name": "Ada" } }
 *   → 201 { "callId": "<call context id>", "conversationId": "…", "providerCallId": "CA…", "status": "queued" }
 *
 * Checks the assistant (404 unknown, 403 another project's), the project's twilio credential (400 without
 * one), whether the assistant can take a call (400 `ASSISTANT_NOT_CALLABLE` naming what is missing) and
 * whether this node admits it (503 `AT_CAPACITY`), then which media node carries it (503 `NO_MEDIA_NODE` when
 * none can), the same hooks as the inbound webhook. Then creates the
 * conversation and the call context (outbound, queued) and asks Twilio's REST API (`Calls.json`) to dial,
 * with inline TwiML `<Connect><Stream url="{media base}/v1/talk/twilio/ctx/{callId}">` (the document the
 * inbound webhook answers) and a per-call status callback `{PUBLIC_BASE_URL}/v1/talk/twilio/ctx/{callId}/event`
 * for every status event. Twilio's CallSid is stored as the context's channel id.
 *
 * When Twilio refuses, the context and the conversation are marked failed (nothing waits for a media
 * stream that will not come) and the answer says why, with Twilio's `code`, `moreInfo` and `retryable`:
 * - credential refused (Twilio 401/403) → 400 `TWILIO_AUTH` ("check the project's twilio credential");
 * - request refused (e.g. Twilio 21211, an invalid `To`) → 400 `TWILIO_REJECTED`;
 * - rate limit → 429 `TWILIO_RATE_LIMIT`; Twilio down, unreachable, unreadable → 502; time-out → 504.
 *   After a time-out or a network failure Twilio may still have placed the call: its media stream is then
 *   refused (the context failed), so the callee hears the call end rather than a silent line.
 */

/** E.164: "+", country code, subscriber number; at most 15 digits. Spaces, dashes, dots and parentheses are dropped. */
const E164 = /^\+[1-9]\d{1,14}$/;
const VARIABLE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_VARIABLES = 64;
const MAX_VARIABLE_LENGTH = 4000;

const PhoneNumber = z
  .string()
  .transform((value) => value.replace(/[\s().-]/g, ''))
  .pipe(z.string().regex(E164, 'an E.164 phone number such as +14155550123'));

export const CreateCallBody = z.strictObject({
  assistantId: z.string().min(1).max(100),
  provider: z.enum(['twilio', 'vonage', 'exotel', 'sip'], 'one of "twilio", "vonage", "exotel", "sip"'),
  /** provider `sip`: the trunk to call through (PUT /v1/sip/trunks/:name); default the project's only outbound trunk. */
  trunk: z.string().min(1).max(64).optional(),
  to: PhoneNumber,
  /** The caller id; required but for `sip`, where the trunk's `fromUser` stands in. */
  from: PhoneNumber.optional(),
  /** Fill the assistant's `{{name}}` placeholders for this call (over the assistant's own defaults). */
  variables: z
    .record(z.string(), z.string().max(MAX_VARIABLE_LENGTH, `at most ${MAX_VARIABLE_LENGTH} characters`))
    .superRefine((variables, ctx) => {
      const names = Object.keys(variables);
      if (names.length > MAX_VARIABLES) ctx.addIssue({ code: 'custom', message: `at most ${MAX_VARIABLES} variables` });
      for (const name of names) {
        if (!VARIABLE_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'variable names are 1 to 64 letters, digits, "_", "." or "-"' });
      }
    })
    .optional(),
});
export type CreateCallBody = z.output<typeof CreateCallBody>;

export interface CallRouteOptions {
  /** For Twilio's REST API; default the global fetch (tests inject a fake). */
  readonly fetch?: typeof fetch;
  /** Per Twilio request; default 10 s (shared/telephony/twilio-rest.ts). */
  readonly requestTimeoutMs?: number;
  readonly log?: AppLogger;
  /**
   * Which `apiBaseUrl` a stored twilio credential may point the REST client at. Default: https Twilio hosts
   * only — otherwise a project key could make the server send its Basic auth to any URL. Tests allow a fake.
   */
  readonly allowApiBaseUrl?: (url: string) => boolean;
  /** The same for a vonage credential's apiBaseUrl (default: https Vonage API hosts only). */
  readonly allowVonageApiBaseUrl?: (url: string) => boolean;
  /** The same for an exotel credential's apiBaseUrl (default: https Exotel API hosts only). */
  readonly allowExotelApiBaseUrl?: (url: string) => boolean;
  /**
   * Direct SIP calls (provider `sip`): a media node's SIP server places the INVITE; absent (the edge, SIP_PORT
   * off): such calls are refused with SIP_NOT_AVAILABLE. Throws ApiError for what the client can fix.
   */
  readonly placeSipCall?: (call: SipCallRequest) => Promise<{ context: CallContext; conversation: Conversation }>;
}

export interface SipCallRequest {
  readonly projectId: string;
  readonly assistantId: string;
  readonly assistantVersion: number;
  readonly to: string;
  readonly from?: string;
  readonly trunk?: string;
  readonly variables?: Readonly<Record<string, string>>;
}

/** https://api.twilio.com and Twilio's regional API hosts. */
export function isTwilioApiUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && (u.hostname === 'api.twilio.com' || /^api\.[a-z0-9-]+\.twilio\.com$/.test(u.hostname));
  } catch {
    return false;
  }
}

/** `deps` is read live (the host's `publicBaseUrl` may be a getter), so pass the inbound webhook's deps as they are. */
export function callRoutes(deps: TwilioRouteDeps, options: CallRouteOptions = {}): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const { stores } = deps;
  const log = options.log ?? silentLogger;

  /** Nothing may wait for this call any more: the context can never be claimed, the conversation is over. */
  async function markFailed(context: CallContext, conversation: Conversation, error: unknown): Promise<void> {
    const failureClass = error instanceof TwilioApiError ? error.code : 'INTERNAL';
    const failureReason = error instanceof Error ? error.message : String(error);
    try {
      await stores.callContexts.updateStatus(context.id, { status: 'failed', callStatus: 'failed', failureClass, failureReason }, 'pending');
      await stores.conversations.end(conversation.id, { status: 'failed', disconnectReason: `twilio refused the call (${failureClass})` });
    } catch (storeError) {
      log.error('could not mark a refused outbound call failed', { callId: context.id, conversationId: conversation.id, error: String(storeError) });
    }
  }

  routes.post('/', async (c) => {
    const projectId = await projectOf(c, stores.projects);
    const body = await readJson(c, CreateCallBody);
    const assistant = await stores.assistants.get(body.assistantId);
    if (!assistant) throw notFound('ASSISTANT_NOT_FOUND', `assistant ${body.assistantId} does not exist`);
    assertSameProject(projectId, assistant.projectId, `assistant ${body.assistantId}`);
    if (body.provider !== 'sip') {
      if (body.trunk !== undefined) throw new ApiError(400, 'VALIDATION_FAILED', '"trunk" applies to provider "sip" only');
      if (body.from === undefined) throw new ApiError(400, 'VALIDATION_FAILED', `"from" (the caller id, E.164) is required for provider "${body.provider}"`);
    }
    if (body.provider === 'exotel') {
      // `from` is the ExoPhone; the call goes straight to the media socket (edge/routes/exotel-calls.ts).
      const placed = await placeExotelCall(
        deps,
        { projectId, assistantId: assistant.id, assistantVersion: assistant.version, to: body.to, from: body.from!, ...(body.variables ? { variables: body.variables } : {}) },
        {
          log,
          ...(options.fetch ? { fetch: options.fetch } : {}),
          ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
          ...(options.allowExotelApiBaseUrl ? { allowApiBaseUrl: options.allowExotelApiBaseUrl } : {}),
        },
      );
      return c.json(placed.body, placed.status);
    }
    if (body.provider === 'sip') {
      if (!options.placeSipCall) throw new ApiError(400, 'SIP_NOT_AVAILABLE', 'SIP calls are placed by a media node with SIP enabled (SIP_PORT); this host has none');
      const pinned = { projectId, assistantId: assistant.id, assistantVersion: assistant.version };
      await admitOutboundCall(deps, pinned);
      const placed = await options.placeSipCall({
        ...pinned,
        to: body.to,
        ...(body.from !== undefined ? { from: body.from } : {}),
        ...(body.trunk !== undefined ? { trunk: body.trunk } : {}),
        ...(body.variables ? { variables: body.variables } : {}),
      });
      return c.json({ callId: placed.context.id, conversationId: placed.conversation.id, providerCallId: null, status: placed.context.callStatus }, 201);
    }
    if (body.provider === 'vonage') {
      return placeVonageCall(
        c,
        deps,
        {
          log,
          ...(options.fetch ? { fetch: options.fetch } : {}),
          ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
          ...(options.allowVonageApiBaseUrl ? { allowApiBaseUrl: options.allowVonageApiBaseUrl } : {}),
        },
        { projectId, assistantId: assistant.id, assistantVersion: assistant.version, to: body.to, from: body.from!, ...(body.variables ? { variables: body.variables } : {}) },
      );
    }

    const credential = await resolveTwilioCredential(stores.credentials, projectId);
    if (!credential) {
      throw new ApiError(400, 'TWILIO_CREDENTIAL_MISSING', 'the project has no twilio credential {accountSid, authToken}: PUT /v1/credentials/<name> with provider "twilio" first');
    }
    if (credential.apiBaseUrl !== undefined && !(options.allowApiBaseUrl ?? isTwilioApiUrl)(credential.apiBaseUrl)) {
      throw new ApiError(400, 'TWILIO_API_BASE_URL_REFUSED', "the twilio credential's apiBaseUrl must be an https Twilio API URL (e.g. https://api.twilio.com)");
    }
    const pinned = { projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    await admitOutboundCall(deps, pinned);
    const node = await deps.chooseMediaNode(pinned);
    if (!node) {
      throw new ApiError(503, 'NO_MEDIA_NODE', 'no live media node has room for a call right now (all full, draining or not heartbeating); retry shortly', {}, { 'Retry-After': '5' });
    }

    const { conversation, context } = await createTwilioCallRecords(stores, {
      ...pinned,
      direction: 'outbound',
      from: body.from!,
      to: body.to,
      callStatus: 'queued',
      ...(body.variables ? { variables: body.variables } : {}),
    });

    let placed: TwilioCallResource;
    try {
      placed = await createTwilioCall({
        accountSid: credential.accountSid,
        authToken: credential.authToken,
        ...(credential.apiBaseUrl !== undefined ? { apiBaseUrl: credential.apiBaseUrl } : {}),
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
        to: body.to,
        from: body.from!,
        twiml: twilioStreamTwiml(node.mediaBaseUrl, context),
        statusCallback: `${deps.publicBaseUrl}${twilioMediaPath(context.id)}/event`,
        statusCallbackEvents: ALL_TWILIO_STATUS_CALLBACK_EVENTS,
      });
    } catch (error) {
      await markFailed(context, conversation, error);
      if (!(error instanceof TwilioApiError)) throw error;
      log.warn('twilio refused an outbound call', { callId: context.id, code: error.code, httpStatus: error.httpStatus, twilioCode: error.twilioCode });
      throw twilioApiError(error, { callId: context.id, conversationId: conversation.id });
    }

    // Any status: a status callback may already have moved the context on (even failed it); the sid still belongs to it.
    const updated = await stores.callContexts.updateStatus(context.id, { channelId: placed.callSid }, {});
    node.prewarm?.(context.id);
    const status = updated.outcome === 'unknown' ? placed.status : updated.context.callStatus;
    return c.json({ callId: context.id, conversationId: conversation.id, providerCallId: placed.callSid, status }, 201);
  });

  return routes;
}

/** Twilio's refusal as this API's error (status by what the client can do about it), naming the failed call. */
function twilioApiError(error: TwilioApiError, call: { callId: string; conversationId: string }): ApiError {
  const message = error.message.startsWith(`${error.code}: `) ? error.message.slice(error.code.length + 2) : error.message;
  const details = {
    ...call,
    retryable: error.retryable,
    ...(error.httpStatus !== undefined ? { twilioStatus: error.httpStatus } : {}),
    ...(error.twilioCode !== undefined ? { twilioCode: error.twilioCode } : {}),
    ...(error.moreInfo !== undefined ? { moreInfo: error.moreInfo } : {}),
  };
  let status: ContentfulStatusCode;
  let text = message;
  const headers: Record<string, string> = {};
  switch (error.kind) {
    case 'auth': {
      status = 400;
      const said = `${error.httpStatus ?? 'refused'}${error.twilioCode !== undefined ? `, Twilio error ${error.twilioCode}` : ''}`;
      text = `Twilio refused the project's twilio credential (${said}): check the project's twilio credential (accountSid, authToken) and store the right one with PUT /v1/credentials/<name>`;
      break;
    }
    case 'rate-limit':
      status = 429;
      headers['Retry-After'] = '5';
      break;
    case 'timeout':
      status = 504;
      text = `${message} (Twilio may still have placed the call; its media stream would be refused)`;
      break;
    case 'bad-request':
      status = 400;
      break;
    default:
      status = 502;
      if (error.code === 'TWILIO_NETWORK') text = `${message} (Twilio may still have placed the call; its media stream would be refused)`;
  }
  return new ApiError(status, error.code, text, details, headers);
}
