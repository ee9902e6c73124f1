// Runs inside workerd (bundled by smoke.test.ts): the shared resampler and WebRTC VAD on precompiled .wasm modules.
import { loadWasmModulesWorkerd } from '../../edge/wasm-workerd';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';
import { harmonicTone, pieces, sineTone, toneAmplitude } from '../audio/test-signals';

async function run(): Promise<Record<string, unknown>> {
  const modules = await loadWasmModulesWorkerd();
  const resamplers = await createSpeexResamplerFactory(modules.speexResampler);

  // 1 s of a 1 kHz tone at 0.5 FS, 48 kHz → 16 kHz in 20 ms frames.
  const resampler = resamplers.create(48_000, 16_000);
  const frameLengths = new Set<number>();
  const output = new Int16Array(16_000);
  let written = 0;
  for (const frame of pieces(sineTone(48_000, 1_000, 48_000, 0.5), 960)) {
    const out = resampler.process(frame);
    frameLengths.add(out.length);
    output.set(out, written);
    written += out.length;
  }
  resampler.destroy();

  const vads = await createWebRtcVadFactory(modules.fvad);
  const vad = await vads({ threshold: 0.5, webrtcMode: 2 });
  const count = (signal: Int16Array) => pieces(signal, 320).reduce((n, frame) => n + (vad.process(frame) as number), 0);
  const silenceVoiced = count(new Int16Array(50 * 320));
  const speechLikeVoiced = count(harmonicTone(16_000, 150, 50 * 320, 0.3));
  vad.close();

  return {
    userAgent: navigator.userAgent,
    resampler: {
      frameLengths: [...frameLengths],
      totalSamples: written,
      amplitude: toneAmplitude(output, 16_000, 1_000, 1_600),
      wasmMemoryBytes: resamplers.wasmMemoryBytes(),
    },
    vad: { silenceVoiced, speechLikeVoiced, frames: 50 },
  };
}

export default {
  async fetch(): Promise<Response> {
    try {
      return Response.json(await run());
    } catch (error) {
      return Response.json({ error: String(error instanceof Error ? error.stack : error) }, { status: 500 });
    }
  },
};
