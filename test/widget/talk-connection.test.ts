import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import {
  AssistantTalkRequestSchema,
  AssistantTalkResponseSchema,
  AudioEncoding,
  DisconnectionType,
  type AssistantTalkRequest,
} from '../../shared/talk/gen/talk_api_pb';
import type { TalkResponseInit } from '../../shared/talk/transport';
import { createTalkConnection, type EndedEvent, type MetricsEvent, type PlayerPort, type SocketLike, type TranscriptEvent, type WidgetState } from '../../web/widget/talk-connection';
import { closeError, type WidgetError } from '../../web/widget/errors';
import { createFakeClock } from '../fakes/clock';

/** A browser WebSocket stand-in: the test plays the server. */
function fakeSocket(url: string) {
  const sent: AssistantTalkRequest[] = [];
  const socket: SocketLike & {
    url: string;
    sent: AssistantTalkRequest[];
    closedWith?: { code?: number; reason?: string };
    open(): void;
    reply(response: TalkResponseInit): void;
    serverClose(code: number, reason?: string): void;
  } = {
    url,
    sent,
    binaryType: 'blob',
    readyState: 0,
    bufferedAmount: 0,
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    send(data) {
      sent.push(fromBinary(AssistantTalkRequestSchema, data));
    },
    close(code, reason) {
      socket.closedWith = { code, reason };
      (socket as { readyState: number }).readyState = 3;
    },
    open() {
      (socket as { readyState: number }).readyState = 1;
      socket.onopen?.({});
    },
    reply(response) {
      const bytes = toBinary(AssistantTalkResponseSchema, create(AssistantTalkResponseSchema, { response }));
      // As the browser delivers it with binaryType 'arraybuffer'.
      socket.onmessage?.({ data: bytes.slice().buffer });
    },
    serverClose(code, reason = '') {
      (socket as { readyState: number }).readyState = 3;
      socket.onclose?.({ code, reason });
    },
  };
  return socket;
}
type FakeSocket = ReturnType<typeof fakeSocket>;

function setup(options: { connectTimeoutMs?: number } = {}) {
  const clock = createFakeClock(1_000);
  const sockets: FakeSocket[] = [];
  const player: string[] = [];
  const audio: Int16Array[] = [];
  const states: WidgetState[] = [];
  const transcripts: TranscriptEvent[] = [];
  const metrics: MetricsEvent[] = [];
  const errors: WidgetError[] = [];
  const ended: EndedEvent[] = [];
  const events: { name: string; data: Readonly<Record<string, string>> }[] = [];
  const port: PlayerPort = {
    audio: (pcm) => {
      player.push('audio');
      audio.push(pcm);
    },
    mark: (id) => player.push(`mark:${id}`),
    pause: () => player.push('pause'),
    resume: () => player.push('continue'),
    flush: () => player.push('flush'),
  };
  const connection = createTalkConnection({
    url: 'wss://voice.test/v1/talk/web/ctx/ctx-1',
    assistantId: 'asst-1',
    outputRateHz: 24_000,
    openSocket: (url) => {
      const s = fakeSocket(url);
      sockets.push(s);
      return s;
    },
    player: port,
    clock,
    random: () => 0.5,
    ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    handlers: {
      state: (s) => states.push(s),
      transcript: (t) => transcripts.push(t),
      metrics: (m) => metrics.push(m),
      error: (e) => errors.push(e),
      ended: (e) => ended.push(e),
      event: (name, data) => events.push({ name, data }),
    },
  });
  const last = () => sockets.at(-1)!;
  const initialized = (token = 'token-1', resumed = false) =>
    last().reply({ case: 'initialization', value: { contextId: 'ctx-1', resumeToken: token, resumeWindowMs: 5_000, resumed } });
  return { clock, sockets, last, connection, player, audio, states, transcripts, metrics, errors, ended, events, initialized };
}

const cases = (socket: FakeSocket) => socket.sent.map((r) => r.request.case);

describe('widget talk connection (talk_api over a WebSocket)', () => {
  it('opens with an initialization asking for PCM16 16 kHz in and the chosen output rate, then listens', async () => {
    const t = setup();
    t.connection.start();
    expect(t.states).toEqual(['connecting']);
    expect(t.last().url).toBe('wss://voice.test/v1/talk/web/ctx/ctx-1');
    t.last().open();
    expect(t.last().binaryType).toBe('arraybuffer');
    const init = t.last().sent[0]!.request;
    expect(init.case).toBe('initialization');
    if (init.case !== 'initialization') throw new Error('unreachable');
    expect(init.value.assistant?.id).toBe('asst-1');
    expect(init.value.resumeToken).toBe('');
    expect(init.value.inputAudio).toMatchObject({ sampleRate: 16_000, encoding: AudioEncoding.LINEAR16, channels: 1 });
    expect(init.value.outputAudio).toMatchObject({ sampleRate: 24_000, encoding: AudioEncoding.LINEAR16 });
    // Microphone frames before the server answered are dropped, not queued without bound.
    t.connection.sendAudio(new Int16Array(320));
    expect(t.connection.stats.framesDropped).toBe(1);
    t.initialized();
    expect(t.states).toEqual(['connecting', 'listening']);
    const frame = Int16Array.from({ length: 320 }, (_, i) => i - 160);
    t.connection.sendAudio(frame);
    const audio = t.last().sent[1]!.request;
    if (audio.case !== 'message' || audio.value.content.case !== 'audio') throw new Error(`expected audio, got ${audio.case}`);
    expect(audio.value.content.value.byteLength).toBe(640);
    expect([...new Int16Array(audio.value.content.value.slice().buffer)]).toEqual([...frame]);
    expect(t.connection.stats.framesSent).toBe(1);
  });

  it('turns server messages into captions, metrics and player commands, and answers marks', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized();
    const s = t.last();
    s.reply({ case: 'user', value: { id: 'u1', text: 'what is', completed: false } });
    s.reply({ case: 'user', value: { id: 'u1', text: 'what is the weather', completed: true } });
    s.reply({ case: 'assistant', value: { id: 'a1', text: 'It is' } });
    // An audio frame at an odd offset inside the response (after a one-byte id): copied to aligned samples.
    const pcm = Int16Array.from([1, -2, 300, -32_768]);
    s.reply({ case: 'assistant', value: { id: 'a1', audio: new Uint8Array(pcm.buffer) } });
    s.reply({ case: 'playbackMark', value: { id: 'pm1' } });
    s.reply({ case: 'assistant', value: { id: 'a1', text: 'sunny.' } });
    s.reply({ case: 'playbackPause', value: { id: 'a1' } });
    s.reply({ case: 'playbackContinue', value: { id: 'a1' } });
    s.reply({ case: 'playbackFlush', value: { id: 'a1' } });
    s.reply({ case: 'assistant', value: { id: 'a1', text: 'It is', completed: true, interrupted: true } });
    s.reply({ case: 'metric', value: { id: 'a1', values: [{ name: 'voice_to_voice_ms', value: 640 }, { name: 'stt_final_ms', value: 120 }] } });
    s.reply({ case: 'event', value: { name: 'user.speech_started', data: {} } });
    s.reply({ case: 'toolCall', value: { id: 't1', name: 'transfer_call', action: 2, args: { target: '+15550100' } } });

    expect(t.transcripts).toEqual([
      { role: 'user', id: 'u1', text: 'what is', final: false },
      { role: 'user', id: 'u1', text: 'what is the weather', final: true },
      { role: 'assistant', id: 'a1', text: 'It is', final: false },
      { role: 'assistant', id: 'a1', text: 'It is sunny.', final: false },
      { role: 'assistant', id: 'a1', text: 'It is', final: true, interrupted: true },
    ]);
    expect(t.player).toEqual(['audio', 'mark:pm1', 'pause', 'continue', 'flush']);
    expect([...t.audio[0]!]).toEqual([1, -2, 300, -32_768]);
    expect(t.connection.stats).toMatchObject({ framesReceived: 1, flushes: 1 });
    expect(t.metrics).toEqual([{ id: 'a1', values: { voice_to_voice_ms: 640, stt_final_ms: 120 } }]);
    expect(t.events.map((e) => e.name)).toEqual(['user.speech_started', 'transfer']);
    expect(t.events[1]!.data).toEqual({ target: '+15550100' });

    t.connection.playbackComplete('pm1');
    const receipt = s.sent.at(-1)!.request;
    expect(receipt).toMatchObject({ case: 'playbackComplete', value: { id: 'pm1' } });
    expect(t.connection.stats.marksAnswered).toBe(1);

    // The player's own account of sounding drives speaking/listening.
    t.connection.setPlaying(true);
    t.connection.setPlaying(false);
    expect(t.states.slice(-2)).toEqual(['speaking', 'listening']);

    // A non-fatal server error is reported and the call goes on.
    s.reply({ case: 'error', value: { code: 'AUDIO_TOO_LARGE', message: 'too much audio at once', fatal: false } });
    expect(t.errors).toMatchObject([{ code: 'SERVER_ERROR', fatal: false, message: 'too much audio at once' }]);
    expect(t.connection.state).toBe('listening');
  });

  it('types a turn, and keeps typed turns while re-attaching to send them after', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized();
    t.connection.sendText('  hello there ');
    expect(t.last().sent.at(-1)!.request).toMatchObject({ case: 'message', value: { content: { case: 'text', value: 'hello there' } } });
    t.last().serverClose(1006);
    t.connection.sendText('are you there');
    await t.clock.advance(400);
    t.last().open();
    t.initialized('token-2', true);
    expect(t.last().sent.at(-1)!.request).toMatchObject({ case: 'message', value: { content: { case: 'text', value: 'are you there' } } });
  });

  it('re-attaches after a dropped socket with the resume token, backing off between attempts', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized('token-1');
    t.last().serverClose(1006, '');
    expect(t.connection.state).toBe('reconnecting');
    expect(t.sockets).toHaveLength(1);
    // First attempt after ~250 ms (jitter ±25 %, 0.5 here: exactly 250).
    await t.clock.advance(249);
    expect(t.sockets).toHaveLength(1);
    await t.clock.advance(1);
    expect(t.sockets).toHaveLength(2);
    // That attempt fails too (the network is still down): the next waits ~500 ms.
    t.last().serverClose(1006);
    await t.clock.advance(499);
    expect(t.sockets).toHaveLength(2);
    await t.clock.advance(1);
    expect(t.sockets).toHaveLength(3);
    t.last().open();
    const init = t.last().sent[0]!.request;
    expect(init).toMatchObject({ case: 'initialization', value: { resumeToken: 'token-1' } });
    t.initialized('token-2', true);
    expect(t.connection.state).toBe('listening');
    expect(t.connection.stats.reconnects).toBe(1);
    // The new token is the one a second drop presents. A drop right after re-attaching goes on backing off
    // within the same window (a server that accepts and drops every re-attach cannot loop the widget for ever).
    t.last().serverClose(1001);
    await t.clock.advance(999);
    expect(t.sockets).toHaveLength(3);
    await t.clock.advance(1);
    expect(t.sockets).toHaveLength(4);
    t.last().open();
    expect(t.last().sent[0]!.request).toMatchObject({ case: 'initialization', value: { resumeToken: 'token-2' } });
    t.initialized('token-3', true);
    // Live for a while: a later drop is a new outage, with a fresh window and the short first delay.
    await t.clock.advance(6000);
    t.last().serverClose(1006);
    await t.clock.advance(250);
    expect(t.sockets).toHaveLength(5);
    expect(t.errors).toEqual([]);
  });

  it('a socket the browser refuses to open is a plain network error, not a call stuck connecting', () => {
    const t = setup();
    const refusing = createTalkConnection({
      url: 'ws://insecure.test/x',
      outputRateHz: 16_000,
      openSocket: () => {
        throw new Error('SecurityError: insecure WebSocket from an https page');
      },
      player: { audio: () => undefined, mark: () => undefined, pause: () => undefined, resume: () => undefined, flush: () => undefined },
      clock: t.clock,
      handlers: { state: (s) => t.states.push(s), transcript: () => undefined, metrics: () => undefined, error: (e) => t.errors.push(e), ended: () => undefined, event: () => undefined },
    });
    refusing.start();
    expect(refusing.state).toBe('error');
    expect(t.errors.map((e) => e.code)).toEqual(['NETWORK']);
  });

  it('hang-up: the Disconnection goes even before the call is live, and no microphone frame follows it', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.connection.hangUp();
    expect(cases(t.last())).toEqual(['initialization', 'disconnection']);
    t.initialized();
    t.connection.sendAudio(new Int16Array(320));
    expect(cases(t.last())).toEqual(['initialization', 'disconnection']);
    t.last().serverClose(1000, 'bye');
    expect(t.connection.state).toBe('ended');
  });

  it('a receipt given while the socket is away is sent once re-attached; a call that cannot start says why', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized('token-1');
    t.last().serverClose(1006);
    t.connection.playbackComplete('m7');
    await t.clock.advance(250);
    t.last().open();
    t.initialized('token-2', true);
    expect(t.last().sent.map((r) => (r.request.case === 'playbackComplete' ? r.request.value.id : r.request.case))).toEqual(['initialization', 'm7']);
    expect(closeError(1011, 'PROVIDER_NOT_EDGE_CAPABLE: the "local" STT needs a media node')).toMatchObject({ code: 'CALL_REFUSED' });
    expect(closeError(1011, 'PROVIDER_NOT_EDGE_CAPABLE: the "local" STT needs a media node').message).toContain('the "local" STT needs a media node');
    expect(closeError(1011, 'INTERNAL: boom').code).toBe('SERVER_ERROR');
  });

  it('a socket whose send buffer stays full for 3 s is treated as dropped: it re-attaches', async () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized('token-1');
    (t.last() as { bufferedAmount: number }).bufferedAmount = 20_000;
    for (let i = 0; i < 140; i++) {
      t.connection.sendAudio(new Int16Array(320));
      await t.clock.advance(20);
    }
    // 2.8 s: still waiting for the buffer to drain.
    expect(t.connection.state).toBe('listening');
    for (let i = 0; i < 20; i++) {
      t.connection.sendAudio(new Int16Array(320));
      await t.clock.advance(20);
    }
    expect(t.connection.state).toBe('reconnecting');
    await t.clock.advance(250);
    expect(t.sockets).toHaveLength(2);
  });

  it('ignores an assistant audio frame longer than a second (a server must not make the player buffer it)', () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized();
    t.last().reply({ case: 'assistant', value: { id: 'a1', audio: new Uint8Array(24_000 * 2 + 2) } });
    t.last().reply({ case: 'assistant', value: { id: 'a1', audio: new Uint8Array(960) } });
    expect(t.audio.map((a) => a.length)).toEqual([480]);
  });

  it('gives up when the resume window is over, or when the server refuses the token', async () => {
    const lapsed = setup();
    lapsed.connection.start();
    lapsed.last().open();
    lapsed.initialized();
    lapsed.last().serverClose(1006);
    for (let i = 0; i < 20 && lapsed.connection.state === 'reconnecting'; i++) {
      await lapsed.clock.advance(1_000);
      lapsed.last().serverClose(1006);
    }
    expect(lapsed.connection.state).toBe('error');
    expect(lapsed.errors.map((e) => e.code)).toEqual(['CONNECTION_LOST']);
    // Every attempt started within the 5 s window the server announced.
    expect(lapsed.clock.now() - 1_000).toBeLessThan(5_000 + 1_000);
    expect(lapsed.player.at(-1)).toBe('flush');

    const refused = setup();
    refused.connection.start();
    refused.last().open();
    refused.initialized();
    refused.last().serverClose(1006);
    await refused.clock.advance(300);
    refused.last().open();
    refused.last().reply({ case: 'error', value: { code: 'RESUME_REFUSED', message: 'the call cannot be resumed: expired', fatal: true } });
    refused.last().serverClose(4410, 'RESUME_REFUSED');
    expect(refused.connection.state).toBe('error');
    expect(refused.errors[0]).toMatchObject({ code: 'CONNECTION_LOST' });
    expect(refused.errors[0]!.detail).toContain('the call cannot be resumed');
    await refused.clock.advance(10_000);
    expect(refused.sockets).toHaveLength(2);
  });

  it('reports a first connection that fails in plain words: unreachable, refused by code, or silent', async () => {
    const unreachable = setup();
    unreachable.connection.start();
    unreachable.last().serverClose(1006);
    expect(unreachable.connection.state).toBe('error');
    expect(unreachable.errors[0]).toMatchObject({ code: 'NETWORK', fatal: true });
    await unreachable.clock.advance(10_000);
    expect(unreachable.sockets).toHaveLength(1);

    const expired = setup();
    expired.connection.start();
    expired.last().open();
    expired.last().reply({ case: 'error', value: { code: 'CONTEXT_ENDED', message: 'call context ctx-1 is completed', fatal: true } });
    expired.last().serverClose(4410, 'CONTEXT_ENDED');
    expect(expired.errors[0]).toMatchObject({ code: 'CALL_REFUSED' });
    expect(expired.errors[0]!.message).toMatch(/already ended or its link expired/);
    expect(expired.errors[0]!.detail).toContain('call context ctx-1 is completed');

    const silent = setup({ connectTimeoutMs: 3_000 });
    silent.connection.start();
    silent.last().open();
    await silent.clock.advance(3_000);
    expect(silent.connection.state).toBe('error');
    expect(silent.errors[0]?.code).toBe('NETWORK');
    expect(silent.sockets[0]!.closedWith?.code).toBe(4000);
  });

  it('ends when the assistant hangs up, and ends on our hang-up once the server says goodbye', async () => {
    const byAssistant = setup();
    byAssistant.connection.start();
    byAssistant.last().open();
    byAssistant.initialized();
    byAssistant.last().reply({ case: 'disconnection', value: { type: DisconnectionType.TOOL, reason: 'end-call' } });
    expect(byAssistant.ended).toEqual([{ by: 'assistant', reason: 'end-call' }]);
    expect(byAssistant.connection.state).toBe('ended');
    // The server's close that follows changes nothing; no re-attach.
    byAssistant.sockets[0]!.serverClose(1000);
    await byAssistant.clock.advance(5_000);
    expect(byAssistant.sockets).toHaveLength(1);

    const byUser = setup();
    byUser.connection.start();
    byUser.last().open();
    byUser.initialized();
    byUser.connection.hangUp();
    expect(byUser.last().sent.at(-1)!.request).toMatchObject({ case: 'disconnection', value: { reason: 'user hung up' } });
    expect(byUser.connection.state).toBe('listening');
    byUser.last().reply({ case: 'disconnection', value: { type: DisconnectionType.USER, reason: 'client-disconnect' } });
    expect(byUser.connection.state).toBe('ended');
    expect(byUser.ended).toEqual([{ by: 'user', reason: 'client-disconnect' }]);

    // A server that never answers the hang-up: the widget closes after its grace period.
    const mute = setup();
    mute.connection.start();
    mute.last().open();
    mute.initialized();
    mute.connection.hangUp();
    await mute.clock.advance(2_000);
    expect(mute.connection.state).toBe('ended');
    expect(mute.sockets[0]!.closedWith?.code).toBe(1000);

    // A call that fails on the server side.
    const failed = setup();
    failed.connection.start();
    failed.last().open();
    failed.initialized();
    failed.last().reply({ case: 'disconnection', value: { type: DisconnectionType.ERROR, reason: 'llm-failed' } });
    expect(failed.connection.state).toBe('error');
    expect(failed.errors[0]).toMatchObject({ code: 'SERVER_ERROR', detail: 'llm-failed' });
  });

  it('drops microphone frames while the socket is backed up instead of queueing them', () => {
    const t = setup();
    t.connection.start();
    t.last().open();
    t.initialized();
    (t.last() as { bufferedAmount: number }).bufferedAmount = 1_000_000;
    t.connection.sendAudio(new Int16Array(320));
    expect(t.connection.stats).toMatchObject({ framesSent: 0, framesDropped: 1 });
    expect(cases(t.last())).toEqual(['initialization']);
  });
});
