import { createSileroVadFactory } from '../../media-node/vad/silero';
import { createAudioConverter } from '../../shared/audio/convert';
import { MULAW_8K, PIPELINE_FORMAT, pcm16View } from '../../shared/audio/format';
import { createFrameAssembler } from '../../shared/audio/frame-assembler';
import { mulawEncode } from '../../shared/audio/g711';
import type { Vad } from '../../shared/contracts/vad';
import { audioRuntime } from '../fakes/call';

export interface AudioPathResult {
  vad: 'webrtc' | 'silero';
  concurrentCalls: number;
  audioSeconds: number;
  cpuMsPerAudioSecond: number;
  percentOfCore: number;
  callsPerCore: number;
}

/**
 * CPU for one telephony call's audio path, per second of call: inbound μ-law 8 kHz → PCM16 → 16 kHz →
 * 20 ms frames → VAD; outbound TTS PCM16 24 kHz → 8 kHz → μ-law → 20 ms frames. Providers and network
 * are not included (they are I/O); this is the work the runtime does per frame. `concurrentCalls` streams
 * run side by side, frame step by frame step, as on a loaded node (Silero batches their windows); the
 * figure is per call.
 */
export async function benchAudioPath(vadKind: 'webrtc' | 'silero', audioSeconds: number, concurrentCalls = 1): Promise<AudioPathResult> {
  const { resamplers, webrtc } = await audioRuntime();
  const silero = vadKind === 'silero' ? createSileroVadFactory() : undefined;
  const newVad = (): Promise<Vad> => (silero ? silero({ threshold: 0.5, webrtcMode: 2 }) : webrtc({ threshold: 0.5, webrtcMode: 2 }));
  const frames = audioSeconds * 50;
  // Caller audio: a 440 Hz tone with noise, as μ-law 8 kHz wire frames.
  const wire: Uint8Array[] = [];
  for (let f = 0; f < 50; f++) {
    const pcm = new Int16Array(160);
    for (let i = 0; i < 160; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (f * 160 + i)) / 8000) + (Math.random() - 0.5) * 800);
    const bytes = new Uint8Array(160);
    mulawEncode(pcm, bytes);
    wire.push(bytes);
  }
  const ttsChunk = new Uint8Array(480 * 2); // 20 ms of 24 kHz PCM16
  const ttsView = new Int16Array(ttsChunk.buffer);
  for (let i = 0; i < 480; i++) ttsView[i] = Math.round(6000 * Math.sin((2 * Math.PI * 300 * i) / 24_000));

  const run = async (count: number) => {
    const calls = await Promise.all(
      Array.from({ length: concurrentCalls }, async (_, c) => ({
        offset: c * 7,
        vad: await newVad(),
        inbound: createAudioConverter(MULAW_8K, PIPELINE_FORMAT, resamplers),
        inFrames: createFrameAssembler(PIPELINE_FORMAT),
        outbound: createAudioConverter({ encoding: 'pcm16', sampleRateHz: 24_000 }, MULAW_8K, resamplers),
        outFrames: createFrameAssembler(MULAW_8K),
      })),
    );
    let sink = 0;
    const pending: Promise<number>[] = [];
    const onOut = () => sink++;
    for (let f = 0; f < count; f++) {
      for (const call of calls) {
        call.inFrames.push(call.inbound.convert(wire[(f + call.offset) % wire.length]!), (frame) => {
          const r = call.vad.process(pcm16View(frame.data));
          if (typeof r === 'number') sink += r;
          else pending.push(r);
        });
        call.outFrames.push(call.outbound.convert(ttsChunk), onOut);
      }
      // A frame step is 20 ms of every call; their VAD results are awaited together.
      if (pending.length > 0) for (const p of pending.splice(0)) sink += await p;
    }
    for (const call of calls) {
      call.vad.close();
      call.inbound.destroy();
      call.outbound.destroy();
    }
    return sink;
  };
  await run(200); // warm-up
  const before = process.cpuUsage();
  await run(frames);
  const used = process.cpuUsage(before);
  const cpuMs = (used.user + used.system) / 1000;
  const cpuMsPerAudioSecond = cpuMs / audioSeconds / concurrentCalls;
  const percentOfCore = cpuMsPerAudioSecond / 10;
  return { vad: vadKind, concurrentCalls, audioSeconds, cpuMsPerAudioSecond, percentOfCore, callsPerCore: Math.floor(100 / percentOfCore) };
}
