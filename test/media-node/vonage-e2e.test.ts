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
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { connectVonagePeer, vonageWebhookAuthorization, type VonagePeer } from '../fakes/vonage-peer';
import { nodeVariants } from './node-variants';
import { waitFor } from './twilio-helpers';

// A Vonage call end to end: the signed answer webhook → NCCO → the simulated Vonage peer (test/fakes/vonage-peer.ts)
// on the media WebSocket of a real node with the fake providers; then signed event webhooks and refusals.

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const SIGNATURE_SECRET = 'vonage-signature-secret-for-tests';
const API_KEY = 'abcd1234';
const APPLICATION_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';

interface Ncco {
  action: string;
  eventUrl?: string[];
  endpoint: { type: string; uri: string; 'content-type': string; headers: Record<string, string> }[];
}

describe.each(nodeVariants())('Vonage on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let apiKey: string;
  let assistantId: string;
  /** Hangs up by itself: a short idle time-out, no reprompt. */
  let hangingUpAssistantId: string;
  let cleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vonage-e2e-'));
    const prepared = await variant.prepare();
    cleanup = prepared.cleanup;
    node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', ...prepared.env }));
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registerPhoneFakes(registry, (m) => {
      const said = lastUserText(m);
      if (said.includes('pressed')) return `thanks ${said.endsWith('42') ? 'sure' : 'no'}`;
      if (said.includes('weather')) return 'it is sunny';
      if (said.includes('story')) return STORY;
      return 'okay sure';
    });
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

    const api = (path: string, init: RequestInit & { key?: string } = {}) =>
      fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
    const created = await (await api('/v1/projects', { method: 'POST', key: node.generatedAdminKey!, body: JSON.stringify({ name: 'Vonage E2E' }) })).json();
    apiKey = created.apiKey.key;
    const credential = await api('/v1/credentials/vonage-main', {
      method: 'PUT',
      body: JSON.stringify({ provider: 'vonage', apiKey: API_KEY, signatureSecret: SIGNATURE_SECRET, applicationId: APPLICATION_ID }),
    });
    expect(credential.status).toBe(201);
    const assistant = async (fields: Record<string, unknown>) =>
      (await (await api('/v1/assistants', { method: 'POST', body: JSON.stringify({ ...phoneAssistant({ name: 'Phone bot', prompt: 'You answer the phone.', greeting: 'hello welcome' }), ...fields }) })).json()).id as string;
    assistantId = await assistant({});
    hangingUpAssistantId = await assistant({ idle: { timeoutMs: 1500, maxReprompts: 0, hangupMessage: 'goodbye' } });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  const claims = { api_key: API_KEY, application_id: APPLICATION_ID };

  /** Vonage fetching the answer URL: GET with query parameters (the default), or POST with a JSON body. */
  async function answer(options: { method?: 'GET' | 'POST'; rate?: string; secret?: string; iatMs?: number; authorization?: string | null; tamper?: boolean; target?: string } = {}) {
    const uuid = crypto.randomUUID();
    const params = { from: '447700900001', to: '447700900000', uuid, conversation_uuid: `CON-${crypto.randomUUID()}` };
    const rate = options.rate ? `rate=${options.rate}` : '';
    const path = `/v1/talk/vonage/call/${options.target ?? assistantId}`;
    const secret = options.secret ?? SIGNATURE_SECRET;
    let response: Response;
    if (options.method === 'POST') {
      const body = JSON.stringify(params);
      const authorization = options.authorization === undefined ? vonageWebhookAuthorization({ signatureSecret: secret, body, claims, ...(options.iatMs ? { iatMs: options.iatMs } : {}) }) : options.authorization;
      response = await fetch(`${server.url}${path}${rate ? `?${rate}` : ''}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: options.tamper ? body.replace('447700900001', '447700900666') : body,
      });
    } else {
      const authorization = options.authorization === undefined ? vonageWebhookAuthorization({ signatureSecret: secret, claims, ...(options.iatMs ? { iatMs: options.iatMs } : {}) }) : options.authorization;
      response = await fetch(`${server.url}${path}?${new URLSearchParams(params)}${rate ? `&${rate}` : ''}`, { headers: authorization ? { authorization } : {} });
    }
    const text = await response.text();
    let ncco: Ncco[] | undefined;
    try {
      ncco = JSON.parse(text);
    } catch {
      ncco = undefined;
    }
    const endpoint = Array.isArray(ncco) ? ncco[0]?.endpoint?.[0] : undefined;
    const contextId = endpoint?.uri.split('/').at(-1);
    return { status: response.status, text, ncco, endpoint, contextId, uuid };
  }

  async function event(path: string, body: Record<string, unknown>, options: { authorization?: string | null } = {}) {
    const text = JSON.stringify(body);
    const authorization = options.authorization === undefined ? vonageWebhookAuthorization({ signatureSecret: SIGNATURE_SECRET, body: text, claims }) : options.authorization;
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: text });
    return response.status;
  }

  const connect = (hook: Awaited<ReturnType<typeof answer>>) => connectVonagePeer({ uri: hook.endpoint!.uri, contentType: hook.endpoint!['content-type'], headers: hook.endpoint!.headers });
  const heard = (peer: VonagePeer) => decodeWords(peer.heardPcm(), peer.sampleRateHz);
  const say = (peer: VonagePeer, text: string) => peer.say(synthesizeWords(splitWords(text), peer.sampleRateHz).pcm);
  const malformedCount = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/voice_malformed_frames_total\{channel="vonage"\} (\d+)/.exec(text)?.[1] ?? 0);
  };

  it('answers the NCCO, greets, answers a turn and DTMF, survives malformed frames, clears on barge-in, and ends when the caller hangs up', async () => {
    const hook = await answer();
    expect(hook.status, hook.text).toBe(200);
    expect(hook.ncco).toHaveLength(1);
    expect(hook.ncco![0]).toMatchObject({ action: 'connect', eventUrl: [`${server.publicBaseUrl()}/v1/talk/vonage/ctx/${hook.contextId}/event`] });
    expect(hook.endpoint).toMatchObject({ type: 'websocket', 'content-type': 'audio/l16;rate=16000' });
    expect(hook.endpoint!.uri).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/talk\/vonage\/ctx\/[0-9a-f-]{36}$/);
    const context = await node.stores.callContexts.get(hook.contextId!);
    expect(context).toMatchObject({ provider: 'vonage', direction: 'inbound', channelId: hook.uuid, caller: '447700900001', callee: '447700900000', status: 'pending' });
    expect(hook.endpoint!.headers).toEqual({ contextId: hook.contextId, conversationId: context!.conversationId, callUuid: hook.uuid });

    const peer = await connect(hook);
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);
    say(peer, 'what is the weather today');
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome it is sunny', 8000), `answer; heard: ${heard(peer).join(' ')}`).toBe(true);

    // Keys in both shapes: "4" flat, "2" nested, "#" ends the sequence → "The caller pressed the keys: 42".
    peer.pressDigit('4');
    peer.pressDigit('2', 'nested');
    peer.pressDigit('#');
    expect(await waitFor(() => heard(peer).join(' ').endsWith('thanks sure'), 8000), `DTMF reply; heard: ${heard(peer).join(' ')}`).toBe(true);

    // Malformed frames mid-call: counted, never fatal.
    const malformedBefore = await malformedCount();
    peer.sendRaw('this is not json');
    peer.sendRaw(new Uint8Array(3));
    peer.sendRaw('{"event":"websocket:bogus"}');
    peer.sendRaw('{"event":"websocket:dtmf","digit":"x"}');
    expect(await waitFor(async () => (await malformedCount()) === malformedBefore + 4, 3000), `malformed frames counted: ${await malformedCount()}`).toBe(true);

    say(peer, 'tell me a story');
    const wordsBefore = heard(peer).length;
    expect(await waitFor(() => heard(peer).length >= wordsBefore + 4, 8000), `story; heard: ${heard(peer).join(' ')}`).toBe(true);
    const clearsBefore = peer.stats.clears;
    say(peer, 'okay stop');
    expect(await waitFor(() => peer.stats.clears > clearsBefore, 3000), 'a clear after the barge-in').toBe(true);
    expect(await waitFor(() => heard(peer).join(' ').endsWith('okay sure'), 8000), `reply after barge-in; heard: ${heard(peer).join(' ')}`).toBe(true);
    expect(peer.controls).toContainEqual({ action: 'clear' });

    // Every frame the server sent was exactly one 20 ms L16 frame; marks came back as notifies.
    expect(peer.stats.badFrames, `frame sizes ${peer.stats.badFrameSizes.join(',')}`).toBe(0);
    expect(peer.stats.framesReceived).toBeGreaterThan(50);
    expect(peer.stats.notifiesEchoed).toBeGreaterThan(0);
    expect(peer.controls.find((m) => m.action === 'notify')).toMatchObject({ payload: { mark: expect.any(String) } });

    await peer.hangUp();
    expect(await waitFor(async () => (await node.stores.callContexts.get(hook.contextId!))?.status === 'completed', 5000)).toBe(true);
    await node.writer.flush({ timeoutMs: 5000 });
    const read = await (await fetch(`${server.url}/v1/conversations/${context!.conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
    const messages = read.messages as { role: string; text: string; heardText?: string; interrupted: boolean }[];
    expect(messages.map((m) => m.role)).toEqual(['assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(messages[3]!.text).toBe('The caller pressed the keys: 42');
    const story = messages[6]!;
    expect(story.interrupted).toBe(true);
    // What the history says was heard of the story is what the caller heard (the clear dropped the rest).
    const storyHeard = heard(peer).slice(2 + 3 + 2, -2);
    const recorded = story.heardText!.split(' ');
    expect(storyHeard.length).toBeLessThan(splitWords(STORY).length);
    expect(recorded).toEqual(storyHeard.slice(0, recorded.length));
    expect(Math.abs(recorded.length - storyHeard.length)).toBeLessThanOrEqual(1);
    expect(read.conversation).toMatchObject({ channel: 'vonage', status: 'completed' });
  }, 60_000);

  it('narrowband on request (POST answer, rate=8000): 320-byte frames both ways, and the assistant hangs up by closing the socket', async () => {
    const hook = await answer({ method: 'POST', rate: '8000', target: hangingUpAssistantId });
    expect(hook.status, hook.text).toBe(200);
    expect(hook.endpoint!['content-type']).toBe('audio/l16;rate=8000');
    const peer = await connect(hook);
    expect(peer.frameBytes).toBe(320);
    // Greeting, then 1.5 s of silence, then the idle hang-up: "goodbye" and the server closes the socket.
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome goodbye', 12_000), `heard: ${heard(peer).join(' ')}`).toBe(true);
    await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 5000))]);
    expect(peer.stats.closeCode).toBe(1000);
    expect(peer.stats.badFrames, `frame sizes ${peer.stats.badFrameSizes.join(',')}`).toBe(0);
    expect(await waitFor(async () => (await node.stores.callContexts.get(hook.contextId!))?.status === 'completed', 5000)).toBe(true);
  }, 30_000);

  it('refuses unsigned (401), wrongly signed, stale, tampered or unsigned-algorithm webhooks (403) and an unknown rate (400)', async () => {
    expect((await answer({ authorization: null })).status).toBe(401);
    expect((await answer({ secret: 'not-the-secret' })).status).toBe(403);
    expect((await answer({ iatMs: Date.now() - 10 * 60_000 })).status).toBe(403);
    expect((await answer({ method: 'POST', tamper: true })).status).toBe(403);
    const none = vonageWebhookAuthorization({ signatureSecret: SIGNATURE_SECRET, claims, alg: 'none' });
    expect((await answer({ authorization: none })).status).toBe(403);
    const otherAccount = vonageWebhookAuthorization({ signatureSecret: SIGNATURE_SECRET, claims: { ...claims, api_key: 'someone-else' } });
    expect((await answer({ authorization: otherAccount })).status).toBe(403);
    expect((await answer({ rate: '44100' })).status).toBe(400);
  }, 30_000);

  it('refuses a media URL used twice (4409), unknown (4404) or opened as another carrier (4404)', async () => {
    const hook = await answer();
    const first = await connect(hook);
    expect(await waitFor(() => heard(first).length > 0, 10_000)).toBe(true);
    const closeCode = (url: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.on('close', (code) => resolve(code));
        ws.on('error', reject);
      });
    expect(await closeCode(hook.endpoint!.uri)).toBe(4409);
    expect(await closeCode(hook.endpoint!.uri.replace(/ctx\/[^/]+$/, `ctx/${crypto.randomUUID()}`))).toBe(4404);
    const unclaimed = await answer();
    expect(await closeCode(unclaimed.endpoint!.uri.replace('/vonage/', '/twilio/'))).toBe(4404);
    await first.hangUp();
  }, 30_000);

  it('stores signed events once, applies the phone leg\'s status, keeps the WebSocket leg\'s apart, and finds a call by uuid on the application event URL', async () => {
    const hook = await answer();
    const path = `/v1/talk/vonage/ctx/${hook.contextId}/event`;
    const phone = (status: string, timestamp: string) => ({ from: '447700900001', to: '447700900000', uuid: hook.uuid, conversation_uuid: 'CON-1', status, direction: 'inbound', timestamp });
    expect(await event(path, phone('answered', '2026-01-01T10:00:01.000Z'), { authorization: null })).toBe(401);
    expect(await event(path, phone('answered', '2026-01-01T10:00:01.000Z'))).toBe(204);
    expect(await event(path, phone('answered', '2026-01-01T10:00:01.000Z'))).toBe(204);
    expect((await node.stores.callContexts.get(hook.contextId!))?.callStatus).toBe('in-progress');
    // Signed, but about another call.
    expect(await event(path, { ...phone('completed', '2026-01-01T10:00:09.000Z'), uuid: crypto.randomUUID() })).toBe(409);
    // The media WebSocket's own leg: stored, not the call's state.
    const wsLeg = { from: '447700900001', to: hook.endpoint!.uri, uuid: crypto.randomUUID(), conversation_uuid: 'CON-1', status: 'disconnected', timestamp: '2026-01-01T10:00:05.000Z' };
    expect(await event(path, wsLeg)).toBe(204);
    expect(await event('/v1/talk/vonage/event', { ...wsLeg, status: 'completed', timestamp: '2026-01-01T10:00:06.000Z' })).toBe(204);
    expect((await node.stores.callContexts.get(hook.contextId!))?.callStatus).toBe('in-progress');
    // The application's event URL finds the call by its uuid.
    expect(await event('/v1/talk/vonage/event', phone('completed', '2026-01-01T10:00:10.000Z'))).toBe(204);
    expect(await event('/v1/talk/vonage/event', { ...phone('completed', '2026-01-01T10:00:10.000Z'), uuid: crypto.randomUUID() })).toBe(404);
    const events = await node.stores.conversations.callEvents({ callContextId: hook.contextId! });
    expect(events.map((e) => [e.provider, e.status ?? null])).toEqual([
      ['vonage', 'in-progress'],
      ['vonage', null],
      ['vonage', null],
      ['vonage', 'completed'],
    ]);
    expect((await node.stores.callContexts.get(hook.contextId!))?.callStatus).toBe('completed');

    // No answer before the media connected: the context fails and its media URL is refused.
    const unanswered = await answer();
    const unansweredPath = `/v1/talk/vonage/ctx/${unanswered.contextId}/event`;
    expect(await event(unansweredPath, { uuid: unanswered.uuid, status: 'unanswered', timestamp: '2026-01-01T10:01:00.000Z', to: '447700900000' })).toBe(204);
    expect(await node.stores.callContexts.get(unanswered.contextId!)).toMatchObject({ status: 'failed', callStatus: 'no-answer' });
  }, 30_000);
});
