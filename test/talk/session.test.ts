import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PIPELINE_FORMAT, pcm16Bytes, pcm16View, type AudioFrame } from '../../shared/audio/format';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import type { Channel } from '../../shared/contracts/channel';
import type { CallObserver } from '../../shared/contracts/observer';
import type { Communication } from '../../shared/engine/communication';
import { createCallContextStore, type CallContext, type CallContextStore, type CreateCallContextInput } from '../../shared/store/call-contexts';
import type { SqlClient } from '../../shared/store/sql';
import {
  AssistantTalkRequestSchema,
  AssistantTalkResponseSchema,
  AudioEncoding,
  DisconnectionType,
  StreamMode,
  type AssistantTalkResponse,
  type SessionInitialized,
} from '../../shared/talk/gen/talk_api_pb';
import { createTalkSession, type TalkSessionDeps } from '../../shared/talk/session';
import type { TalkTransport } from '../../shared/talk/transport';
import { audioRuntime } from '../fakes/call';
import { createFakeClock } from '../fakes/clock';
import { sqlBackends } from '../store/backends';
import { seed, sleep, type Seed } from '../store/fixtures';

type Request = MessageInitShape<typeof AssistantTalkRequestSchema>['request'];
type Init = Extract<Request, { case: 'initialization' }>['value'];
type Response = AssistantTalkResponse['response'];

const frameOf = (request: Request) => toBinary(AssistantTalkRequestSchema, create(AssistantTalkRequestSchema, { request }));
const init = (value: Init = {}) => frameOf({ case: 'initialization', value });
const audio = (bytes: Uint8Array) => frameOf({ case: 'message', value: { content: { case: 'audio', value: bytes } } });
/** One 20 ms pipeline frame whose samples all hold `marker` (to follow it through). */
const markedFrame = (marker: number) => pcm16Bytes(new Int16Array(320).fill(marker));
/** A length-delimited field whose length runs past the end: no protobuf decoder accepts it. */
const GARBAGE = Uint8Array.from([0x0a, 0xff]);

/** One client connection: records what the server sends (decoded) and how it closes the connection. */
function client() {
  const sent: Response[] = [];
  const closes: { code: number; reason: string }[] = [];
  const transport: TalkTransport = {
    send: (frame) => void sent.push(fromBinary(AssistantTalkResponseSchema, frame).response),
    close: (code, reason) => void closes.push({ code, reason }),
    bufferedAmount: () => 0,
  };
  const of = <C extends NonNullable<Response['case']>>(c: C) => sent.filter((r) => r.case === c).map((r) => r.value as Extract<Response, { case: C }>['value']);
  return {
    transport,
    sent,
    closes,
    of,
    initialized: (): SessionInitialized | undefined => of('initialization')[0],
    errors: () => of('error').map((e) => ({ code: e.code, fatal: e.fatal })),
  };
}
type Client = ReturnType<typeof client>;

/** A stand-in engine: records what reaches it and ends when told to (as the real one does, with callEnded). */
function fakeEngine() {
  const state = {
    starts: 0,
    ends: [] as string[],
    texts: [] as string[],
    audio: [] as AudioFrame[],
    marks: [] as string[],
    /** Channel closes the engine was told of (the far end is gone). */
    closes: [] as string[],
    channel: undefined as Channel | undefined,
    observer: undefined as CallObserver | undefined,
    context: undefined as CallContext | undefined,
  };
  let resolveEnded!: (reason: string) => void;
  const ended = new Promise<string>((r) => (resolveEnded = r));
  let over = false;
  const finish = (reason: string) => {
    if (over) return;
    over = true;
    state.observer?.onEvent({ type: 'callEnded', callId: 'call', reason, atMs: 0 });
    resolveEnded(reason);
  };
  const communication: Communication = {
    history: [],
    ended,
    async start() {},
    async end(reason) {
      state.ends.push(reason);
      finish(reason);
    },
    sendText: (text) => void state.texts.push(text),
  };
  const startCall: TalkSessionDeps['startCall'] = async (context, channel, observer) => {
    state.starts++;
    Object.assign(state, { context, channel, observer });
    channel.start({ onAudio: (f) => state.audio.push(f), onDtmf: () => undefined, onMark: (n) => state.marks.push(n), onClose: (r) => (state.closes.push(r), finish(r)) });
    return communication;
  };
  return { state, startCall, communication };
}

/** Resamplers that count how many were made and released (a resampler is WASM memory: it must be released). */
function countingResamplers(inner: ResamplerFactory) {
  const counts = { created: 0, destroyed: 0 };
  const factory: ResamplerFactory = {
    create(from, to) {
      counts.created++;
      const r = inner.create(from, to);
      return { inputRateHz: r.inputRateHz, outputRateHz: r.outputRateHz, process: (i) => r.process(i), processInto: (i, o) => r.processInto(i, o), maxOutputSamples: (n) => r.maxOutputSamples(n), destroy: () => (counts.destroyed++, r.destroy()) };
    },
  };
  return { factory, counts };
}

async function waitFor(predicate: () => Promise<boolean> | boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe.each(sqlBackends())('talk session on $name', (backend) => {
  let db: SqlClient;
  let store: CallContextStore;
  let s: Seed;
  let resamplers: ResamplerFactory;

  beforeAll(async () => {
    db = await backend.open();
    store = createCallContextStore(db);
    resamplers = (await audioRuntime()).resamplers;
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    s = await seed(db);
  });

  const webContext = (patch: Partial<CreateCallContextInput> = {}) =>
    store.create({ projectId: s.projectId, assistantId: s.assistantId, assistantVersion: 1, conversationId: s.conversationId, provider: 'web', direction: 'inbound', ...patch });

  function harness(contextId: string, deps: Partial<TalkSessionDeps> = {}) {
    const clock = createFakeClock(0);
    const engine = fakeEngine();
    const protocolErrors: string[] = [];
    let finishedCalls = 0;
    const session = createTalkSession({
      contextId,
      contexts: store,
      startCall: engine.startCall,
      resamplers,
      clock,
      onProtocolError: (code) => void protocolErrors.push(code),
      onFinished: () => void finishedCalls++,
      ...deps,
    });
    const connect = (): Client => {
      const c = client();
      session.connect(c.transport);
      return c;
    };
    /** Connect and send `frame` as the first message. */
    const open = async (frame: Uint8Array): Promise<Client> => {
      const c = connect();
      await session.receive(c.transport, frame);
      return c;
    };
    return { session, clock, engine, protocolErrors, connect, open, finishedCalls: () => finishedCalls };
  }

  /** A call running on its first connection. */
  async function liveCall(value: Init = {}, deps: Partial<TalkSessionDeps> = {}) {
    const ctx = await webContext();
    const h = harness(ctx.id, deps);
    const first = await h.open(init(value));
    const token = first.initialized()?.resumeToken;
    if (!token) throw new Error(`the call did not start: ${JSON.stringify(first.errors())}`);
    return { ...h, ctx, first, token };
  }

  describe('starting a call', () => {
    it('claims the context and answers SessionInitialized with a resume token and the formats it will use', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = await h.open(init({ inputAudio: { sampleRate: 48_000 }, outputAudio: { sampleRate: 24_000 } }));
      const ready = c.initialized()!;
      expect(ready).toMatchObject({ contextId: ctx.id, conversationId: s.conversationId, resumed: false, resumeWindowMs: 30_000, streamMode: StreamMode.BOTH });
      expect(ready.assistant).toMatchObject({ id: s.assistantId, version: 1 });
      expect(ready.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(ready.inputAudio).toMatchObject({ sampleRate: 48_000, encoding: AudioEncoding.LINEAR16, channels: 1 });
      expect(ready.outputAudio).toMatchObject({ sampleRate: 24_000, encoding: AudioEncoding.LINEAR16, channels: 1 });
      expect(c.closes).toEqual([]);
      expect(h.engine.state.starts).toBe(1);
      expect(h.engine.state.context?.id).toBe(ctx.id);
      expect(h.engine.state.channel?.outputFormat).toEqual({ encoding: 'pcm16', sampleRateHz: 24_000 });
      expect((await store.get(ctx.id))?.status).toBe('claimed');
      expect(h.session.active).toBe(true);
      expect(h.session.attached).toBe(true);
    });

    it('closes with 1008 when the first message is not an initialization', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = await h.open(audio(markedFrame(1)));
      expect(c.errors()).toEqual([{ code: 'INITIALIZATION_REQUIRED', fatal: true }]);
      expect(c.of('error')[0]?.message).toBe('the first message must be an initialization, got message');
      expect(c.closes.map((x) => x.code)).toEqual([1008]);
      expect((await store.get(ctx.id))?.status).toBe('pending');
    });

    it('closes with 1008 when the first frame is not an AssistantTalkRequest at all', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = await h.open(GARBAGE);
      expect(c.errors()).toEqual([
        { code: 'MALFORMED_FRAME', fatal: false },
        { code: 'MALFORMED_FRAME', fatal: true },
      ]);
      expect(c.closes.map((x) => x.code)).toEqual([1008]);
      expect(h.protocolErrors).toEqual(['MALFORMED_FRAME']);
      // Nothing more is read from a refused connection.
      await h.session.receive(c.transport, init());
      expect(c.initialized()).toBeUndefined();
      expect(h.engine.state.starts).toBe(0);
    });

    it('closes with 4404 for an unknown context and for one that is not a web session', async () => {
      const unknown = harness(crypto.randomUUID());
      const a = await unknown.open(init());
      expect(a.errors()).toEqual([{ code: 'CONTEXT_UNKNOWN', fatal: true }]);
      expect(a.closes.map((x) => x.code)).toEqual([4404]);

      const phone = await webContext({ provider: 'twilio' });
      const b = await harness(phone.id).open(init());
      expect(b.closes.map((x) => x.code)).toEqual([4404]);
      expect((await store.get(phone.id))?.status).toBe('pending');
    });

    it('closes with 4400 INIT_MISMATCH when the initialization names another assistant or version', async () => {
      const ctx = await webContext();
      const other = await harness(ctx.id).open(init({ assistant: { id: crypto.randomUUID() } }));
      expect(other.errors()).toEqual([{ code: 'INIT_MISMATCH', fatal: true }]);
      expect(other.closes.map((x) => x.code)).toEqual([4400]);
      const version = await harness(ctx.id).open(init({ assistant: { id: s.assistantId, version: 2 } }));
      expect(version.of('error')[0]?.message).toBe('this session runs version 1 of the assistant, the initialization names version 2');
      expect(version.closes.map((x) => x.code)).toEqual([4400]);
      // Refusals claim nothing: a correct initialization still starts the call.
      const right = await harness(ctx.id).open(init({ assistant: { id: s.assistantId, version: 1 } }));
      expect(right.initialized()?.resumed).toBe(false);
    });

    it('closes with 4400 for an audio config it cannot honour, before claiming anything', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const rate = await h.open(init({ inputAudio: { sampleRate: 11_025 } }));
      expect(rate.errors()).toEqual([{ code: 'AUDIO_CONFIG_INVALID', fatal: true }]);
      expect(rate.of('error')[0]?.message).toContain('input_audio.sample_rate 11025 is not supported');
      expect(rate.closes.map((x) => x.code)).toEqual([4400]);
      const mulaw = await h.open(init({ outputAudio: { sampleRate: 16_000, encoding: AudioEncoding.MULAW } }));
      expect(mulaw.closes.map((x) => x.code)).toEqual([4400]);
      expect((await store.get(ctx.id))?.status).toBe('pending');
      expect(h.engine.state.starts).toBe(0);
    });

    it('closes with 4410 for a context that has ended or expired', async () => {
      const done = await webContext();
      await store.updateStatus(done.id, { status: 'canceled' }, 'pending');
      const a = await harness(done.id).open(init());
      expect(a.errors()).toEqual([{ code: 'CONTEXT_ENDED', fatal: true }]);
      expect(a.closes.map((x) => x.code)).toEqual([4410]);

      const stale = await webContext({ ttlMs: 1 });
      await sleep(20);
      const b = await harness(stale.id).open(init());
      expect(b.errors()).toEqual([{ code: 'CONTEXT_EXPIRED', fatal: true }]);
      expect(b.closes.map((x) => x.code)).toEqual([4410]);
    });

    it('a context claimed by a session it does not hold: 4401 without a token, 4410 with one', async () => {
      const ctx = await webContext();
      await store.claim(ctx.id);
      const bare = await harness(ctx.id).open(init());
      expect(bare.errors()).toEqual([{ code: 'RESUME_TOKEN_REQUIRED', fatal: true }]);
      expect(bare.closes.map((x) => x.code)).toEqual([4401]);
      const withToken = await harness(ctx.id).open(init({ resumeToken: 'x'.repeat(43) }));
      expect(withToken.errors()).toEqual([{ code: 'CALL_GONE', fatal: true }]);
      expect(withToken.closes.map((x) => x.code)).toEqual([4410]);
    });

    it('refuses a second connection that initializes while the first is still starting (4409)', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const a = h.connect();
      const b = h.connect();
      const starting = h.session.receive(a.transport, init());
      await h.session.receive(b.transport, init());
      await starting;
      expect(a.initialized()).toBeDefined();
      expect(b.errors()).toEqual([{ code: 'CONTEXT_CLAIMED', fatal: true }]);
      expect(b.closes.map((x) => x.code)).toEqual([4409]);
      expect(h.engine.state.starts).toBe(1);
    });

    it('holds the frames sent while the initialization is checked and replays them after it, keeping the newest 100', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = h.connect();
      // The microphone starts at once: 150 frames arrive before the claim has been answered.
      const initializing = h.session.receive(c.transport, init());
      const early = Array.from({ length: 150 }, (_, i) => h.session.receive(c.transport, audio(markedFrame(i))));
      await Promise.all([initializing, ...early]);
      expect(c.initialized()).toBeDefined();
      expect(h.engine.state.audio.map((f) => pcm16View(f.data)[0])).toEqual(Array.from({ length: 100 }, (_, i) => 50 + i));
    });

    it('a flood before the call is admitted drops microphone audio first: typed text and the hang-up survive', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = h.connect();
      const initializing = h.session.receive(c.transport, init());
      const text = h.session.receive(c.transport, frameOf({ case: 'message', value: { content: { case: 'text', value: 'book a table' } } }));
      const early = Array.from({ length: 150 }, (_, i) => h.session.receive(c.transport, audio(markedFrame(i))));
      await Promise.all([initializing, text, ...early]);
      expect(h.engine.state.texts).toEqual(['book a table']);
      // 99 frames of audio kept, the newest.
      expect(h.engine.state.audio.map((f) => pcm16View(f.data)[0])).toEqual(Array.from({ length: 99 }, (_, i) => 51 + i));
    });

    it('a connection that hangs up and closes while it is still being admitted ends the call now (no resume window)', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id);
      const c = h.connect();
      const initializing = h.session.receive(c.transport, init());
      const bye = h.session.receive(c.transport, frameOf({ case: 'disconnection', value: { reason: 'user clicked hang up' } }));
      h.session.disconnected(c.transport);
      await Promise.all([initializing, bye]);
      await h.session.finished;
      expect(h.engine.state.ends).toEqual(['client-disconnect']);
      expect((await store.get(ctx.id))?.disconnectReason).toBe('client-disconnect');
    });

    it('a call that cannot start: fatal CALL_START_FAILED, close 1011, context failed, session finished', async () => {
      const ctx = await webContext();
      const h = harness(ctx.id, {
        startCall: () => Promise.reject(new Error('CONFIG_EDGE_PROVIDER: tts provider local-flite cannot run on the edge; pick an edge-capable one')),
      });
      const c = await h.open(init());
      expect(c.errors()).toEqual([{ code: 'CALL_START_FAILED', fatal: true }]);
      expect(c.of('error')[0]?.message).toBe('tts provider local-flite cannot run on the edge; pick an edge-capable one');
      expect(c.closes[0]?.code).toBe(1011);
      await h.session.finished;
      expect(h.finishedCalls()).toBe(1);
      const stored = await store.get(ctx.id);
      expect(stored?.status).toBe('failed');
      expect(stored?.failureReason).toContain('CONFIG_EDGE_PROVIDER');
      expect(h.session.active).toBe(false);
      // The call is over: a new connection is told so.
      const late = await h.open(init());
      expect(late.closes.map((x) => x.code)).toEqual([4410]);
    });
  });

  describe('during a call', () => {
    it('hands user audio, playback receipts and typed text to the engine', async () => {
      const call = await liveCall();
      await call.session.receive(call.first.transport, audio(markedFrame(5)));
      await call.session.receive(call.first.transport, frameOf({ case: 'playbackComplete', value: { id: 'p1.1.5' } }));
      await call.session.receive(call.first.transport, frameOf({ case: 'message', value: { content: { case: 'text', value: 'book a table' } } }));
      expect(call.engine.state.audio.map((f) => pcm16View(f.data)[0])).toEqual([5]);
      expect(call.engine.state.marks).toEqual(['p1.1.5']);
      expect(call.engine.state.texts).toEqual(['book a table']);
      await call.session.receive(call.first.transport, frameOf({ case: 'message', value: { content: { case: 'text', value: 'x'.repeat(4_001) } } }));
      expect(call.first.errors()).toEqual([{ code: 'TEXT_TOO_LONG', fatal: false }]);
      expect(call.engine.state.texts).toHaveLength(1);
    });

    it('a malformed frame mid-call is a non-fatal error: the call goes on', async () => {
      const call = await liveCall();
      await call.session.receive(call.first.transport, GARBAGE);
      await call.session.receive(call.first.transport, frameOf({ case: 'message', value: { content: { case: 'audio', value: new Uint8Array(96_002) } } }));
      await call.session.receive(call.first.transport, frameOf({ case: 'initialization', value: {} }));
      await call.session.receive(call.first.transport, audio(markedFrame(9)));
      expect(call.first.errors()).toEqual([
        { code: 'MALFORMED_FRAME', fatal: false },
        { code: 'AUDIO_TOO_LARGE', fatal: false },
        { code: 'ALREADY_INITIALIZED', fatal: false },
      ]);
      expect(call.protocolErrors).toEqual(['MALFORMED_FRAME', 'AUDIO_TOO_LARGE', 'ALREADY_INITIALIZED']);
      expect(call.first.closes).toEqual([]);
      expect(call.engine.state.ends).toEqual([]);
      expect(call.engine.state.audio.map((f) => pcm16View(f.data)[0])).toEqual([9]);
    });

    it('refuses text WebSocket frames with a non-fatal error', async () => {
      const call = await liveCall();
      call.session.receiveText(call.first.transport);
      expect(call.first.errors()).toEqual([{ code: 'TEXT_FRAME', fatal: false }]);
      expect(call.first.of('error')[0]?.message).toBe('talk frames are binary AssistantTalkRequest messages, not text');
      expect(call.first.closes).toEqual([]);
    });

    it('stream mode TEXT: no audio to the client, client audio refused; a Configuration switches audio on', async () => {
      const call = await liveCall({ streamMode: StreamMode.TEXT });
      expect(call.first.initialized()?.streamMode).toBe(StreamMode.TEXT);
      const channel = call.engine.state.channel!;
      const frame: AudioFrame = { format: PIPELINE_FORMAT, data: markedFrame(3) };
      channel.play(frame);
      channel.mark('p1.1.5');
      expect(call.first.of('assistant')).toEqual([]);
      expect(call.first.of('playbackMark')).toEqual([]);
      await call.session.receive(call.first.transport, audio(markedFrame(1)));
      expect(call.first.errors()).toEqual([{ code: 'AUDIO_IN_TEXT_MODE', fatal: false }]);
      expect(call.engine.state.audio).toEqual([]);

      await call.session.receive(call.first.transport, frameOf({ case: 'configuration', value: { streamMode: StreamMode.BOTH } }));
      channel.play(frame);
      expect(call.first.of('assistant').map((m) => m.audio.byteLength)).toEqual([640]);
      await call.session.receive(call.first.transport, frameOf({ case: 'configuration', value: { streamMode: 9 as StreamMode } }));
      expect(call.first.errors().at(-1)).toEqual({ code: 'STREAM_MODE_INVALID', fatal: false });
    });

    it('engine events reach the client as stream messages', async () => {
      const call = await liveCall();
      call.engine.state.observer!.onEvent({ type: 'transcript', text: 'hello', final: true, atMs: 0 });
      call.engine.state.observer!.onEvent({ type: 'assistantText', turnId: 2, text: 'Hi there. ', atMs: 0 });
      call.engine.state.channel!.play({ format: PIPELINE_FORMAT, data: markedFrame(1) });
      expect(call.first.sent.slice(1).map((r) => [r.case, (r.value as { id?: string }).id])).toEqual([
        ['user', 'u1'],
        ['assistant', 'a2'],
        ['assistant', 'a2'],
      ]);
    });

    it('a client Disconnection ends the call as client-disconnect: goodbye message, close 1000, context completed', async () => {
      const call = await liveCall();
      await call.session.receive(call.first.transport, frameOf({ case: 'disconnection', value: { reason: 'user clicked hang up' } }));
      await call.session.finished;
      expect(call.engine.state.ends).toEqual(['client-disconnect']);
      expect(call.first.of('disconnection')).toEqual([expect.objectContaining({ type: DisconnectionType.USER, reason: 'client-disconnect' })]);
      expect(call.first.closes[0]).toEqual({ code: 1000, reason: 'client-disconnect' });
      const stored = await store.get(call.ctx.id);
      expect(stored).toMatchObject({ status: 'completed', disconnectReason: 'client-disconnect' });
      expect(call.finishedCalls()).toBe(1);
      expect(call.session.active).toBe(false);
    });

    it('host shutdown ends the call with the host reason', async () => {
      const call = await liveCall();
      await call.session.end('node-draining');
      await call.session.finished;
      expect(call.engine.state.ends).toEqual(['node-draining']);
      expect((await store.get(call.ctx.id))?.disconnectReason).toBe('node-draining');
    });

    it('releases the input resampler when the call ends', async () => {
      const counting = countingResamplers(resamplers);
      const call = await liveCall({ inputAudio: { sampleRate: 48_000 } }, { resamplers: counting.factory });
      await call.session.receive(call.first.transport, audio(new Uint8Array(1_920)));
      expect(counting.counts.created).toBe(1);
      await call.session.receive(call.first.transport, frameOf({ case: 'disconnection', value: {} }));
      await call.session.finished;
      expect(counting.counts.destroyed).toBe(counting.counts.created);
    });
  });

  describe('re-attaching', () => {
    it('a second connection without a token, or with a wrong one, is refused with 4401; the call is untouched', async () => {
      const call = await liveCall();
      const bare = await call.open(init());
      expect(bare.errors()).toEqual([{ code: 'RESUME_TOKEN_REQUIRED', fatal: true }]);
      expect(bare.closes.map((x) => x.code)).toEqual([4401]);
      const wrong = await call.open(init({ resumeToken: call.token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) }));
      expect(wrong.errors()).toEqual([{ code: 'RESUME_TOKEN_INVALID', fatal: true }]);
      expect(wrong.closes.map((x) => x.code)).toEqual([4401]);
      expect(call.first.closes).toEqual([]);
      expect(call.session.attached).toBe(true);
      expect(call.engine.state.ends).toEqual([]);
    });

    it('the right token while the first connection is still attached: the first is closed with 4409, the new one resumes with a new token', async () => {
      const call = await liveCall();
      const second = await call.open(init({ resumeToken: call.token }));
      expect(call.first.closes).toEqual([{ code: 4409, reason: 'replaced by a resumed connection' }]);
      const resumed = second.initialized()!;
      expect(resumed).toMatchObject({ resumed: true, contextId: call.ctx.id });
      expect(resumed.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(resumed.resumeToken).not.toBe(call.token);
      expect(second.closes).toEqual([]);
      // Output follows the new connection; the old one is no longer read.
      call.engine.state.channel!.play({ format: PIPELINE_FORMAT, data: markedFrame(1) });
      expect(second.of('assistant')).toHaveLength(1);
      expect(call.first.of('assistant')).toHaveLength(0);
      await call.session.receive(call.first.transport, audio(markedFrame(1)));
      await call.session.receive(second.transport, audio(markedFrame(2)));
      expect(call.engine.state.audio.map((f) => pcm16View(f.data)[0])).toEqual([2]);
      // The store agrees: attached again, under the new token.
      expect((await store.get(call.ctx.id))?.detachedAt).toBeUndefined();

      const replay = await call.open(init({ resumeToken: call.token }));
      expect(replay.errors()).toEqual([{ code: 'RESUME_TOKEN_INVALID', fatal: true }]);
      expect(replay.closes.map((x) => x.code)).toEqual([4401]);
      expect(second.closes).toEqual([]);
    });

    it('a dropped connection is recorded as detached; the client resumes within the window and the call never ends', async () => {
      const call = await liveCall();
      call.session.disconnected(call.first.transport);
      expect(call.session.attached).toBe(false);
      await waitFor(async () => (await store.get(call.ctx.id))?.detachedAt !== undefined, 'the detach in the store');
      const detached = (await store.get(call.ctx.id))!;
      expect(detached.resumeExpiresAt!.getTime() - detached.detachedAt!.getTime()).toBe(30_000);

      // Output while nobody is attached goes nowhere.
      call.engine.state.channel!.play({ format: PIPELINE_FORMAT, data: markedFrame(1) });
      await call.clock.advance(20_000);
      const back = await call.open(init({ resumeToken: call.token }));
      expect(back.initialized()).toMatchObject({ resumed: true });
      expect(back.of('assistant')).toEqual([]);
      expect((await store.get(call.ctx.id))?.detachedAt).toBeUndefined();
      // The window timer was cancelled by the resume.
      await call.clock.advance(60_000);
      expect(call.engine.state.ends).toEqual([]);
      expect(call.session.active).toBe(true);
    });

    it('a second drop in the same call works the same way, with the newest token', async () => {
      const call = await liveCall();
      call.session.disconnected(call.first.transport);
      await waitFor(async () => (await store.get(call.ctx.id))?.detachedAt !== undefined, 'the first detach');
      const second = await call.open(init({ resumeToken: call.token }));
      const next = second.initialized()!.resumeToken;
      call.session.disconnected(second.transport);
      await waitFor(async () => (await store.get(call.ctx.id))?.detachedAt !== undefined, 'the second detach');
      const stale = await call.open(init({ resumeToken: call.token }));
      expect(stale.closes.map((x) => x.code)).toEqual([4401]);
      const third = await call.open(init({ resumeToken: next }));
      expect(third.initialized()).toMatchObject({ resumed: true });
    });

    it('no client within the window: the call ends as resume-window-lapsed and the context is failed', async () => {
      const call = await liveCall();
      call.session.disconnected(call.first.transport);
      await waitFor(async () => (await store.get(call.ctx.id))?.detachedAt !== undefined, 'the detach');
      await call.clock.advance(29_999);
      expect(call.engine.state.ends).toEqual([]);
      await call.clock.advance(1);
      expect(call.engine.state.ends).toEqual(['resume-window-lapsed']);
      await call.session.finished;
      const stored = await store.get(call.ctx.id);
      expect(stored).toMatchObject({ status: 'failed', disconnectReason: 'resume-window-lapsed' });
      expect(stored?.failureReason).toBe('the client did not re-attach within the resume window');
      const late = await call.open(init({ resumeToken: call.token }));
      expect(late.closes.map((x) => x.code)).toEqual([4410]);
    });

    it('a resume that replaced the live socket but was then refused leaves the window running: the call still ends', async () => {
      const refusing: TalkSessionDeps['contexts'] = {
        ...store,
        resume: async (_id, _token) => {
          const context = (await store.get(call.ctx.id))!;
          return { outcome: 'refused', reason: 'window-closed', context };
        },
      };
      const call = await liveCall({}, { contexts: refusing });
      const second = await call.open(init({ resumeToken: call.token }));
      expect(call.first.closes.map((x) => x.code)).toEqual([4409]);
      expect(second.closes.map((x) => x.code)).toEqual([4401]);
      expect(call.engine.state.ends).toEqual([]);
      await call.clock.advance(30_000);
      expect(call.engine.state.ends).toEqual(['resume-window-lapsed']);
    });

    it('a client that reconnects before the detach of its old socket is written still resumes', async () => {
      // `disconnected` starts the store's detach without waiting; a client back before it is written must not be refused.
      const order: string[] = [];
      const slowDetach: TalkSessionDeps['contexts'] = {
        ...store,
        detach: async (id) => (await sleep(100), order.push('detach'), store.detach(id)),
        resume: async (id, token) => (order.push('resume'), store.resume(id, token)),
      };
      const call = await liveCall({}, { contexts: slowDetach });
      call.session.disconnected(call.first.transport);
      const back = await call.open(init({ resumeToken: call.token }));
      expect(order).toEqual(['detach', 'resume']);
      expect(back.errors()).toEqual([]);
      expect(back.initialized()).toMatchObject({ resumed: true });
    });
  });
});
