import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { isTwilioApiUrl } from '../../edge/routes/calls';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { createProviderRegistry } from '../../shared/providers/registry';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { audioRuntime } from '../fakes/call';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords } from '../fakes/tones';

// Outbound calls end to end: POST /v1/calls on a real node → a local fake of Twilio's REST API (checks the
// basic auth and the Calls.json parameters) → the test then drives the call like Twilio: signed status
// callbacks to the per-call StatusCallback, the media stream the inline TwiML names (the carrier simulator).

const ACCOUNT_SID = `AC${'b'.repeat(32)}`;
const AUTH_TOKEN = 'twilio-outbound-auth-token';
const TO = '+14155550123';
const FROM = '+14155550100';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex32 = () => crypto.randomUUID().replace(/-/g, '');

interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly form: URLSearchParams;
}

interface ScriptedAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** Twilio's REST API, as far as `Calls.json` goes: checks the account's basic auth, answers like Twilio. */
async function startFakeTwilio() {
  const seen: SeenRequest[] = [];
  /** Answers to give (after the auth check) instead of a placed call, first first. */
  const next: ScriptedAnswer[] = [];
  const expectedAuth = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(text);
      seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], form });
      const reply = (status: number, body: Record<string, unknown>) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const error = (status: number, code: number, message: string) =>
        reply(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
      const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls\.json$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match) return error(404, 20404, 'The requested resource was not found');
      if (decodeURIComponent(match[1]!) !== ACCOUNT_SID || req.headers.authorization !== expectedAuth) return error(401, 20003, 'Authenticate');
      const scripted = next.shift();
      if (scripted) return reply(scripted.status, scripted.body);
      if (!form.get('To') || !form.get('From')) return error(400, 21201, 'No \'To\' number is specified');
      const sid = `CA${hex32()}`;
      return reply(201, {
        sid,
        account_sid: ACCOUNT_SID,
        to: form.get('To'),
        from: form.get('From'),
        status: 'queued',
        direction: 'outbound-api',
        api_version: '2010-04-01',
        date_created: null,
        uri: `/2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${sid}.json`,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    next,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type FakeTwilio = Awaited<ReturnType<typeof startFakeTwilio>>;

let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let twilio: FakeTwilio;
let apiKey: string;
let assistantId: string;
/** Another project, whose twilio credential has the wrong auth token. */
let otherKey: string;
let otherAssistantId: string;

function api(path: string, init: RequestInit & { key?: string | null } = {}) {
  const { key, ...rest } = init;
  const authorization: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key ?? apiKey}` };
  return fetch(`${server.url}${path}`, { ...rest, headers: { 'content-type': 'application/json', ...authorization, ...rest.headers } });
}

// "who" comes from the call's variables (the assistant's default would say "hello there").
const ASSISTANT = phoneAssistant({ name: 'Caller', prompt: 'You call people.', greeting: 'hello {{who}}', variables: { who: 'there' } });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twilio-outbound-'));
  twilio = await startFakeTwilio();
  const env = parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' });
  node = await startNode(env);
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  registerPhoneFakes(registry, () => 'okay sure');
  // The fake Twilio REST API runs on loopback; production allows only https Twilio hosts.
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, allowTwilioApiBaseUrl: (url) => url.startsWith('http://127.0.0.1:') });

  const admin = node.generatedAdminKey!;
  const project = async (name: string, authToken: string) => {
    const created = await (await api('/v1/projects', { method: 'POST', key: admin, body: JSON.stringify({ name }) })).json();
    const key = created.apiKey.key as string;
    const credential = await api('/v1/credentials/twilio-main', {
      method: 'PUT',
      key,
      body: JSON.stringify({ provider: 'twilio', accountSid: ACCOUNT_SID, authToken, apiBaseUrl: twilio.url }),
    });
    expect(credential.status).toBe(201);
    const assistant = await (await api('/v1/assistants', { method: 'POST', key, body: JSON.stringify(ASSISTANT) })).json();
    return { key, assistantId: assistant.id as string };
  };
  ({ key: apiKey, assistantId } = await project('Outbound', AUTH_TOKEN));
  ({ key: otherKey, assistantId: otherAssistantId } = await project('Wrong token', 'not-the-auth-token'));
}, 120_000);

afterAll(async () => {
  await server?.close();
  await node?.close();
  await twilio?.close();
  await rm(dir, { recursive: true, force: true });
});

async function placeCall(body: Record<string, unknown> = {}, key?: string) {
  const response = await api('/v1/calls', { method: 'POST', key, body: JSON.stringify({ assistantId, provider: 'twilio', to: TO, from: FROM, ...body }) });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field
  return { status: response.status, body: (await response.json()) as any };
}

/** Twilio posting a call status to the StatusCallback it was given, signed with the account's auth token. */
async function statusCallback(url: string, callSid: string, callStatus: string, sequenceNumber: number, extra: Record<string, string> = {}) {
  const params = {
    AccountSid: ACCOUNT_SID,
    CallSid: callSid,
    CallStatus: callStatus,
    SequenceNumber: String(sequenceNumber),
    CallbackSource: 'call-progress-events',
    Direction: 'outbound-api',
    From: FROM,
    To: TO,
    ApiVersion: '2010-04-01',
    Timestamp: new Date().toUTCString(),
    ...extra,
  };
  const signature = await signTwilioRequest({ authToken: AUTH_TOKEN, url, params });
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    body: new URLSearchParams(params).toString(),
  });
  return response.status;
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await sleep(50);
  }
  return predicate();
}

const attribute = (xml: string, pattern: RegExp) => pattern.exec(xml)?.[1]?.replace(/&amp;/g, '&');

describe('POST /v1/calls with Twilio (real node, fake Twilio REST API, simulated carrier)', () => {
  it('places the call through Calls.json, then Twilio rings, answers, streams the greeting and hangs up', async () => {
    const requestsBefore = twilio.seen.length;
    const placed = await placeCall({ to: '+1 (415) 555-0123', variables: { who: 'welcome' } });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    expect(placed.body).toEqual({ callId: expect.any(String), conversationId: expect.any(String), providerCallId: expect.stringMatching(/^CA[0-9a-f]{32}$/), status: 'queued' });
    const { callId, conversationId, providerCallId } = placed.body as { callId: string; conversationId: string; providerCallId: string };

    // What Twilio's REST API received.
    expect(twilio.seen).toHaveLength(requestsBefore + 1);
    const request = twilio.seen.at(-1)!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Calls.json`);
    expect(request.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    expect(request.contentType).toBe('application/x-www-form-urlencoded');
    expect(request.form.get('To')).toBe(TO);
    expect(request.form.get('From')).toBe(FROM);
    const twiml = request.form.get('Twiml') ?? '';
    const streamUrl = attribute(twiml, /<Stream url="([^"]+)"/);
    expect(twiml).toMatch(/^<\?xml[^>]*\?><Response><Connect><Stream url="[^"]+">.*<\/Stream><\/Connect><\/Response>$/);
    expect(streamUrl).toBe(`${server.publicBaseUrl().replace(/^http/, 'ws')}/v1/talk/twilio/ctx/${callId}`);
    expect(attribute(twiml, /<Parameter name="conversationId" value="([^"]+)"/)).toBe(conversationId);
    const callbackUrl = request.form.get('StatusCallback');
    expect(callbackUrl).toBe(`${server.publicBaseUrl()}/v1/talk/twilio/ctx/${callId}/event`);
    expect(request.form.get('StatusCallbackMethod')).toBe('POST');
    expect(request.form.getAll('StatusCallbackEvent')).toEqual(['initiated', 'ringing', 'answered', 'completed']);
    expect(request.form.has('Url')).toBe(false);

    // Created before the call was dialled, with the CallSid from Twilio's answer.
    expect(await node.stores.callContexts.get(callId)).toMatchObject({
      status: 'pending',
      direction: 'outbound',
      callStatus: 'queued',
      channelId: providerCallId,
      caller: FROM,
      callee: TO,
      conversationId,
      variables: { who: 'welcome' },
    });
    expect(await node.stores.conversations.get(conversationId)).toMatchObject({ direction: 'outbound', status: 'queued', channel: 'twilio' });

    // Twilio drives the call.
    expect(await statusCallback(callbackUrl!, providerCallId, 'ringing', 1)).toBe(204);
    expect((await node.stores.callContexts.get(callId))?.callStatus).toBe('ringing');
    expect(await statusCallback(callbackUrl!, providerCallId, 'in-progress', 2)).toBe(204);
    expect((await node.stores.callContexts.get(callId))?.callStatus).toBe('in-progress');

    const carrier = await connectTwilioCarrier({ mediaUrl: streamUrl!, callSid: providerCallId, accountSid: ACCOUNT_SID, parameters: { conversationId } });
    const heard = () => decodeWords(carrier.heardPcm(), 8000).join(' ');
    const heardGreeting = await waitFor(() => heard() === 'hello welcome', 10_000);
    expect(heardGreeting, `greeting; heard: "${heard()}", carrier ${JSON.stringify(carrier.stats)}, context ${JSON.stringify(await node.stores.callContexts.get(callId))}`).toBe(true);
    await carrier.hangUp();
    expect(await statusCallback(callbackUrl!, providerCallId, 'completed', 3, { CallDuration: '4' })).toBe(204);

    expect(await waitFor(async () => (await node.stores.callContexts.get(callId))?.status === 'completed', 5000)).toBe(true);
    expect(await node.stores.callContexts.get(callId)).toMatchObject({ status: 'completed', callStatus: 'completed', channelId: providerCallId, direction: 'outbound' });
    const events = await node.stores.conversations.callEvents({ callContextId: callId });
    expect(events.map((e) => e.status)).toEqual(['ringing', 'in-progress', 'completed']);
    expect(events.every((e) => e.conversationId === conversationId && e.provider === 'twilio')).toBe(true);

    await node.writer.flush({ timeoutMs: 5000 });
    const conversation = await api(`/v1/conversations/${conversationId}`);
    expect(conversation.status).toBe(200);
    const read = await conversation.json();
    expect(read.conversation).toMatchObject({ direction: 'outbound', status: 'completed', variables: { who: 'welcome' } });
    expect(read.messages[0]).toMatchObject({ role: 'assistant', text: 'hello welcome' });
  }, 60_000);

  it('a call nobody answers fails its context and conversation, and its media URL is refused', async () => {
    const placed = await placeCall();
    expect(placed.status).toBe(201);
    const { callId, conversationId, providerCallId } = placed.body as { callId: string; conversationId: string; providerCallId: string };
    const callbackUrl = twilio.seen.at(-1)!.form.get('StatusCallback')!;
    expect(await statusCallback(callbackUrl, providerCallId, 'ringing', 1)).toBe(204);
    expect(await statusCallback(callbackUrl, providerCallId, 'no-answer', 2)).toBe(204);
    expect(await node.stores.callContexts.get(callId)).toMatchObject({ status: 'failed', callStatus: 'no-answer' });
    expect(await node.stores.conversations.get(conversationId)).toMatchObject({ status: 'no-answer' });
    const streamUrl = `${server.publicBaseUrl().replace(/^http/, 'ws')}/v1/talk/twilio/ctx/${callId}`;
    const code = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(streamUrl);
      ws.on('close', (closeCode) => resolve(closeCode));
      ws.on('error', reject);
    });
    expect(code).toBe(4410);
  }, 30_000);

  it('a credential Twilio refuses: a clear error, and the call context and conversation are failed', async () => {
    const requestsBefore = twilio.seen.length;
    const placed = await placeCall({ assistantId: otherAssistantId }, otherKey);
    expect(twilio.seen).toHaveLength(requestsBefore + 1);
    expect(twilio.seen.at(-1)!.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:not-the-auth-token`).toString('base64')}`);
    expect(placed.status).toBe(400);
    expect(placed.body.error).toMatchObject({ code: 'TWILIO_AUTH', retryable: false, twilioStatus: 401, twilioCode: 20003, moreInfo: 'https://www.twilio.com/docs/errors/20003' });
    expect(placed.body.error.message).toContain("check the project's twilio credential");
    expect(placed.body.error.message).not.toContain('not-the-auth-token');
    const { callId, conversationId } = placed.body.error as { callId: string; conversationId: string };
    expect(await node.stores.callContexts.get(callId)).toMatchObject({ status: 'failed', callStatus: 'failed', failureClass: 'TWILIO_AUTH' });
    const conversation = await node.stores.conversations.get(conversationId);
    expect(conversation).toMatchObject({ status: 'failed', direction: 'outbound' });
    expect(conversation?.endedAt).toBeInstanceOf(Date);
  }, 30_000);

  it('maps what else Twilio answers: a refused number → 400, rate limit → 429, Twilio down → 502 (retryable)', async () => {
    twilio.next.push(
      { status: 400, body: { code: 21211, message: "The 'To' number +14155550123 is not a valid phone number.", more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 } },
      { status: 429, body: { code: 20429, message: 'Too Many Requests', more_info: 'https://www.twilio.com/docs/errors/20429', status: 429 } },
      { status: 503, body: { code: 20503, message: 'Service Unavailable', more_info: 'https://www.twilio.com/docs/errors/20503', status: 503 } },
    );
    const rejected = await placeCall();
    expect(rejected.status).toBe(400);
    expect(rejected.body.error).toMatchObject({ code: 'TWILIO_REJECTED', twilioCode: 21211, retryable: false });
    expect(rejected.body.error.message).toContain('not a valid phone number');
    const limited = await placeCall();
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 'TWILIO_RATE_LIMIT', retryable: true });
    const down = await placeCall();
    expect(down.status).toBe(502);
    expect(down.body.error).toMatchObject({ code: 'TWILIO_UNAVAILABLE', retryable: true, twilioStatus: 503 });
    for (const failed of [rejected, limited, down]) {
      expect((await node.stores.callContexts.get(failed.body.error.callId))?.status).toBe('failed');
      expect((await node.stores.conversations.get(failed.body.error.conversationId))?.status).toBe('failed');
    }
  }, 30_000);

  it('refuses without Twilio: no key → 401, another project\'s assistant → 403, unknown → 404, invalid body → 400', async () => {
    const requestsBefore = twilio.seen.length;
    const noKey = await api('/v1/calls', { method: 'POST', key: null, body: JSON.stringify({ assistantId, provider: 'twilio', to: TO, from: FROM }) });
    expect(noKey.status).toBe(401);
    expect((await noKey.json()).error.code).toBe('UNAUTHENTICATED');

    const foreign = await placeCall({ assistantId: otherAssistantId });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('FORBIDDEN');
    const unknown = await placeCall({ assistantId: crypto.randomUUID() });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('ASSISTANT_NOT_FOUND');

    const invalid = await placeCall({ to: '555-0123', from: 'twilio', provider: 'nope', variables: { 'bad name': 'x' }, extra: true });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('VALIDATION_FAILED');
    const paths = (invalid.body.error.issues as { path?: string }[]).map((issue) => issue.path ?? '');
    expect(paths).toEqual(expect.arrayContaining(['to', 'from', 'provider', 'variables.bad name']));
    expect(invalid.body.error.issues).toContainEqual({ message: expect.stringContaining('"extra"') });
    expect(invalid.body.error.issues).toContainEqual({ path: 'variables.bad name', message: expect.stringContaining('variable names are') });
    const missing = await placeCall({ to: undefined });
    expect(missing.status).toBe(400);
    expect(missing.body.error.issues).toEqual([expect.objectContaining({ path: 'to' })]);
    const notJson = await api('/v1/calls', { method: 'POST', body: 'to=+1' });
    expect(notJson.status).toBe(400);

    // None of these reached Twilio.
    expect(twilio.seen).toHaveLength(requestsBefore);
  }, 30_000);
});

describe('the twilio credential\'s apiBaseUrl', () => {
  it('is limited to https Twilio hosts by default (no Basic auth sent to arbitrary URLs)', () => {
    expect(isTwilioApiUrl('https://api.twilio.com')).toBe(true);
    expect(isTwilioApiUrl('https://api.dublin.ie1.twilio.com')).toBe(false);
    expect(isTwilioApiUrl('https://api.ie1.twilio.com')).toBe(true);
    expect(isTwilioApiUrl('http://api.twilio.com')).toBe(false);
    expect(isTwilioApiUrl('https://api.twilio.com.evil.example')).toBe(false);
    expect(isTwilioApiUrl('http://127.0.0.1:8080')).toBe(false);
    expect(isTwilioApiUrl('not a url')).toBe(false);
  });
});
