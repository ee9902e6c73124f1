import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { createProviderRegistry } from '../../shared/providers/registry';
import { connectAsteriskPeer } from '../fakes/asterisk-ws-peer';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { nodeVariants } from './node-variants';
import { waitFor } from './twilio-helpers';

// chan_websocket calls end to end: the dialplan's CURL() creates the context, a simulated Asterisk (written
// from the reference) connects, talks, is interrupted, presses keys, sends garbage, and hangs up.

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Peer = Awaited<ReturnType<typeof connectAsteriskPeer>>;
const heard = (peer: Peer) => decodeWords(peer.heardPcm(), peer.rateHz);
const say = (peer: Peer, text: string) => peer.say(synthesizeWords(splitWords(text), peer.rateHz).pcm);

describe.each(nodeVariants())('Asterisk WebSocket on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let apiKey: string;
  let otherKey: string;
  let publishable: string;
  let assistantId: string;
  let shortAssistantId: string;
  let otherAssistantId: string;
  let cleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'asterisk-ws-e2e-'));
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
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

    const admin = node.generatedAdminKey!;
    const api = (path: string, key: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    const project = async (name: string) => (await (await api('/v1/projects', admin, { name })).json()) as { project: { id: string }; apiKey: { key: string } };
    const main = await project('Asterisk');
    apiKey = main.apiKey.key;
    otherKey = (await project('Other')).apiKey.key;
    const assistant = async (key: string, extra: Record<string, unknown> = {}) =>
      (await (await api('/v1/assistants', key, { ...phoneAssistant({ name: 'PBX bot', prompt: 'You answer the phone.', greeting: 'hello {{name}}' }), ...extra })).json()).id as string;
    assistantId = await assistant(apiKey);
    // Ends the call itself after 10 s (the shortest maximum), so the hang-up comes from our side.
    shortAssistantId = await assistant(apiKey, { maxDurationMs: 10_000 });
    otherAssistantId = await assistant(otherKey);
    const created = await api(`/v1/projects/${main.project.id}/publishable-keys`, admin, { allowedOrigins: ['https://x.test'] });
    expect(created.status).toBe(201);
    publishable = (await created.json()).key;
    expect(publishable).toMatch(/^vr_pk_/);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  /** The dialplan's CURL(url,postdata): a form POST with the key in CURLOPT(httpheader). */
  const curl = (assistant: string, form: string, init: { key?: string | null; accept?: string; contentType?: string; query?: string } = {}) =>
    fetch(`${server.url}/v1/talk/asterisk/call/${assistant}${init.query ?? ''}`, {
      method: 'POST',
      headers: {
        'content-type': init.contentType ?? 'application/x-www-form-urlencoded',
        accept: init.accept ?? '*/*',
        ...(init.key === null ? {} : { authorization: `Bearer ${init.key ?? apiKey}` }),
      },
      body: form,
    });
  const wsBase = () => server.url.replace(/^http/, 'ws');

  it('CURL() answers the bare context id; JSON on request; keys, projects and variables are checked', async () => {
    const plain = await curl(assistantId, 'name=welcome&from=5551234&to=100');
    expect(plain.status).toBe(201);
    expect(plain.headers.get('content-type')).toMatch(/^text\/plain/);
    const id = await plain.text();
    expect(id).toMatch(UUID);
    const context = await node.stores.callContexts.get(id);
    expect(context).toMatchObject({ provider: 'asterisk', status: 'pending', caller: '5551234', callee: '100', variables: { name: 'welcome', from: '5551234', to: '100' } });

    const json = await curl(assistantId, JSON.stringify({ variables: { name: 'x' }, from: 'alice' }), { accept: 'application/json', contentType: 'application/json', query: '?lang=en' });
    expect(json.status).toBe(201);
    const body = await json.json();
    expect(body.contextId).toMatch(UUID);
    expect(body.webSocketUrl).toBe(`${wsBase()}/v1/talk/asterisk/ctx/${body.contextId}`);
    expect((await node.stores.callContexts.get(body.contextId))?.variables).toEqual({ name: 'x', lang: 'en' });

    expect((await curl(assistantId, '', { key: null })).status).toBe(401);
    expect((await curl(assistantId, '', { key: publishable })).status).toBe(401);
    expect((await curl(assistantId, '', { key: 'vr_sk_unknown' })).status).toBe(401);
    expect((await curl(otherAssistantId, '')).status).toBe(404);
    expect((await curl(assistantId, 'bad name=1')).status).toBe(400);
    expect((await curl(assistantId, 'a=1&a=2')).status).toBe(400);
    expect((await curl(assistantId, '<xml/>', { contentType: 'text/xml' })).status).toBe(415);
  }, 30_000);

  it('JSON control format, slin16, id in ?contextId=: greeting, answer, DTMF, barge-in with FLUSH_MEDIA, marks, garbage survived, caller hang-up', async () => {
    const id = await (await curl(assistantId, 'name=welcome')).text();
    // websocket_client.conf uri = …/v1/talk/asterisk/ctx, and v(contextId=…,leg=a) appended the parameters.
    const peer = await connectAsteriskPeer({ url: `${wsBase()}/v1/talk/asterisk/ctx?contextId=${id}&leg=a`, codec: 'slin16', controlFormat: 'json' });

    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);
    say(peer, 'what is the weather today');
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome it is sunny', 8000), `answer; heard: ${heard(peer).join(' ')}`).toBe(true);
    expect(await waitFor(() => peer.stats.marksProcessed > 0, 3000), 'marks came back through MEDIA_MARK_PROCESSED').toBe(true);

    // Garbage mid-call: counted, logged, and the call goes on.
    peer.sendRaw('{"event":"MEDIA_START"');
    peer.sendRaw('NOT_AN_EVENT foo:bar');
    peer.sendRaw(JSON.stringify({ event: 'DTMF_END', digit: 'xyz' }));

    for (const digit of ['4', '2', '#']) peer.pressDigit(digit);
    expect(await waitFor(() => heard(peer).join(' ').endsWith('it is sunny thanks'), 8000), `DTMF answer; heard: ${heard(peer).join(' ')}`).toBe(true);

    say(peer, 'tell me a story');
    expect(await waitFor(() => heard(peer).length >= 2 + 3 + 1 + 4, 8000), `story; heard: ${heard(peer).join(' ')}`).toBe(true);
    const flushesBefore = peer.stats.flushes;
    say(peer, 'okay stop');
    expect(await waitFor(() => peer.stats.flushes > flushesBefore, 3000), 'FLUSH_MEDIA after the barge-in').toBe(true);
    expect(await waitFor(() => heard(peer).join(' ').endsWith('okay sure'), 8000), `reply after barge-in; heard: ${heard(peer).join(' ')}`).toBe(true);
    expect(heard(peer).length).toBeLessThan(2 + 3 + 1 + splitWords(STORY).length + 2);

    // chan_websocket framing and format: every message a whole number of frames, every command JSON.
    expect(peer.stats.droppedRemainderBytes).toBe(0);
    expect(peer.stats.badCommands).toEqual([]);
    expect(peer.stats.commands).toContain('MARK_MEDIA');

    await peer.hangUp();
    expect(await waitFor(async () => (await node.stores.callContexts.get(id))?.status === 'completed', 5000)).toBe(true);
    // The story is stored as interrupted, holding less than was generated (what MEDIA_MARK_PROCESSED confirmed).
    await node.writer.flush({ timeoutMs: 5000 });
    const context = await node.stores.callContexts.get(id);
    const conversation = await (await fetch(`${server.url}/v1/conversations/${context!.conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
    const story = (conversation.messages as { role: string; text: string; heardText?: string; interrupted: boolean }[]).find((m) => m.text === STORY);
    expect(story?.interrupted).toBe(true);
    expect(story!.heardText!.length).toBeLessThan(STORY.length);
    expect(conversation.conversation.status).toBe('completed');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const malformed = /voice_malformed_frames_total\{[^}]*channel="asterisk"[^}]*\} (\d+)/.exec(metrics);
    expect(Number(malformed?.[1])).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('plain-text control format, ulaw, id in the path: XOFF holds our audio, XON resumes, and our side hangs up with HANGUP', async () => {
    const id = await (await curl(shortAssistantId, 'name=welcome')).text();
    const peer = await connectAsteriskPeer({ url: `${wsBase()}/v1/talk/asterisk/ctx/${id}`, codec: 'ulaw', controlFormat: 'plain-text' });
    expect(await waitFor(() => heard(peer).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heard(peer).join(' ')}`).toBe(true);

    peer.xoff();
    await new Promise((r) => setTimeout(r, 300));
    const during = peer.stats.binaryMessages;
    say(peer, 'what is the weather today');
    await new Promise((r) => setTimeout(r, 2500));
    // Nothing sent while Asterisk said its queue is full (a frame already in flight may land).
    expect(peer.stats.binaryMessages - during).toBeLessThanOrEqual(1);
    peer.xon();
    say(peer, 'what is the weather today');
    expect(await waitFor(() => heard(peer).join(' ').endsWith('it is sunny'), 8000), `answer after XON; heard: ${heard(peer).join(' ')}`).toBe(true);

    // The assistant's 10 s maximum: our side ends the call with the HANGUP command, then closes.
    await peer.closed;
    expect(peer.stats.hangupCommands).toBe(1);
    expect(peer.stats.badCommands).toEqual([]);
    expect(peer.stats.droppedRemainderBytes).toBe(0);
    expect(await waitFor(async () => (await node.stores.callContexts.get(id))?.status === 'completed', 5000)).toBe(true);
  }, 40_000);

  it('refuses an unknown context (4404), a context used twice (4409), another channel’s context (4404) and a URL without an id (400)', async () => {
    const closeCode = (url: string) =>
      new Promise<number | string>((resolve) => {
        const ws = new WebSocket(url);
        ws.on('close', (code) => resolve(code));
        ws.on('unexpected-response', (_req, res) => resolve(`http ${res.statusCode}`));
        ws.on('error', () => undefined);
      });
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk/ctx/${crypto.randomUUID()}`)).toBe(4404);
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk?contextId=${crypto.randomUUID()}`)).toBe(4404);
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk/ctx`)).toBe('http 400');
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk/ctx/${crypto.randomUUID()}?contextId=${crypto.randomUUID()}`)).toBe('http 400');

    const id = await (await curl(assistantId, 'name=welcome')).text();
    const first = await connectAsteriskPeer({ url: `${wsBase()}/v1/talk/asterisk/ctx/${id}`, codec: 'ulaw', controlFormat: 'json' });
    expect(await waitFor(() => heard(first).length > 0, 10_000)).toBe(true);
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk/ctx/${id}`)).toBe(4409);
    await first.hangUp();

    // A browser session's context is not Asterisk's to claim.
    const web = await fetch(`${server.url}/v1/talk/web/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ assistantId }),
    });
    const { contextId } = await web.json();
    expect(await closeCode(`${wsBase()}/v1/talk/asterisk/ctx/${contextId}`)).toBe(4404);
  }, 30_000);
});
