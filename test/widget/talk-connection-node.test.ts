import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { systemClock } from '../../shared/contracts/clock';
import { createProviderRegistry } from '../../shared/providers/registry';
import type { WidgetError } from '../../web/widget/errors';
import { isWidgetError, requestWebSession, type WebSession } from '../../web/widget/session-request';
import { createTalkConnection, type EndedEvent, type PlayerPort, type SocketLike, type TranscriptEvent, type WidgetState } from '../../web/widget/talk-connection';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { waitFor } from '../media-node/twilio-helpers';

/**
 * The widget's session request and talk connection (everything but the Web Audio graph) against a real
 * media node with the tone-word fake providers: `ws` stands in for the browser's WebSocket, and a player
 * that plays instantly answers every mark at once.
 */

const PAGE_ORIGIN = 'https://shop.example';
let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let assistantId: string;
let publishableKey: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'widget-node-'));
  node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  registerPhoneFakes(registry, (m) => (lastUserText(m).includes('weather') ? 'it is sunny' : 'okay sure'));
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, talkResumeWindowMs: 3_000 });
  const post = async (path: string, key: string, body: unknown) => {
    const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    expect(response.status, path).toBe(201);
    return response.json();
  };
  const admin = node.generatedAdminKey!;
  const created = await post('/v1/projects', admin, { name: 'Widget' });
  assistantId = (await post('/v1/assistants', created.apiKey.key, phoneAssistant({ name: 'Web bot', prompt: 'You chat.', greeting: 'hello welcome' }))).id;
  publishableKey = (await post(`/v1/projects/${created.project.id}/publishable-keys`, admin, { allowedOrigins: [PAGE_ORIGIN] })).key;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await node?.close();
  await rm(dir, { recursive: true, force: true });
});

/** fetch as a page on `origin` sends it (Node's fetch does not add an Origin header by itself). */
const fetchFrom = (origin: string): typeof fetch => (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), origin } });

function connect(session: WebSession) {
  const states: WidgetState[] = [];
  const transcripts: TranscriptEvent[] = [];
  const ended: EndedEvent[] = [];
  const errors: WidgetError[] = [];
  const player = { frames: 0, marks: 0 };
  let answer: (id: string) => void = () => undefined;
  const port: PlayerPort = {
    audio: () => void player.frames++,
    mark: (id) => {
      player.marks++;
      answer(id);
    },
    pause: () => undefined,
    resume: () => undefined,
    flush: () => undefined,
  };
  const connection = createTalkConnection({
    url: session.url,
    assistantId,
    outputRateHz: 24_000,
    openSocket: (url) => new WebSocket(url) as unknown as SocketLike,
    player: port,
    clock: systemClock,
    handlers: {
      state: (s) => states.push(s),
      transcript: (t) => transcripts.push(t),
      metrics: () => undefined,
      error: (e) => errors.push(e),
      ended: (e) => ended.push(e),
      event: () => undefined,
    },
  });
  answer = (id) => connection.playbackComplete(id);
  const finalText = (role: 'user' | 'assistant') => transcripts.filter((t) => t.role === role && t.final).map((t) => t.text);
  return { connection, states, transcripts, ended, errors, player, finalText };
}

describe('widget connection against a media node', () => {
  it('gets a session with its publishable key, hears the greeting, types a turn, survives a drop, hangs up', async () => {
    const session = await requestWebSession({ baseUrl: server.url, publishableKey, assistantId, fetch: fetchFrom(PAGE_ORIGIN) });
    if (isWidgetError(session)) throw new Error(`session refused: ${session.message} (${session.detail})`);
    expect(session.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/talk\/web\/ctx\//);

    const c = connect(session);
    c.connection.start();
    expect(await waitFor(() => c.finalText('assistant').includes('hello welcome'), 8_000), 'greeting').toBe(true);
    expect(c.states.slice(0, 2)).toEqual(['connecting', 'listening']);
    // The greeting's audio came at 24 kHz (as asked) and its marks were answered.
    expect(c.player.frames).toBeGreaterThan(10);
    expect(await waitFor(() => c.connection.stats.marksAnswered > 0, 3_000)).toBe(true);

    c.connection.sendText('what is the weather');
    expect(await waitFor(() => c.finalText('assistant').includes('it is sunny'), 8_000), 'typed turn answered').toBe(true);
    expect(c.finalText('user')).toContain('what is the weather');

    c.connection.dropSocket();
    expect(c.connection.state).toBe('reconnecting');
    expect(await waitFor(() => c.connection.state === 'listening', 5_000), 're-attached').toBe(true);
    expect(c.connection.stats.reconnects).toBe(1);
    c.connection.sendText('hello again');
    expect(await waitFor(() => c.finalText('assistant').includes('okay sure'), 8_000), 'turn after re-attach').toBe(true);

    c.connection.hangUp();
    expect(await waitFor(() => c.connection.state === 'ended', 5_000)).toBe(true);
    expect(c.ended).toEqual([{ by: 'user', reason: 'client-disconnect' }]);
    expect(c.errors).toEqual([]);
    expect(await waitFor(async () => (await node.stores.callContexts.get(session.contextId))?.status === 'completed', 5_000)).toBe(true);
  }, 60_000);

  it('explains a refused session (page origin not allowed, unknown assistant) and a used-up session URL', async () => {
    const wrongOrigin = await requestWebSession({ baseUrl: server.url, publishableKey, assistantId, fetch: fetchFrom('https://evil.example') });
    expect(isWidgetError(wrongOrigin) && wrongOrigin).toMatchObject({ code: 'SESSION_REFUSED', message: expect.stringMatching(/not allowed to use this assistant/) });
    const unknown = await requestWebSession({ baseUrl: server.url, publishableKey, assistantId: 'no-such-assistant', fetch: fetchFrom(PAGE_ORIGIN) });
    expect(isWidgetError(unknown) && unknown).toMatchObject({ code: 'SESSION_REFUSED', message: expect.stringMatching(/does not exist/) });
    const unreachable = await requestWebSession({ baseUrl: 'http://127.0.0.1:1', publishableKey, assistantId, fetch: fetchFrom(PAGE_ORIGIN) });
    expect(isWidgetError(unreachable) && unreachable.code).toBe('NETWORK');

    // A session URL whose call already ran: refused by the server with 4401 (claimed, no token).
    const session = await requestWebSession({ baseUrl: server.url, publishableKey, assistantId, fetch: fetchFrom(PAGE_ORIGIN) });
    if (isWidgetError(session)) throw new Error(session.message);
    const first = connect(session);
    first.connection.start();
    expect(await waitFor(() => first.connection.state === 'listening', 5_000)).toBe(true);
    const second = connect(session);
    second.connection.start();
    expect(await waitFor(() => second.connection.state === 'error', 5_000)).toBe(true);
    expect(second.errors[0]).toMatchObject({ code: 'CALL_REFUSED', message: expect.stringMatching(/connected elsewhere/) });
    expect(second.errors[0]!.detail).toContain('RESUME_TOKEN_REQUIRED');
    first.connection.hangUp();
    expect(await waitFor(() => first.connection.state === 'ended', 5_000)).toBe(true);
  }, 30_000);
});
