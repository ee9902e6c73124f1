import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { connectExotelPeer } from '../fakes/exotel-peer';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { nodeVariants } from './node-variants';
import { waitFor } from './twilio-helpers';

// Exotel Voicebot calls end to end: the applet's dynamic URL (Basic auth, allow-list) creates the context, a
// simulated Exotel (written from the reference) streams, is interrupted, presses keys, sends garbage and
// hangs up; an outbound call goes through a fake Exotel REST API, and status callbacks are stored once.

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const CREDENTIAL = { provider: 'exotel', accountSid: 'acme1', apiKey: 'exo-key', apiToken: 'exo-token-secret', callerId: '+918047491899' };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const AUTH = basic(CREDENTIAL.apiKey, CREDENTIAL.apiToken);

type Peer = Awaited<ReturnType<typeof connectExotelPeer>>;
const heard = (peer: Peer) => decodeWords(peer.heardPcm(), peer.rate);
const say = (peer: Peer, text: string) => peer.say(synthesizeWords(splitWords(text), peer.rate).pcm);
const malformedCount = async (url: string) => Number(/voice_malformed_frames_total\{[^}]*channel="exotel"[^}]*\} (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

describe.each(nodeVariants())('Exotel on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let apiKey: string;
  let assistantId: string;
  let shortAssistantId: string;
  let cleanup: (() => Promise<void>) | undefined;
  let rest: Server;
  let restUrl: string;
  const restRequests: { path: string; authorization: string | undefined; form: URLSearchParams }[] = [];

  const api = (path: string, init: { method?: string; key?: string; body?: unknown } = {}) =>
    fetch(`${server.url}${path}`, {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}` },
      body: JSON.stringify(init.body ?? {}),
    });
  const putCredential = async (extra: Record<string, unknown> = {}) => {
    const response = await api('/v1/credentials/exotel-main', { method: 'PUT', body: { ...CREDENTIAL, ...extra } });
    expect([200, 201]).toContain(response.status);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'exotel-e2e-'));
    const prepared = await variant.prepare();
    cleanup = prepared.cleanup;
    node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', AUDIOSOCKET_PORT: 'off', ...prepared.env }));
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registerPhoneFakes(registry, (m) => {
      const said = lastUserText(m);
      if (said.includes('weather')) return 'it is sunny';
      if (said.includes('story')) return STORY;
      if (said.includes('42')) return 'thanks';
      return 'okay sure';
    });
    // The fake Exotel REST API: Connect Voice AI answers a call sid.
    rest = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        restRequests.push({ path: req.url ?? '', authorization: req.headers.authorization, form: new URLSearchParams(body) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Call: { Sid: `exo${restRequests.length}${'0'.repeat(20)}`, Status: 'in-progress' } }));
      });
    });
    await new Promise<void>((resolve) => rest.listen(0, '127.0.0.1', resolve));
    restUrl = `http://127.0.0.1:${(rest.address() as { port: number }).port}`;
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, allowExotelApiBaseUrl: (url) => url === restUrl });

    const admin = node.generatedAdminKey!;
    apiKey = (await (await api('/v1/projects', { key: admin, body: { name: 'Exotel' } })).json()).apiKey.key;
    await putCredential();
    const assistant = async (extra: Record<string, unknown> = {}) =>
      (await (await api('/v1/assistants', { body: { ...phoneAssistant({ name: 'Exotel bot', prompt: 'You answer the phone.', greeting: 'hello welcome' }), ...extra } })).json()).id as string;
    assistantId = await assistant();
    // Ends the call itself after 10 s (the shortest maximum): the hang-up comes from our side.
    shortAssistantId = await assistant({ maxDurationMs: 10_000 });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await new Promise((resolve) => rest?.close(resolve));
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  /** Exotel's applet asking the dynamic URL for the stream URL (a GET with Passthru-style parameters). */
  const streamUrl = (assistant: string, authorization: string | null = AUTH, method = 'GET') =>
    fetch(`${server.url}/v1/talk/exotel/call/${assistant}?CallSid=${crypto.randomUUID().replace(/-/g, '')}&CallFrom=09876543210&CallTo=08047491899`, {
      method,
      headers: authorization ? { authorization } : {},
    });

  it('the dynamic URL wants Basic credentials and honours the allow-list; it answers {"url": "ws…/ctx/{id}?sample-rate=…"}', async () => {
    expect((await streamUrl(assistantId, null)).status).toBe(401);
    expect((await streamUrl(assistantId, basic(CREDENTIAL.apiKey, 'wrong-token'))).status).toBe(401);
    expect((await streamUrl(crypto.randomUUID())).status).toBe(404);
    const ok = await streamUrl(assistantId, AUTH, 'POST');
    expect(ok.status).toBe(200);
    const { url } = (await ok.json()) as { url: string };
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/talk\/exotel\/ctx\/[0-9a-f-]{36}\?sample-rate=8000$/);
    const context = await node.stores.callContexts.get(new URL(url).pathname.split('/').at(-1)!);
    expect(context).toMatchObject({ provider: 'exotel', direction: 'inbound', status: 'pending', caller: '09876543210', callee: '08047491899' });

    await putCredential({ allowedIps: ['203.0.113.0/24'], sampleRateHz: 16000 });
    expect((await streamUrl(assistantId)).status).toBe(403);
    await putCredential({ allowedIps: ['127.0.0.0/8', '::1'], sampleRateHz: 16000 });
    const allowed = await streamUrl(assistantId);
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as { url: string }).url).toMatch(/\?sample-rate=16000$/);
    await putCredential();
  }, 30_000);

  it('a whole call: greeting, answer, DTMF, garbage survived and counted, barge-in with clear, valid chunks only, caller hang-up', async () => {
    const { url } = (await (await streamUrl(assistantId)).json()) as { url: string };
    const contextId = new URL(url).pathname.split('/').at(-1)!;
    const peer = await connectExotelPeer({ url });
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);
    say(peer, 'what is the weather today');
    expect(await waitFor(() => heard(peer).join(' ').endsWith('it is sunny'), 10_000), `answer; heard: ${heard(peer).join(' ')}`).toBe(true);

    for (const digit of ['4', '2', '#']) peer.pressDigit(digit);
    expect(await waitFor(() => heard(peer).join(' ').endsWith('thanks'), 10_000), `DTMF reply; heard: ${heard(peer).join(' ')}`).toBe(true);

    const malformedBefore = await malformedCount(server.url);
    peer.sendRaw('this is not json');
    peer.sendRaw(JSON.stringify({ event: 'media', sequence_number: '999', stream_sid: peer.streamSid, media: { chunk: '1', timestamp: '1', payload: '%%%' } }));
    peer.sendRaw(JSON.stringify({ event: 'teleport', stream_sid: peer.streamSid }));
    expect(await waitFor(async () => (await malformedCount(server.url)) >= malformedBefore + 3, 5000)).toBe(true);

    say(peer, 'tell me a story');
    expect(await waitFor(() => heard(peer).length >= 2 + 3 + 1 + 4, 10_000), `story; heard: ${heard(peer).join(' ')}`).toBe(true);
    const clearsBefore = peer.stats.clears;
    say(peer, 'okay stop');
    expect(await waitFor(() => peer.stats.clears > clearsBefore, 5000), 'a clear after the barge-in').toBe(true);
    expect(await waitFor(() => heard(peer).join(' ').endsWith('okay sure'), 10_000), `reply after barge-in; heard: ${heard(peer).join(' ')}`).toBe(true);
    // The story was cut: the caller did not hear all of it.
    expect(heard(peer).length).toBeLessThan(2 + 3 + 1 + splitWords(STORY).length + 2);
    expect(peer.stats.chunkViolations).toEqual([]);
    expect(peer.stats.chunksReceived).toBeGreaterThan(3);
    expect(peer.stats.marksEchoed).toBeGreaterThan(0);
    expect(peer.stats.badMessages).toBe(0);

    await peer.hangUp();
    expect(await waitFor(async () => (await node.stores.callContexts.get(contextId))?.status === 'completed', 5000)).toBe(true);

    // The history holds what the caller heard of the story (marks ride behind the chunked audio): a word cut
    // mid-way, or still in the chunk that was being played, may count on one side only.
    await node.writer.flush({ timeoutMs: 5000 });
    const context = await node.stores.callContexts.get(contextId);
    const body = await (await fetch(`${server.url}/v1/conversations/${context!.conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
    const story = (body.messages as { role: string; text: string; heardText?: string; interrupted: boolean }[]).find((m) => m.text === STORY)!;
    expect(story.interrupted).toBe(true);
    const words = heard(peer);
    const storyHeard = words.slice(words.indexOf('once'), words.lastIndexOf('okay'));
    const recorded = splitWords(story.heardText ?? '');
    expect(recorded.length).toBeGreaterThan(0);
    expect(recorded).toEqual(splitWords(STORY).slice(0, recorded.length));
    expect(Math.abs(recorded.length - storyHeard.length), `recorded ${recorded.join(' ')} / heard ${storyHeard.join(' ')}`).toBeLessThanOrEqual(2);
  }, 70_000);

  it('at 16 kHz: our side hangs up (max duration) by closing the stream; a used or unknown stream URL is refused (4409 / 4404)', async () => {
    await putCredential({ sampleRateHz: 16000 });
    const { url } = (await (await streamUrl(shortAssistantId)).json()) as { url: string };
    await putCredential();
    const peer = await connectExotelPeer({ url });
    expect(peer.rate).toBe(16000);
    // The greeting was pre-warmed for 8 kHz; the start message said 16 kHz, and that is what the caller gets.
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);
    const closeCode = (target: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(target);
        ws.on('close', (code) => resolve(code));
        ws.on('error', reject);
      });
    expect(await closeCode(url)).toBe(4409);
    expect(await closeCode(url.replace(/ctx\/[^/?]+/, `ctx/${crypto.randomUUID()}`))).toBe(4404);
    await peer.closed;
    expect(peer.stats.closeCode).toBe(1000);
    expect(peer.stats.chunkViolations).toEqual([]);
  }, 30_000);

  it('places an outbound call through the REST API; status callbacks need Basic auth and are stored once', async () => {
    await putCredential({ apiBaseUrl: restUrl });
    const placed = await api('/v1/calls', { body: { assistantId, provider: 'exotel', to: '+919876543210', from: '+918047491899' } });
    expect(placed.status).toBe(201);
    const call = (await placed.json()) as { callId: string; providerCallId: string; status: string };
    const request = restRequests.at(-1)!;
    expect(request.path).toBe('/v1/Accounts/acme1/Calls/connect.json');
    expect(request.authorization).toBe(AUTH);
    expect(request.form.get('From')).toBe('+919876543210');
    expect(request.form.get('CallerId')).toBe('+918047491899');
    expect(request.form.get('StreamType')).toBe('bidirectional');
    expect(request.form.get('CustomField')).toBe(call.callId);
    expect(request.form.get('StreamUrl')).toMatch(new RegExp(`/v1/talk/exotel/ctx/${call.callId}\\?sample-rate=8000$`));
    const callback = new URL(request.form.get('StatusCallback')!);
    expect(callback.pathname).toBe(`/v1/talk/exotel/ctx/${call.callId}/event`);
    expect(decodeURIComponent(callback.password)).toBe(CREDENTIAL.apiToken);
    expect(await node.stores.callContexts.get(call.callId)).toMatchObject({ direction: 'outbound', channelId: call.providerCallId });

    // Exotel connects the answered call to the stream URL.
    const peer = await connectExotelPeer({ url: request.form.get('StreamUrl')!, callSid: call.providerCallId });
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);
    await peer.hangUp();

    const status = (form: Record<string, string>, authorization: string | null = AUTH) =>
      fetch(`${server.url}${callback.pathname}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
        body: new URLSearchParams(form).toString(),
      });
    const terminal = { CallSid: call.providerCallId, Status: 'completed', EventType: 'terminal', DateUpdated: '2026-01-15 14:30:45' };
    expect((await status(terminal, null)).status).toBe(401);
    expect((await status({ ...terminal, CallSid: 'someone-else' })).status).toBe(409);
    expect((await status({ ...terminal, Status: 'exploded' })).status).toBe(400);
    expect((await status(terminal)).status).toBe(204);
    expect((await status(terminal)).status).toBe(204);
    const events = await node.stores.conversations.callEvents({ callContextId: call.callId });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ provider: 'exotel', status: 'completed' });
    expect(await waitFor(async () => (await node.stores.callContexts.get(call.callId))?.callStatus === 'completed', 5000)).toBe(true);

    // Exotel refusing the credentials: the call fails at once and says what to check.
    await putCredential({ apiBaseUrl: restUrl, apiToken: 'revoked' });
    rest.removeAllListeners('request');
    rest.on('request', (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ RestException: { Status: 401, Message: 'Authentication failed' } }));
    });
    const refused = await api('/v1/calls', { body: { assistantId, provider: 'exotel', to: '+919876543210', from: '+918047491899' } });
    expect(refused.status).toBe(400);
    const error = (await refused.json()) as { error: { code: string; message: string; callId: string } };
    expect(error.error.code).toBe('EXOTEL_AUTH');
    expect(error.error.message).toMatch(/check the exotel credential/i);
    expect(await node.stores.callContexts.get(error.error.callId)).toMatchObject({ status: 'failed' });
    await putCredential();
  }, 40_000);
});
