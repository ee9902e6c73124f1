import { generateKeyPairSync, verify as verifySignature } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVonageApiUrl } from '../../edge/routes/vonage-calls';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords } from '../fakes/tones';
import { connectVonagePeer, vonageWebhookAuthorization } from '../fakes/vonage-peer';
import { waitFor } from './twilio-helpers';

// Outbound Vonage calls end to end: POST /v1/calls → a local fake of Vonage's Voice REST API, which checks the
// RS256 application JWT with the application's public key (node:crypto, not our Web Crypto signer) and the
// body of §2.4 → the test then plays Vonage: signed events to the call's event URL and the media WebSocket
// the NCCO names (the simulated peer).

const APPLICATION_ID = '11111111-2222-4333-8444-555555555555';
const SIGNATURE_SECRET = 'vonage-outbound-signature-secret';
const TO = '+14155550123';
const FROM = '+14155550100';
const keys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const otherKeys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });

interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly jwt: { header: Record<string, unknown>; claims: Record<string, unknown>; signatureValid: boolean } | undefined;
  readonly body: Record<string, unknown>;
}

/** Vonage's `POST /v1/calls`, as far as the reference goes: RS256 application JWT checked, a call resource answered. */
async function startFakeVonage() {
  const seen: SeenRequest[] = [];
  const next: { status: number; body: Record<string, unknown> }[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const reply = (status: number, body: Record<string, unknown>) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      let jwt: SeenRequest['jwt'];
      if (token) {
        const [header, claims, signature] = token.split('.');
        jwt = {
          header: JSON.parse(Buffer.from(header!, 'base64url').toString()),
          claims: JSON.parse(Buffer.from(claims!, 'base64url').toString()),
          signatureValid: verifySignature('RSA-SHA256', Buffer.from(`${header}.${claims}`), keys.publicKey, Buffer.from(signature!, 'base64url')),
        };
      }
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text);
      } catch {
        // left empty: the checks below refuse it
      }
      seen.push({ method: req.method ?? '', path: req.url ?? '', jwt, body });
      if (req.method !== 'POST' || req.url !== '/v1/calls') return reply(404, { type: 'https://developer.nexmo.com/api-errors#not-found', title: 'Not Found' });
      const nowS = Date.now() / 1000;
      const claims = jwt?.claims ?? {};
      const fresh = typeof claims.iat === 'number' && Math.abs(nowS - claims.iat) < 60 && typeof claims.exp === 'number' && claims.exp > nowS;
      if (!jwt?.signatureValid || jwt.header.alg !== 'RS256' || claims.application_id !== APPLICATION_ID || typeof claims.jti !== 'string' || !fresh) {
        return reply(401, { type: 'https://developer.nexmo.com/api-errors#unauthorized', title: 'Invalid credentials supplied' });
      }
      const scripted = next.shift();
      if (scripted) return reply(scripted.status, scripted.body);
      return reply(201, { uuid: crypto.randomUUID(), status: 'started', direction: 'outbound', conversation_uuid: `CON-${crypto.randomUUID()}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, next, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let vonage: Awaited<ReturnType<typeof startFakeVonage>>;
let apiKey: string;
let assistantId: string;
let wrongKey: { key: string; assistantId: string };
let noKey: { key: string; assistantId: string };

function api(path: string, init: RequestInit & { key?: string } = {}) {
  return fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vonage-outbound-'));
  vonage = await startFakeVonage();
  node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  registerPhoneFakes(registry, () => 'okay sure');
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, allowVonageApiBaseUrl: (url) => url.startsWith('http://127.0.0.1:') });
  const project = async (name: string, secret: Record<string, string>) => {
    const created = await (await api('/v1/projects', { method: 'POST', key: node.generatedAdminKey!, body: JSON.stringify({ name }) })).json();
    const key = created.apiKey.key as string;
    expect((await api('/v1/credentials/vonage-main', { method: 'PUT', key, body: JSON.stringify({ provider: 'vonage', signatureSecret: SIGNATURE_SECRET, apiBaseUrl: vonage.url, ...secret }) })).status).toBe(201);
    const assistant = await (await api('/v1/assistants', { method: 'POST', key, body: JSON.stringify(phoneAssistant({ name: 'Caller', prompt: 'You call people.', greeting: 'hello {{who}}', variables: { who: 'there' } })) })).json();
    return { key, assistantId: assistant.id as string };
  };
  ({ key: apiKey, assistantId } = await project('Outbound', { applicationId: APPLICATION_ID, privateKey: keys.privateKey }));
  wrongKey = await project('Wrong key', { applicationId: APPLICATION_ID, privateKey: otherKeys.privateKey });
  noKey = await project('No key', { applicationId: APPLICATION_ID });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await node?.close();
  await vonage?.close();
  await rm(dir, { recursive: true, force: true });
});

async function placeCall(body: Record<string, unknown> = {}, key?: string) {
  const response = await api('/v1/calls', { method: 'POST', ...(key ? { key } : {}), body: JSON.stringify({ assistantId, provider: 'vonage', to: TO, from: FROM, ...body }) });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field
  return { status: response.status, body: (await response.json()) as any };
}

async function event(url: string, body: Record<string, unknown>) {
  const text = JSON.stringify(body);
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: vonageWebhookAuthorization({ signatureSecret: SIGNATURE_SECRET, body: text }) }, body: text });
  return response.status;
}

describe('POST /v1/calls with Vonage (real node, fake Vonage REST API, simulated peer)', () => {
  it('places the call with an RS256 application JWT, then Vonage rings, answers, streams the greeting and completes', async () => {
    const before = vonage.seen.length;
    const placed = await placeCall({ variables: { who: 'welcome' } });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    expect(placed.body).toEqual({ callId: expect.any(String), conversationId: expect.any(String), providerCallId: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'queued' });
    const { callId, conversationId, providerCallId } = placed.body as { callId: string; conversationId: string; providerCallId: string };

    expect(vonage.seen).toHaveLength(before + 1);
    const request = vonage.seen.at(-1)!;
    expect(request.jwt).toMatchObject({ header: { alg: 'RS256', typ: 'JWT' }, claims: { application_id: APPLICATION_ID }, signatureValid: true });
    const eventUrl = `${server.publicBaseUrl()}/v1/talk/vonage/ctx/${callId}/event`;
    const mediaUri = `${server.publicBaseUrl().replace(/^http/, 'ws')}/v1/talk/vonage/ctx/${callId}`;
    expect(request.body).toEqual({
      to: [{ type: 'phone', number: '14155550123' }],
      from: { type: 'phone', number: '14155550100' },
      event_url: [eventUrl],
      event_method: 'POST',
      ncco: [
        {
          action: 'connect',
          eventUrl: [eventUrl],
          eventMethod: 'POST',
          endpoint: [{ type: 'websocket', uri: mediaUri, 'content-type': 'audio/l16;rate=16000', headers: { contextId: callId, conversationId } }],
        },
      ],
    });
    expect(await node.stores.callContexts.get(callId)).toMatchObject({ provider: 'vonage', status: 'pending', direction: 'outbound', callStatus: 'queued', channelId: providerCallId, caller: FROM, callee: TO });

    const phone = (status: string, second: number) => ({ uuid: providerCallId, conversation_uuid: 'CON-x', status, direction: 'outbound', from: '14155550100', to: '14155550123', timestamp: `2026-01-01T10:00:0${second}.000Z` });
    expect(await event(eventUrl, phone('started', 1))).toBe(204);
    expect(await event(eventUrl, phone('ringing', 2))).toBe(204);
    expect((await node.stores.callContexts.get(callId))?.callStatus).toBe('ringing');
    expect(await event(eventUrl, phone('answered', 3))).toBe(204);

    const endpoint = (request.body.ncco as { endpoint: { uri: string; 'content-type': string; headers: Record<string, string> }[] }[])[0]!.endpoint[0]!;
    const peer = await connectVonagePeer({ uri: endpoint.uri, contentType: endpoint['content-type'], headers: endpoint.headers });
    const heard = () => decodeWords(peer.heardPcm(), 16000).join(' ');
    expect(await waitFor(() => heard() === 'hello welcome', 10_000), `greeting; heard "${heard()}"`).toBe(true);
    await peer.hangUp();
    expect(await event(eventUrl, { ...phone('completed', 9), duration: '7' })).toBe(204);
    expect(await waitFor(async () => (await node.stores.callContexts.get(callId))?.status === 'completed', 5000)).toBe(true);
    expect(await node.stores.callContexts.get(callId)).toMatchObject({ callStatus: 'completed', channelId: providerCallId });
    const events = await node.stores.conversations.callEvents({ callContextId: callId });
    expect(events.map((e) => e.status)).toEqual(['queued', 'ringing', 'in-progress', 'completed']);
  }, 60_000);

  it('a key Vonage refuses: 400 VONAGE_AUTH, and the call context and conversation are failed', async () => {
    const placed = await placeCall({ assistantId: wrongKey.assistantId }, wrongKey.key);
    expect(vonage.seen.at(-1)!.jwt?.signatureValid).toBe(false);
    expect(placed.status).toBe(400);
    expect(placed.body.error).toMatchObject({ code: 'VONAGE_AUTH', retryable: false, vonageStatus: 401 });
    expect(placed.body.error.message).toContain("vonage credential's applicationId and privateKey");
    expect(await node.stores.callContexts.get(placed.body.error.callId)).toMatchObject({ status: 'failed', failureClass: 'VONAGE_AUTH' });
    expect(await node.stores.conversations.get(placed.body.error.conversationId)).toMatchObject({ status: 'failed' });
  }, 30_000);

  it('maps what else Vonage answers (400 → 400, 429 → 429, 503 → 502) and refuses without a private key', async () => {
    vonage.next.push(
      { status: 400, body: { type: 'https://developer.nexmo.com/api-errors#bad-request', title: 'Bad Request', detail: 'Invalid to number' } },
      { status: 429, body: { title: 'Too Many Requests' } },
      { status: 503, body: { title: 'Service Unavailable' } },
    );
    const rejected = await placeCall();
    expect(rejected.status).toBe(400);
    expect(rejected.body.error).toMatchObject({ code: 'VONAGE_REJECTED', retryable: false });
    expect(rejected.body.error.message).toContain('Invalid to number');
    expect((await placeCall()).body.error).toMatchObject({ code: 'VONAGE_RATE_LIMIT', retryable: true });
    const down = await placeCall();
    expect(down.status).toBe(502);
    expect(down.body.error).toMatchObject({ code: 'VONAGE_UNAVAILABLE', retryable: true });

    const before = vonage.seen.length;
    const missing = await placeCall({ assistantId: noKey.assistantId }, noKey.key);
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('VONAGE_CREDENTIAL_MISSING');
    expect(vonage.seen).toHaveLength(before);
  }, 30_000);
});

describe("the vonage credential's apiBaseUrl", () => {
  it('is limited to https Vonage API hosts by default (the bearer JWT goes nowhere else)', () => {
    expect(isVonageApiUrl('https://api.nexmo.com')).toBe(true);
    expect(isVonageApiUrl('https://api-eu.nexmo.com')).toBe(true);
    expect(isVonageApiUrl('https://api.vonage.com')).toBe(true);
    expect(isVonageApiUrl('http://api.nexmo.com')).toBe(false);
    expect(isVonageApiUrl('https://api.nexmo.com.evil.example')).toBe(false);
    expect(isVonageApiUrl('http://127.0.0.1:8080')).toBe(false);
    expect(isVonageApiUrl('nope')).toBe(false);
  });
});
