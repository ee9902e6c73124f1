import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { createTalkClient, type TalkClient } from '../../media-node/grpc/talk-service';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { createProviderRegistry } from '../../shared/providers/registry';
import { DisconnectionType, InterruptionType } from '../../shared/talk/gen/talk_api_pb';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { connectGrpcTalk, connectWebTalk, type TalkPeer } from '../fakes/talk-client';
import { splitWords } from '../fakes/tones';
import { waitFor } from './twilio-helpers';

/**
 * The talk protocol (protos/talk_api.proto) on a real media node (PGlite, fake tone-word providers on the
 * wall clock): a browser's WebSocket at /v1/talk/web/ctx/:id and an SDK's gRPC AssistantTalk on the same
 * port. The client plays audio in real time and answers playback marks like a browser; what it "heard" is
 * decoded from the frames it played.
 */

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const RESUME_WINDOW_MS = 2_000;

let dir: string;
let node: NodeRuntime;
let server: MediaServer;
let apiKey: string;
let assistantId: string;
let otherAssistantId: string;
let otherKey: string;
let otherProjectAssistantId: string;
let grpcClient: TalkClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'talk-e2e-'));
  node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
  const { resamplers, webrtc } = await audioRuntime();
  const registry = createProviderRegistry();
  registerPhoneFakes(registry, (m) => {
    const said = lastUserText(m);
    if (said.includes('weather')) return 'it is sunny';
    if (said.includes('story')) return STORY;
    if (said.includes('joke')) return 'here is a joke';
    return 'okay sure';
  });
  server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, talkResumeWindowMs: RESUME_WINDOW_MS });

  const admin = node.generatedAdminKey!;
  const projectKey = async (name: string) => (await (await api('/v1/projects', { method: 'POST', key: admin, body: JSON.stringify({ name }) })).json()).apiKey.key as string;
  const createAssistant = async (key: string, name: string) =>
    (await (await api('/v1/assistants', { method: 'POST', key, body: JSON.stringify(phoneAssistant({ name, prompt: 'You chat.', greeting: 'hello welcome' })) })).json()).id as string;
  apiKey = await projectKey('Talk');
  otherKey = await projectKey('Other');
  assistantId = await createAssistant(apiKey, 'Web bot');
  otherAssistantId = await createAssistant(apiKey, 'Second bot');
  otherProjectAssistantId = await createAssistant(otherKey, 'Foreign bot');
  grpcClient = createTalkClient(`127.0.0.1:${server.port}`);
}, 60_000);

afterAll(async () => {
  grpcClient?.close();
  await server?.close();
  await node?.close();
  await rm(dir, { recursive: true, force: true });
});

function api(path: string, init: RequestInit & { key?: string } = {}) {
  return fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
}

async function webSession(body: Record<string, unknown> = { assistantId }, key = apiKey): Promise<{ contextId: string; conversationId: string; url: string }> {
  const response = await api('/v1/talk/web/session', { method: 'POST', key, body: JSON.stringify(body) });
  expect(response.status, await response.clone().text()).toBe(201);
  return response.json();
}

const heard = (peer: TalkPeer) => peer.heardWords().join(' ');
const initialized = (peer: TalkPeer) => peer.all('initialization');
const errors = (peer: TalkPeer) => peer.all('error');
/** The assistant's text deltas (of one message, or all), as words. */
const assistantText = (peer: TalkPeer, id?: string) =>
  peer
    .all('assistant')
    .filter((m) => !m.completed && m.text && (id === undefined || m.id === id))
    .map((m) => m.text)
    .join(' ')
    .split(/\s+/)
    .filter(Boolean)
    .join(' ');
async function contextStatus(contextId: string): Promise<string | undefined> {
  return (await node.stores.callContexts.get(contextId))?.status;
}
/** The close code of a WebSocket that sends one Initialization (or `frame`) and is closed by the server. */
async function closeCodeAfter(url: string, send: (c: Awaited<ReturnType<typeof connectWebTalk>>) => void) {
  const client = await connectWebTalk(url);
  send(client);
  const closed = await Promise.race([client.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
  client.ws.terminate();
  return { closed, errors: errors(client.peer) };
}

describe('talk over WebSocket (/v1/talk/web/ctx/:contextId)', () => {
  it('runs a browser call: greeting, transcripts, reply, barge-in cut to what was heard, typed text, resume, hang-up', async () => {
    const session = await webSession({ assistantId, variables: { name: 'Ada' } });
    expect(session.url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${server.port}/v1/talk/web/ctx/${session.contextId}$`));
    const first = await connectWebTalk(`${session.url}?ignored=1`);
    const a = first.peer;
    a.initialize();
    expect(await waitFor(() => initialized(a).length === 1, 5_000), 'SessionInitialized').toBe(true);
    const init = initialized(a)[0]!;
    expect(init).toMatchObject({ contextId: session.contextId, conversationId: session.conversationId, resumed: false, resumeWindowMs: RESUME_WINDOW_MS });
    expect(init.assistant?.id).toBe(assistantId);
    expect(init.resumeToken.length).toBeGreaterThan(20);
    expect(init.outputAudio?.sampleRate).toBe(16_000);
    expect(await contextStatus(session.contextId)).toBe('claimed');
    expect(server.activeCalls).toBe(1);

    // Greeting: text delta(s) and audio, with marks answered as it plays.
    expect(await waitFor(() => heard(a) === 'hello welcome', 8_000), `greeting; heard: ${heard(a)}`).toBe(true);
    expect(assistantText(a)).toBe('hello welcome');
    expect(a.stats.framesReceived).toBeGreaterThan(10);
    expect(await waitFor(() => a.stats.marksAnswered > 0, 3_000), 'a PlaybackMark answered').toBe(true);

    // A spoken turn: interim then final transcript, the reply's text and audio, then its metrics.
    a.say('what is the weather today');
    expect(await waitFor(() => heard(a) === 'hello welcome it is sunny', 10_000), `answer; heard: ${heard(a)}`).toBe(true);
    const transcripts = a.all('user');
    expect(transcripts.some((t) => !t.completed && t.text.length > 0)).toBe(true);
    const final = transcripts.find((t) => t.completed);
    expect(final?.text).toBe('what is the weather today');
    expect(transcripts.indexOf(final!)).toBeGreaterThan(transcripts.findIndex((t) => !t.completed));
    const replyId = a.all('assistant').find((m) => m.text.includes('sunny'))!.id;
    expect(assistantText(a, replyId)).toBe('it is sunny');
    expect(await waitFor(() => a.all('metric').some((m) => m.id === replyId), 5_000), 'metrics of the reply').toBe(true);
    const metric = a.all('metric').find((m) => m.id === replyId)!;
    expect(metric.values.find((v) => v.name === 'voice_to_voice_ms')?.value).toBeGreaterThan(0);

    // Barge-in: the caller talks over the story: VAD pauses playback, words confirm and flush it.
    a.say('tell me a story');
    expect(await waitFor(() => a.heardWords().length >= 5 + 4, 10_000), `story; heard: ${heard(a)}`).toBe(true);
    a.say('okay stop');
    expect(await waitFor(() => a.all('interruption').some((i) => i.type === InterruptionType.WORD), 5_000), 'a confirmed interruption').toBe(true);
    const interruptions = a.all('interruption');
    expect(interruptions[0]?.type).toBe(InterruptionType.VAD);
    const storyId = interruptions[0]!.id;
    expect(a.all('playbackPause').some((p) => p.id === storyId)).toBe(true);
    expect(a.all('playbackFlush').some((p) => p.id === storyId)).toBe(true);
    expect(await waitFor(() => heard(a).endsWith('okay sure'), 10_000), `reply after barge-in; heard: ${heard(a)}`).toBe(true);
    const storyEnd = a.all('assistant').find((m) => m.id === storyId && m.completed);
    expect(storyEnd?.interrupted).toBe(true);
    const storyHeard = a.heardWords().slice(5, -2);

    // Typed input: shown as the user's (final) transcript, answered like speech.
    a.type('tell me a joke');
    expect(await waitFor(() => heard(a).endsWith('here is a joke'), 10_000), `typed turn; heard: ${heard(a)}`).toBe(true);
    expect(a.all('user').some((t) => t.completed && t.text === 'tell me a joke')).toBe(true);

    // A malformed frame mid-call: a non-fatal Error, the call goes on.
    first.ws.send(new Uint8Array([0xff, 0xff, 0xff, 0x01]));
    first.ws.send('hello as text');
    expect(await waitFor(() => errors(a).length >= 2, 3_000)).toBe(true);
    expect(errors(a).map((e) => [e.code, e.fatal])).toEqual([
      ['MALFORMED_FRAME', false],
      ['TEXT_FRAME', false],
    ]);

    // The socket dies; the client comes back with its token and the call carries on.
    first.ws.terminate();
    await first.closed;
    expect(await waitFor(async () => (await node.stores.callContexts.get(session.contextId))?.detachedAt !== undefined, 3_000), 'detached').toBe(true);
    const second = await connectWebTalk(session.url);
    const b = second.peer;
    b.initialize({ resumeToken: init.resumeToken });
    expect(await waitFor(() => initialized(b).length === 1, 5_000), 'resumed').toBe(true);
    const resumed = initialized(b)[0]!;
    expect(resumed.resumed).toBe(true);
    expect(resumed.contextId).toBe(session.contextId);
    expect(resumed.resumeToken).not.toBe(init.resumeToken);
    b.say('what is the weather today');
    expect(await waitFor(() => heard(b).endsWith('it is sunny'), 10_000), `answer after resume; heard: ${heard(b)}`).toBe(true);

    // The used token opens nothing, and does not disturb the running call.
    const stale = await closeCodeAfter(session.url, (c) => c.peer.initialize({ resumeToken: init.resumeToken }));
    expect(stale.closed?.code).toBe(4401);
    expect(stale.errors[0]?.code).toBe('RESUME_TOKEN_INVALID');
    expect(second.ws.readyState).toBe(second.ws.OPEN);

    // Hang up: Disconnection{USER}, close 1000, context completed.
    b.hangUp();
    const closed = await Promise.race([second.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
    expect(closed?.code).toBe(1000);
    expect(b.all('disconnection').at(-1)?.type).toBe(DisconnectionType.USER);
    expect(await waitFor(async () => (await contextStatus(session.contextId)) === 'completed', 5_000)).toBe(true);
    expect(await waitFor(() => server.activeCalls === 0 && server.talkSessions === 0, 5_000), `calls ${server.activeCalls}, sessions ${server.talkSessions}`).toBe(true);

    // The stored story is what the caller heard of it (a word cut mid-way may count on one side only).
    await node.writer.flush({ timeoutMs: 5_000 });
    const body = await (await api(`/v1/conversations/${session.conversationId}`)).json();
    const messages = body.messages as { role: string; text: string; heardText?: string; interrupted: boolean }[];
    const story = messages.find((m) => m.role === 'assistant' && m.text.startsWith('once upon'))!;
    expect(story.interrupted).toBe(true);
    const recorded = story.heardText!.split(' ');
    expect(storyHeard.length).toBeGreaterThan(2);
    expect(storyHeard.length).toBeLessThan(splitWords(STORY).length);
    expect(recorded).toEqual(storyHeard.slice(0, recorded.length));
    expect(Math.abs(recorded.length - storyHeard.length)).toBeLessThanOrEqual(1);
    expect(messages.filter((m) => m.role === 'user').map((m) => m.text)).toEqual(['what is the weather today', 'tell me a story', 'okay stop', 'tell me a joke', 'what is the weather today']);
    expect(body.conversation.status).toBe('completed');
  }, 90_000);

  it('refuses: unknown context 4404, claimed without token 4401, another assistant 4400, no initialization 1008; a lapsed resume window fails the call', async () => {
    const unknown = await closeCodeAfter(`ws://127.0.0.1:${server.port}/v1/talk/web/ctx/${crypto.randomUUID()}`, (c) => c.peer.initialize());
    expect(unknown.closed?.code).toBe(4404);
    expect(unknown.errors[0]).toMatchObject({ code: 'CONTEXT_UNKNOWN', fatal: true });

    const mismatch = await webSession();
    const wrongAssistant = await closeCodeAfter(mismatch.url, (c) => c.peer.initialize({ assistant: { id: otherAssistantId } }));
    expect(wrongAssistant.closed?.code).toBe(4400);
    expect(wrongAssistant.errors[0]?.code).toBe('INIT_MISMATCH');
    expect(await contextStatus(mismatch.contextId)).toBe('pending');

    const notInit = await closeCodeAfter(mismatch.url, (c) => c.peer.type('hello'));
    expect(notInit.closed?.code).toBe(1008);
    expect(notInit.errors[0]?.code).toBe('INITIALIZATION_REQUIRED');
    const garbage = await closeCodeAfter(mismatch.url, (c) => c.ws.send(new Uint8Array([0x0a, 0xff])));
    expect(garbage.closed?.code).toBe(1008);

    // A running call: a second client without the token is refused; then the first one vanishes for good.
    const running = await webSession();
    const owner = await connectWebTalk(running.url);
    owner.peer.initialize();
    expect(await waitFor(() => initialized(owner.peer).length === 1, 5_000)).toBe(true);
    const intruder = await closeCodeAfter(running.url, (c) => c.peer.initialize());
    expect(intruder.closed?.code).toBe(4401);
    expect(intruder.errors[0]?.code).toBe('RESUME_TOKEN_REQUIRED');
    owner.ws.terminate();
    await owner.closed;
    const droppedAt = Date.now();
    expect(await waitFor(async () => (await contextStatus(running.contextId)) === 'failed', RESUME_WINDOW_MS + 5_000), 'failed after the window').toBe(true);
    expect(Date.now() - droppedAt).toBeGreaterThanOrEqual(RESUME_WINDOW_MS - 100);
    const context = await node.stores.callContexts.get(running.contextId);
    expect(context?.disconnectReason).toBe('resume-window-lapsed');
    // Too late: the token opens nothing any more.
    const late = await closeCodeAfter(running.url, (c) => c.peer.initialize({ resumeToken: initialized(owner.peer)[0]!.resumeToken }));
    expect(late.closed?.code).toBe(4410);

    expect(await waitFor(() => server.talkSessions === 0 && server.activeCalls === 0, 5_000), `sessions ${server.talkSessions}`).toBe(true);
    const metricsText = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricsText).toMatch(/voice_malformed_frames_total\{channel="web"\} [1-9]/);
  }, 40_000);
});

describe('talk over gRPC (talk_api.TalkService/AssistantTalk, same port)', () => {
  it('joins a web session by x-context-id: greeting, a turn, hang-up with status OK', async () => {
    const session = await webSession();
    const { peer, status } = connectGrpcTalk(grpcClient, { authorization: `Bearer ${apiKey}`, 'x-context-id': session.contextId });
    peer.initialize();
    expect(await waitFor(() => initialized(peer).length === 1, 5_000), 'SessionInitialized').toBe(true);
    expect(initialized(peer)[0]).toMatchObject({ contextId: session.contextId, resumed: false });
    expect(await waitFor(() => heard(peer) === 'hello welcome', 8_000), `greeting; heard: ${heard(peer)}`).toBe(true);
    peer.say('what is the weather today');
    expect(await waitFor(() => heard(peer) === 'hello welcome it is sunny', 10_000), `answer; heard: ${heard(peer)}`).toBe(true);
    expect(peer.all('user').find((t) => t.completed)?.text).toBe('what is the weather today');
    expect(assistantText(peer)).toBe('hello welcome it is sunny');
    peer.hangUp();
    const end = await Promise.race([status, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
    expect(end?.code).toBe(grpc.status.OK);
    expect(peer.all('disconnection').at(-1)?.type).toBe(DisconnectionType.USER);
    expect(await waitFor(async () => (await contextStatus(session.contextId)) === 'completed', 5_000)).toBe(true);
  }, 30_000);

  it('creates the context from an Initialization naming the assistant; a malformed message is answered; a cancelled stream resumes', async () => {
    const { writeRaw, peer, stream } = connectGrpcTalk(grpcClient, { authorization: `Bearer ${apiKey}` });
    peer.initialize({ assistant: { id: assistantId }, variables: { name: 'Ada' } });
    expect(await waitFor(() => initialized(peer).length === 1, 5_000), 'SessionInitialized').toBe(true);
    const contextId = initialized(peer)[0]!.contextId;
    const context = await node.stores.callContexts.get(contextId);
    expect(context).toMatchObject({ provider: 'web', assistantId, status: 'claimed', variables: { name: 'Ada' } });
    expect(await waitFor(() => heard(peer) === 'hello welcome', 8_000), `greeting; heard: ${heard(peer)}`).toBe(true);
    // Bytes that are no AssistantTalkRequest: an Error message back, the stream and the call go on.
    writeRaw(new Uint8Array([0x0a, 0xff, 0x01]));
    expect(await waitFor(() => errors(peer).length === 1, 3_000)).toBe(true);
    expect(errors(peer)[0]).toMatchObject({ code: 'MALFORMED_FRAME', fatal: false });
    peer.type('tell me a joke');
    expect(await waitFor(() => heard(peer).endsWith('here is a joke'), 10_000), `typed turn; heard: ${heard(peer)}`).toBe(true);

    // The client cancels (its connection died): a drop, and it resumes on a new stream with x-context-id.
    stream.cancel();
    peer.stop();
    expect(await waitFor(async () => (await node.stores.callContexts.get(contextId))?.detachedAt !== undefined, 3_000), 'detached').toBe(true);
    const again = connectGrpcTalk(grpcClient, { authorization: `Bearer ${apiKey}`, 'x-context-id': contextId });
    again.peer.initialize({ resumeToken: initialized(peer)[0]!.resumeToken });
    expect(await waitFor(() => initialized(again.peer).length === 1, 5_000), 'resumed').toBe(true);
    expect(initialized(again.peer)[0]).toMatchObject({ contextId, resumed: true });
    again.peer.hangUp();
    expect((await again.status).code).toBe(grpc.status.OK);
    expect(await waitFor(async () => (await contextStatus(contextId)) === 'completed', 5_000)).toBe(true);
  }, 30_000);

  it('refuses a bad key (UNAUTHENTICATED), another project (PERMISSION_DENIED), an unknown context (NOT_FOUND), an unknown assistant (NOT_FOUND)', async () => {
    const statusOf = async (metadata: Record<string, string>, init: Parameters<TalkPeer['initialize']>[0] = {}) => {
      const { peer, status, stream } = connectGrpcTalk(grpcClient, metadata);
      peer.initialize(init);
      const result = await Promise.race([status, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
      stream.cancel();
      return { code: result?.code, details: result?.details, errors: errors(peer) };
    };
    const session = await webSession();
    expect((await statusOf({ authorization: 'Bearer vr_sk_not-a-key', 'x-context-id': session.contextId })).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await statusOf({ 'x-context-id': session.contextId })).code).toBe(grpc.status.UNAUTHENTICATED);
    const foreign = await statusOf({ authorization: `Bearer ${otherKey}`, 'x-context-id': session.contextId });
    expect(foreign.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(foreign.errors[0]?.code).toBe('FORBIDDEN');
    expect((await statusOf({ authorization: `Bearer ${apiKey}`, 'x-context-id': crypto.randomUUID() })).code).toBe(grpc.status.NOT_FOUND);
    const notUuid = await statusOf({ authorization: `Bearer ${apiKey}`, 'x-context-id': 'nope' });
    expect(notUuid.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(notUuid.details).toContain('x-context-id');
    expect((await statusOf({ authorization: `Bearer ${apiKey}` }, { assistant: { id: otherProjectAssistantId } })).code).toBe(grpc.status.NOT_FOUND);
    const noAssistant = await statusOf({ authorization: `Bearer ${apiKey}` });
    expect(noAssistant.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noAssistant.errors[0]?.code).toBe('ASSISTANT_REQUIRED');
    // The context the refused streams named is untouched and still usable.
    expect(await contextStatus(session.contextId)).toBe('pending');
    // The session's own refusals map to statuses too: another assistant than the context's → INVALID_ARGUMENT.
    const mismatch = await statusOf({ authorization: `Bearer ${apiKey}`, 'x-context-id': session.contextId }, { assistant: { id: otherAssistantId } });
    expect(mismatch.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(mismatch.errors[0]?.code).toBe('INIT_MISMATCH');
  }, 30_000);
});

describe('draining', () => {
  it('counts a talk call, waits for it, and at the deadline ends and records it', async () => {
    const session = await webSession();
    const { peer, closed } = await connectWebTalk(session.url);
    peer.initialize();
    expect(await waitFor(() => heard(peer) === 'hello welcome', 8_000), `greeting; heard: ${heard(peer)}`).toBe(true);
    expect(server.activeCalls).toBe(1);
    const startedAt = Date.now();
    let drained = false;
    const draining = server.drain(5_000).then(() => (drained = true));
    // The call still runs while the drain waits for it.
    peer.say('what is the weather today');
    expect(await waitFor(() => heard(peer) === 'hello welcome it is sunny', 8_000), `answer while draining; heard: ${heard(peer)}`).toBe(true);
    await draining;
    expect(drained).toBe(true);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(4_900);
    const end = await Promise.race([closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3_000))]);
    expect(end?.code).toBe(1000);
    expect(peer.all('disconnection').at(-1)?.reason).toBe('node-shutdown');
    const context = await node.stores.callContexts.get(session.contextId);
    expect(context).toMatchObject({ status: 'completed', disconnectReason: 'node-shutdown' });
  }, 20_000);
});
