import { fromBinary } from '@bufbuild/protobuf';
import { beforeAll, describe, expect, it } from 'vitest';
import { PIPELINE_FORMAT, pcm16Bytes, pcm16View, type AudioFormat, type AudioFrame } from '../../shared/audio/format';
import { mulawEncode } from '../../shared/audio/g711';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import type { ChannelHandlers } from '../../shared/contracts/channel';
import { createPlayout } from '../../shared/engine/playout';
import { AssistantTalkResponseSchema, ToolCallAction, type AssistantTalkResponse } from '../../shared/talk/gen/talk_api_pb';
import { createTalkChannel, MAX_USER_AUDIO_MS } from '../../shared/talk/talk-channel';
import type { TalkTransport } from '../../shared/talk/transport';
import { sineTone, toneAmplitude } from '../audio/test-signals';
import { audioRuntime } from '../fakes/call';
import { createFakeClock } from '../fakes/clock';

/** A client connection that decodes what it is sent. */
function recordingTransport() {
  const sent: AssistantTalkResponse['response'][] = [];
  let buffered = 0;
  const transport: TalkTransport = {
    send: (frame) => void sent.push(fromBinary(AssistantTalkResponseSchema, frame).response),
    close: () => undefined,
    bufferedAmount: () => buffered,
  };
  return { transport, sent, setBuffered: (bytes: number) => void (buffered = bytes) };
}

/** The engine's side of the channel: what it was handed. */
function recordingHandlers() {
  const audio: AudioFrame[] = [];
  const marks: string[] = [];
  const closes: string[] = [];
  const handlers: ChannelHandlers = { onAudio: (f) => audio.push(f), onDtmf: () => undefined, onMark: (n) => marks.push(n), onClose: (r) => closes.push(r) };
  return { handlers, audio, marks, closes };
}

let resamplers: ResamplerFactory;
beforeAll(async () => {
  resamplers = (await audioRuntime()).resamplers;
});

function channelFor(inputFormat: AudioFormat, extra: { sendAudio?: () => boolean; messageId?: () => string; resamplers?: ResamplerFactory } = {}) {
  return createTalkChannel({
    id: 'ctx-1',
    inputFormat,
    outputFormat: PIPELINE_FORMAT,
    resamplers: extra.resamplers ?? resamplers,
    sendAudio: extra.sendAudio ?? (() => true),
    messageId: extra.messageId ?? (() => 'a1'),
    onHangup: () => undefined,
  });
}

/** `ms` of a 440 Hz tone in `format`, as the client would send it. */
function toneBytes(format: AudioFormat, ms: number): Uint8Array {
  const pcm = sineTone(format.sampleRateHz, 440, (format.sampleRateHz * ms) / 1000);
  if (format.encoding === 'pcm16') return pcm16Bytes(pcm);
  const out = new Uint8Array(pcm.length);
  mulawEncode(pcm, out);
  return out;
}

describe('talk channel: user audio', () => {
  it.each([
    [{ encoding: 'pcm16', sampleRateHz: 48_000 }],
    [{ encoding: 'pcm16', sampleRateHz: 24_000 }],
    [{ encoding: 'mulaw', sampleRateHz: 8_000 }],
    [{ encoding: 'pcm16', sampleRateHz: 16_000 }],
  ] as const)('converts %o to 16 kHz PCM16 frames of 20 ms, about one per 20 ms sent, with the tone intact', (format) => {
    const talk = channelFor(format);
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    // Two seconds in 20 ms messages, as a browser worklet sends them.
    const bytes = toneBytes(format, 2_000);
    const chunk = bytes.length / 100;
    for (let i = 0; i < bytes.length; i += chunk) expect(talk.userAudio(bytes.subarray(i, i + chunk))).toBeUndefined();

    expect(engine.audio.every((f) => f.format === PIPELINE_FORMAT && f.data.byteLength === 640)).toBe(true);
    // 100 frames, minus at most a frame or two held in the resampler's filter (never more than was sent).
    expect(engine.audio.length).toBeLessThanOrEqual(100);
    expect(engine.audio.length).toBeGreaterThanOrEqual(98);
    expect(talk.stats.framesIn).toBe(engine.audio.length);
    // Real conversion: the 440 Hz tone survives at its amplitude (0.5 full scale; μ-law loses a little).
    const pcm = new Int16Array(engine.audio.length * 320);
    engine.audio.forEach((f, i) => pcm.set(pcm16View(f.data), i * 320));
    expect(toneAmplitude(pcm, 16_000, 440, 1_600)).toBeGreaterThan(0.45);
    expect(toneAmplitude(pcm, 16_000, 440, 1_600)).toBeLessThan(0.55);
  });

  it('rejoins PCM16 samples split across messages (odd-sized chunks)', () => {
    const talk = channelFor({ encoding: 'pcm16', sampleRateHz: 48_000 });
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    const bytes = toneBytes({ encoding: 'pcm16', sampleRateHz: 48_000 }, 1_000);
    for (let i = 0; i < bytes.length; i += 1_001) talk.userAudio(bytes.subarray(i, i + 1_001));
    expect(engine.audio.length).toBeGreaterThanOrEqual(48);
    const pcm = new Int16Array(engine.audio.length * 320);
    engine.audio.forEach((f, i) => pcm.set(pcm16View(f.data), i * 320));
    expect(toneAmplitude(pcm, 16_000, 440, 1_600)).toBeGreaterThan(0.45);
  });

  it('refuses a message carrying more than a second of audio, says why, and delivers none of it', () => {
    const talk = channelFor({ encoding: 'pcm16', sampleRateHz: 48_000 });
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    expect(MAX_USER_AUDIO_MS).toBe(1_000);
    expect(talk.userAudio(new Uint8Array(96_000))).toBeUndefined(); // exactly one second is fine
    const delivered = engine.audio.length;
    expect(talk.userAudio(new Uint8Array(96_002))).toBe('a user audio message may carry at most 1000 ms (96000 bytes), got 96002 bytes');
    expect(engine.audio.length).toBe(delivered);
  });

  it('holds audio that arrives before the engine starts and hands it over in order, keeping the newest 100 frames', () => {
    const talk = channelFor(PIPELINE_FORMAT);
    for (let i = 0; i < 150; i++) talk.userAudio(pcm16Bytes(new Int16Array(320).fill(i)));
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    expect(engine.audio.map((f) => pcm16View(f.data)[0])).toEqual(Array.from({ length: 100 }, (_, i) => 50 + i));
    expect(talk.stats.droppedEarly).toBe(50);
    // After start, frames go straight through.
    talk.userAudio(pcm16Bytes(new Int16Array(320).fill(999)));
    expect(pcm16View(engine.audio.at(-1)!.data)[0]).toBe(999);
  });

  it('ignores audio once closed, tells the engine, and releases its resampler', () => {
    let destroyed = 0;
    const counting: ResamplerFactory = {
      create(from, to) {
        const r = resamplers.create(from, to);
        return Object.assign(Object.create(r) as typeof r, { destroy: () => (destroyed++, r.destroy()) });
      },
    };
    const talk = channelFor({ encoding: 'pcm16', sampleRateHz: 48_000 }, { resamplers: counting });
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    talk.close('client-disconnect');
    talk.close('again');
    expect(engine.closes).toEqual(['client-disconnect']);
    expect(destroyed).toBe(1);
    expect(talk.userAudio(toneBytes({ encoding: 'pcm16', sampleRateHz: 48_000 }, 100))).toBeUndefined();
    expect(engine.audio).toHaveLength(0);
    // A channel closed before the engine started reports the close at start.
    const early = channelFor(PIPELINE_FORMAT);
    early.close('client-disconnect');
    const late = recordingHandlers();
    early.channel.start(late.handlers);
    expect(late.closes).toEqual(['client-disconnect']);
  });
});

describe('talk channel: assistant audio and playback', () => {
  const frame: AudioFrame = { format: PIPELINE_FORMAT, data: pcm16Bytes(new Int16Array(320).fill(7)) };

  it('sends each frame as assistant audio under the current message id', () => {
    let id = 'a1';
    const talk = channelFor(PIPELINE_FORMAT, { messageId: () => id });
    const client = recordingTransport();
    talk.attach(client.transport);
    talk.channel.play(frame);
    id = 'a2';
    talk.channel.play(frame);
    expect(client.sent.map((r) => r.case === 'assistant' && [r.value.id, r.value.audio.byteLength, r.value.text])).toEqual([
      ['a1', 640, ''],
      ['a2', 640, ''],
    ]);
    expect(client.sent[0]?.case === 'assistant' && Array.from(client.sent[0].value.audio.subarray(0, 2))).toEqual([7, 0]);
    expect(talk.stats.framesOut).toBe(2);
  });

  it('marks go out as PlaybackMark, PlaybackComplete comes back as the engine mark, clear is a flush', () => {
    const talk = channelFor(PIPELINE_FORMAT);
    const client = recordingTransport();
    const engine = recordingHandlers();
    talk.channel.start(engine.handlers);
    talk.attach(client.transport);
    expect(talk.channel.capabilities).toEqual({ marks: true, transfer: true });
    talk.channel.mark('p1.1.5');
    talk.channel.clear();
    expect(client.sent).toEqual([
      { case: 'playbackMark', value: expect.objectContaining({ id: 'p1.1.5' }) },
      { case: 'playbackFlush', value: expect.objectContaining({ id: 'a1' }) },
    ]);
    talk.playbackComplete('p1.1.5');
    expect(engine.marks).toEqual(['p1.1.5']);
  });

  it('drops and counts frames while no client is attached, and sends again once one re-attaches', () => {
    const talk = channelFor(PIPELINE_FORMAT);
    const first = recordingTransport();
    talk.attach(first.transport);
    expect(talk.attached).toBe(true);
    talk.detach();
    expect(talk.attached).toBe(false);
    for (let i = 0; i < 3; i++) talk.channel.play(frame);
    talk.channel.mark('p1.1.5');
    expect(first.sent).toEqual([]);
    expect(talk.stats.droppedDetached).toBe(3);
    const second = recordingTransport();
    talk.attach(second.transport);
    talk.channel.play(frame);
    expect(second.sent.map((r) => r.case)).toEqual(['assistant']);
  });

  it('drops frames while the client is not reading (back-pressure beyond 256 KiB)', () => {
    const talk = channelFor(PIPELINE_FORMAT);
    const client = recordingTransport();
    talk.attach(client.transport);
    client.setBuffered(256 * 1024 + 1);
    talk.channel.play(frame);
    talk.channel.play(frame);
    expect(client.sent).toEqual([]);
    expect(talk.stats.droppedOut).toBe(2);
    client.setBuffered(256 * 1024);
    talk.channel.play(frame);
    expect(client.sent).toHaveLength(1);
  });

  it('stream mode TEXT: no audio frames and no marks go to the client', () => {
    let audio = false;
    const talk = channelFor(PIPELINE_FORMAT, { sendAudio: () => audio });
    const client = recordingTransport();
    talk.attach(client.transport);
    talk.channel.play(frame);
    talk.channel.mark('p1.1.5');
    expect(client.sent).toEqual([]);
    expect(talk.stats.droppedOut + talk.stats.droppedDetached).toBe(0); // suppressed, not dropped
    audio = true;
    talk.channel.play(frame);
    expect(client.sent.map((r) => r.case)).toEqual(['assistant']);
  });

  it('stream mode TEXT: the playout position follows the clock though no PlaybackComplete can come back', async () => {
    // A text client plays nothing and so never confirms a mark. The channel promises that the engine's clock
    // model stands in for the receipts; the heard position (what a typed interruption cuts the history to)
    // must therefore advance with time, not stall one mark interval after the start.
    const clock = createFakeClock(0);
    const talk = channelFor(PIPELINE_FORMAT, { sendAudio: () => false });
    talk.attach(recordingTransport().transport);
    const playout = createPlayout(talk.channel, clock, { leadMs: 200, markIntervalMs: 100, frameMs: 20, maxBufferedMs: 120_000 }, { onFirstAudioOut: () => undefined, onPlayoutDone: () => undefined });
    talk.channel.start({ onAudio: () => undefined, onDtmf: () => undefined, onMark: (n) => playout.onMark(n), onClose: () => undefined });
    playout.begin(1);
    for (let i = 0; i < 150; i++) playout.enqueue(1, frame); // 3 s of speech
    await clock.advance(2_000);
    expect(playout.heardMs()).toBeGreaterThanOrEqual(1_800);
  });
});

describe('talk channel: transfer', () => {
  it('tells the client where to go with a TRANSFER_CONVERSATION tool call', async () => {
    const talk = channelFor(PIPELINE_FORMAT, { messageId: () => 'a4' });
    const client = recordingTransport();
    talk.attach(client.transport);
    await talk.channel.transfer!('+15550001111');
    expect(client.sent).toEqual([
      {
        case: 'toolCall',
        value: expect.objectContaining({ id: 'transfer-a4', name: 'transfer_call', action: ToolCallAction.TRANSFER_CONVERSATION, args: { target: '+15550001111' } }),
      },
    ]);
  });

  it('fails while no client is attached (the engine then keeps the caller and says its fallback)', async () => {
    const talk = channelFor(PIPELINE_FORMAT);
    await expect(talk.channel.transfer!('sales')).rejects.toThrow('the client is not connected; it cannot be transferred');
  });
});
