import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { fromBinary, toBinary, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWorker } from './bundle';
import { AssistantTalkRequestSchema, AssistantTalkResponseSchema } from '../../shared/talk/gen/talk_api_pb';
import { codecAudioSamples, codecRequests, codecResponses } from './talk-codec-cases';

// Inside real workerd, no nodejs_compat: the shared audio code with .wasm imported as compiled modules (Fix A), and
// the generated talk_api protobuf codec.
let outDir: string;
let mf: Miniflare | undefined;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'workerd-smoke-'));
  await bundleWorker({ worker: join(import.meta.dirname, 'smoke-worker.ts') }, outDir);
  mf = new Miniflare({
    modules: true,
    scriptPath: join(outDir, 'worker.js'),
    modulesRoot: outDir,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-04-20',
    cf: false,
  });
  await mf.ready;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
  await rm(outDir, { recursive: true, force: true });
});

describe('workerd smoke (miniflare)', () => {
  it('resamples 48k → 16k and runs the WebRTC VAD inside workerd', async () => {
    const response = await mf!.dispatchFetch('http://smoke.test/');
    const body = (await response.json()) as {
      error?: string;
      userAgent: string;
      resampler: { frameLengths: number[]; totalSamples: number; amplitude: number; wasmMemoryBytes: number };
      vad: { silenceVoiced: number; speechLikeVoiced: number; frames: number };
    };
    expect(body.error).toBeUndefined();
    expect(response.status).toBe(200);
    expect(body.userAgent).toBe('Cloudflare-Workers');
    expect(body.resampler.frameLengths).toEqual([320]);
    expect(body.resampler.totalSamples).toBe(16_000);
    expect(Math.abs(20 * Math.log10(body.resampler.amplitude / 0.5))).toBeLessThan(0.1);
    expect(body.resampler.wasmMemoryBytes).toBeGreaterThan(0);
    expect(body.vad.silenceVoiced).toBe(0);
    expect(body.vad.speechLikeVoiced).toBe(body.vad.frames);
  });
});

interface CodecRoundTrip {
  readonly wire: string;
  readonly decoded: unknown;
}

/** What workerd encoded must be what Node encodes, must decode in Node to the message built here, and workerd's own decode must agree. */
function expectSameOnBothSides<Desc extends DescMessage>(schema: Desc, built: MessageShape<Desc>, fromWorkerd: CodecRoundTrip, label: string) {
  const wire = new Uint8Array(Buffer.from(fromWorkerd.wire, 'base64'));
  expect(Buffer.from(wire).equals(Buffer.from(toBinary(schema, built))), `${label}: same wire bytes`).toBe(true);
  expect(fromBinary(schema, wire), `${label}: decoded in Node`).toEqual(built);
  expect(fromWorkerd.decoded, `${label}: decoded in workerd`).toEqual(toJson(schema, built));
}

describe('talk_api codec in workerd (miniflare)', () => {
  it('encodes and decodes an initialization, an audio message and every response case as Node does', async () => {
    const response = await mf!.dispatchFetch('http://smoke.test/talk-codec');
    const body = (await response.json()) as {
      error?: string;
      requests: CodecRoundTrip[];
      responses: CodecRoundTrip[];
      audio?: { viewOfWire: boolean; byteOffset: number; byteLength: number; samples: number[] };
    };
    expect(body.error).toBeUndefined();
    expect(response.status).toBe(200);

    const requests = codecRequests();
    expect(body.requests).toHaveLength(requests.length);
    requests.forEach((built, i) => expectSameOnBothSides(AssistantTalkRequestSchema, built, body.requests[i]!, `request ${built.request.case}`));

    const responses = codecResponses();
    // Every case of the oneof, so a response added to the proto without a case here fails this test.
    const oneofCases = AssistantTalkResponseSchema.oneofs.find((oneof) => oneof.name === 'response')!.fields.map((field) => field.localName);
    expect(responses.map((r) => r.response.case).sort()).toEqual([...oneofCases].sort());
    expect(body.responses).toHaveLength(responses.length);
    responses.forEach((built, i) => expectSameOnBothSides(AssistantTalkResponseSchema, built, body.responses[i]!, `response ${built.response.case}`));

    // Decoded bytes are views into the frame, at an odd offset here; pcm16FromBytes still reads the samples.
    expect(body.audio).toEqual({ viewOfWire: true, byteOffset: 9, byteLength: 640, samples: Array.from(codecAudioSamples()) });
  });
});
