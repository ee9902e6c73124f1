import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallRecords } from '../../edge/routes/call-records';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { createProviderRegistry } from '../../shared/providers/registry';
import { connectAudioSocketPeer, tlv, type AudioSocketPeer } from '../fakes/audiosocket-peer';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { nodeVariants } from './node-variants';
import { waitFor } from './twilio-helpers';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';

const say = (peer: AudioSocketPeer, text: string) => peer.say(synthesizeWords(splitWords(text), peer.sampleRateHz).pcm);
const heardWords = (peer: AudioSocketPeer) => decodeWords(peer.heardPcm(), peer.sampleRateHz);
const heard = (peer: AudioSocketPeer) => heardWords(peer).join(' ');

describe.each(nodeVariants())('AudioSocket on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let port: number;
  let apiKey: string;
  let cleanup: (() => Promise<void>) | undefined;
  const assistants: Record<'chat' | 'idle', { projectId: string; assistantId: string; assistantVersion: number }> = {} as never;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'audiosocket-e2e-'));
    const prepared = await variant.prepare();
    cleanup = prepared.cleanup;
    // PORT=0 gives AudioSocket a random port too (AUDIOSOCKET_PORT unset).
    node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', ...prepared.env }));
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registerPhoneFakes(registry, (m) => {
      const said = lastUserText(m);
      if (said.includes('pressed the keys: 42')) return 'thanks';
      if (said.includes('weather')) return 'it is sunny';
      if (said.includes('story')) return STORY;
      return 'okay sure';
    });
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });
    expect(server.audioSocketPort).toBeGreaterThan(0);
    port = server.audioSocketPort!;

    const admin = node.generatedAdminKey!;
    const api = (path: string, key: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    const created = await (await api('/v1/projects', admin, { name: 'AudioSocket E2E' })).json();
    apiKey = created.apiKey.key as string;
    const chat = await (
      await api('/v1/assistants', apiKey, { ...phoneAssistant({ name: 'Asterisk bot', prompt: 'You answer the phone.', greeting: 'hello welcome' }), output: { leadMs: 600 } })
    ).json();
    const idle = await (
      await api('/v1/assistants', apiKey, {
        ...phoneAssistant({ name: 'Asterisk idle bot', prompt: 'You answer the phone.', greeting: 'hello' }),
        idle: { timeoutMs: 1000, maxReprompts: 0, reprompts: ['are you still there'], hangupMessage: 'thanks goodbye' },
      })
    ).json();
    for (const [name, a] of [['chat', chat], ['idle', idle]] as const) assistants[name] = { projectId: created.project.id, assistantId: a.id, assistantVersion: a.version };
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  /** The dialplan's CURL(): `POST /v1/talk/asterisk/call/:assistantId` answers the context id as plain text. */
  const curlContext = async () => {
    const response = await fetch(`${server.url}/v1/talk/asterisk/call/${assistants.chat.assistantId}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'from=100',
    });
    expect(response.status).toBe(201);
    const id = await response.text();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    return (await node.stores.callContexts.get(id))!;
  };
  /** What that route creates (made directly, for other assistants and channels): a context of the `asterisk` provider. */
  const newContext = async (assistant: 'chat' | 'idle' = 'chat', channel = 'asterisk') => {
    const { context } = await createCallRecords(node.stores, { ...assistants[assistant], channel, direction: 'inbound', callStatus: 'in-progress' });
    return context;
  };
  const malformedCount = async () => Number(/voice_malformed_frames_total\{channel="asterisk"\} (\d+)/.exec(await server.metrics.metricsText())?.[1] ?? 0);

  it('a call over real TCP with frames cut across writes: greeting, answer, DTMF, a malformed frame survived, barge-in, caller hang-up', async () => {
    const context = await curlContext();
    const peer = await connectAudioSocketPeer({ port, uuid: context.id, seed: 3 });
    expect(await waitFor(() => heard(peer) === 'hello welcome', 10_000), `greeting; heard: ${heard(peer)}`).toBe(true);
    say(peer, 'what is the weather today');
    expect(await waitFor(() => heard(peer) === 'hello welcome it is sunny', 8000), `answer; heard: ${heard(peer)}`).toBe(true);

    // Keys pressed reach the model as a user message (terminated by #); a key press interrupts, so let the answer end first.
    await new Promise((r) => setTimeout(r, 300));
    for (const digit of '42#') peer.pressDigit(digit);
    expect(await waitFor(() => heard(peer).endsWith('it is sunny thanks'), 8000), `DTMF answer; heard: ${heard(peer)}`).toBe(true);

    // Malformed frames mid-call: an unknown type, then audio of a rate this call does not use. Counted, survived.
    const before = await malformedCount();
    peer.sendRaw(tlv(0x42, [1, 2, 3]));
    peer.sendRaw(tlv(0x12, new Uint8Array(640)));
    expect(await waitFor(async () => (await malformedCount()) >= before + 2, 3000), 'malformed frames counted').toBe(true);

    say(peer, 'tell me a story');
    expect(await waitFor(() => heardWords(peer).length >= 6 + 4, 8000), `story; heard: ${heard(peer)}`).toBe(true);
    say(peer, 'okay stop');
    expect(await waitFor(() => heard(peer).endsWith('okay sure'), 8000), `reply after barge-in; heard: ${heard(peer)}`).toBe(true);
    // Barge-in: the story stops reaching the caller soon after the caller starts speaking (voice detection,
    // plus at most the two frames already written). The reply comes much later (speech, end of turn, LLM).
    const bargeAt = peer.stats.utterancesSentAtMs.at(-1)!;
    const after = peer.heard.filter((h) => h.atMs >= bargeAt);
    const replyAt = after.findIndex((h, i) => i > 0 && h.atMs - after[i - 1]!.atMs > 300);
    const storyTailMs = (replyAt > 0 ? after[replyAt - 1]! : peer.heard.filter((h) => h.atMs < bargeAt).at(-1)!).playedUntilMs - bargeAt;
    // The chat assistant hands the channel 600 ms ahead: without the link dropping what it held, ~600 ms more would play.
    expect(storyTailMs, `story played on for ${storyTailMs} ms after the caller began to speak`).toBeLessThan(450);
    await peer.hangUp();

    // Everything the server sent was hang-up or non-empty audio at our rate, never far ahead of real time.
    expect(peer.stats.violations).toEqual([]);
    expect(peer.stats.maxAheadMs).toBeLessThanOrEqual(80);
    expect(peer.stats.splitsInHeader).toBeGreaterThan(5);
    expect(peer.stats.splitsInPayload).toBeGreaterThan(5);

    expect(await waitFor(async () => (await node.stores.callContexts.get(context.id))?.status === 'completed', 5000)).toBe(true);
    await node.writer.flush({ timeoutMs: 5000 });
    const conversation = await node.stores.conversations.get(context.conversationId);
    expect(conversation).toBeDefined();
    const messages = await node.stores.conversations.messages(context.conversationId);
    const story = messages.find((m) => m.role === 'assistant' && m.text.startsWith('once upon'));
    expect(story?.interrupted).toBe(true);
    expect(story, `messages: ${JSON.stringify(messages.map((m) => [m.role, m.text]))}`).toBeDefined();
    // The history holds what the caller heard of the story: nothing written to Asterisk went unrecorded
    // (we never ran far ahead), nothing recorded went unheard. A word cut mid-way may count on one side only.
    const words = heardWords(peer);
    const storyHeard = words.slice(words.indexOf('thanks') + 1, -2);
    const recorded = story!.heardText!.split(' ');
    expect(storyHeard.length).toBeGreaterThan(2);
    expect(storyHeard.length).toBeLessThan(splitWords(STORY).length);
    expect(recorded).toEqual(storyHeard.slice(0, recorded.length));
    expect(Math.abs(recorded.length - storyHeard.length)).toBeLessThanOrEqual(1);
  }, 60_000);

  it('refuses an unknown UUID, a UUID already claimed, another channel`s context and a stream not starting with a UUID: hang-up frame, then close', async () => {
    const hungUp = async (peer: AudioSocketPeer) => {
      await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 5000))]);
      return { closed: peer.isClosed, hangups: peer.stats.hangupsReceived, audio: peer.stats.audioFramesReceived };
    };
    const unknown = await connectAudioSocketPeer({ port, uuid: crypto.randomUUID() });
    expect(await hungUp(unknown)).toEqual({ closed: true, hangups: 1, audio: 0 });

    const context = await newContext();
    const first = await connectAudioSocketPeer({ port, uuid: context.id });
    expect(await waitFor(() => heardWords(first).length > 0, 10_000)).toBe(true);
    // Asterisk does not keep UUIDs unique (a redirect may reconnect with the same one): the second is refused.
    const second = await connectAudioSocketPeer({ port, uuid: context.id });
    expect(await hungUp(second)).toEqual({ closed: true, hangups: 1, audio: 0 });
    expect(first.isClosed).toBe(false);
    await first.drop();

    const twilio = await newContext('chat', 'twilio');
    const wrongChannel = await connectAudioSocketPeer({ port, uuid: twilio.id });
    expect(await hungUp(wrongChannel)).toEqual({ closed: true, hangups: 1, audio: 0 });
    expect((await node.stores.callContexts.get(twilio.id))?.status).toBe('pending');

    // Raw: audio before any UUID.
    const before = await malformedCount();
    const raw = connect({ port, host: '127.0.0.1' });
    const got: number[] = [];
    raw.on('data', (d: Buffer) => got.push(...d));
    await new Promise((r) => raw.once('connect', r));
    raw.write(tlv(0x10, new Uint8Array(320)));
    await new Promise((r) => raw.once('close', r));
    expect(got).toEqual([0, 0, 0]);
    expect(await malformedCount()).toBe(before + 1);
  }, 40_000);

  it('at 16 kHz (Dial(AudioSocket/...c(slin16))): answers in slin16, and hangs up itself with a hang-up frame', async () => {
    const context = await newContext('idle');
    const peer = await connectAudioSocketPeer({ port, uuid: context.id, sampleRateHz: 16000, seed: 11 });
    // Greeting, one second of silence, the goodbye, then our hang-up frame and the close.
    await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 15_000))]);
    expect(peer.isClosed).toBe(true);
    expect(heard(peer)).toBe('hello thanks goodbye');
    expect(peer.stats.hangupsReceived).toBe(1);
    expect(peer.stats.endedByServer).toBe(true);
    expect(peer.stats.violations).toEqual([]);
    expect(peer.heard.every((h) => h.pcm.length === 320)).toBe(true);
    expect(await waitFor(async () => (await node.stores.callContexts.get(context.id))?.status === 'completed', 5000)).toBe(true);
  }, 30_000);

  it('a declared frame length over the limit hangs up (the stream cannot be framed any more)', async () => {
    const context = await newContext();
    const peer = await connectAudioSocketPeer({ port, uuid: context.id, splitWrites: false });
    expect(await waitFor(() => heardWords(peer).length > 0, 10_000)).toBe(true);
    const before = await malformedCount();
    peer.sendRaw(Uint8Array.from([0x10, 0xff, 0xfe]));
    await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 5000))]);
    expect(peer.isClosed).toBe(true);
    expect(peer.stats.hangupsReceived).toBe(1);
    // At least this one (the counter is node-wide: a call of an earlier test may still be winding down).
    expect(await malformedCount()).toBeGreaterThanOrEqual(before + 1);
    expect(await waitFor(async () => (await node.stores.callContexts.get(context.id))?.status === 'completed', 5000)).toBe(true);
  }, 30_000);
});
