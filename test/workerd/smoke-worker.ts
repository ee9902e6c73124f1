// Runs inside workerd (bundled by smoke.test.ts): the shared resampler and WebRTC VAD on precompiled .wasm modules
// (`/`), and the generated talk_api protobuf codec (`/talk-codec`).
import { fromBinary, toBinary, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { loadWasmModulesWorkerd } from '../../edge/wasm-workerd';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';
import { pcm16FromBytes } from '../../shared/talk/audio-bytes';
import { AssistantTalkRequestSchema, AssistantTalkResponseSchema } from '../../shared/talk/gen/talk_api_pb';
import { harmonicTone, pieces, sineTone, toneAmplitude } from '../audio/test-signals';
import { codecRequests, codecResponses } from './talk-codec-cases';

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

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Encoded here, decoded again here: the wire bytes and the decoded message (protobuf JSON) go back to Node. */
function roundTrip<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>) {
  const wire = toBinary(schema, message);
  const decoded = fromBinary(schema, wire);
  return { wire: base64(wire), decoded: toJson(schema, decoded), wireBytes: wire, decodedMessage: decoded };
}

function talkCodec(): Record<string, unknown> {
  const requests = codecRequests().map((message) => roundTrip(AssistantTalkRequestSchema, message));
  const responses = codecResponses().map((message) => roundTrip(AssistantTalkResponseSchema, message));
  // The decoded audio of the second request: a view into the wire bytes, read as PCM16 by the shared helper.
  const { decodedMessage, wireBytes } = requests[1]!;
  const audioRequest = decodedMessage.request;
  const audio = audioRequest.case === 'message' && audioRequest.value.content.case === 'audio' ? audioRequest.value.content.value : undefined;
  return {
    requests: requests.map(({ wire, decoded }) => ({ wire, decoded })),
    responses: responses.map(({ wire, decoded }) => ({ wire, decoded })),
    audio: audio && { viewOfWire: audio.buffer === wireBytes.buffer, byteOffset: audio.byteOffset, byteLength: audio.byteLength, samples: Array.from(pcm16FromBytes(audio)) },
  };
}

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      if (new URL(request.url).pathname === '/talk-codec') return Response.json(talkCodec());
      return Response.json(await run());
    } catch (error) {
      return Response.json({ error: String(error instanceof Error ? error.stack : error) }, { status: 500 });
    }
  },
};
