import { describe, expect, it } from 'vitest';
import { createAudioConverter } from '../../shared/audio/convert';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, pcm16Bytes, pcm16View } from '../../shared/audio/format';
import type { AudioFormat } from '../../shared/audio/format';
import { alawDecodeSample, alawEncodeSample, mulawDecodeSample, mulawEncodeSample } from '../../shared/audio/g711';
import type { Resampler, ResamplerFactory } from '../../shared/audio/resampler';

const PCM16_8K: AudioFormat = { encoding: 'pcm16', sampleRateHz: 8000 };

interface FakeFactory extends ResamplerFactory {
  readonly created: FakeResampler[];
}

interface FakeResampler extends Resampler {
  readonly inputs: Int16Array[];
  readonly outputs: Int16Array[];
  destroyCount: number;
}

/**
 * Exact integer-ratio stand-in for the speex resampler: 2:1 keeps every other sample (its phase carries
 * across calls, like real filter state), 1:2 repeats each sample. Only the zero-allocation path is allowed.
 */
function fakeResamplers(): FakeFactory {
  const created: FakeResampler[] = [];
  return {
    created,
    create(inputRateHz, outputRateHz) {
      const down = inputRateHz === outputRateHz * 2;
      if (!down && outputRateHz !== inputRateHz * 2) throw new Error(`fake resampler: no ${inputRateHz}→${outputRateHz}`);
      let phase = 0;
      const resampler: FakeResampler = {
        inputRateHz,
        outputRateHz,
        inputs: [],
        outputs: [],
        destroyCount: 0,
        process: () => {
          throw new Error('the converter must use processInto');
        },
        maxOutputSamples: (n) => (down ? Math.ceil(n / 2) : n * 2),
        processInto(input, output) {
          resampler.inputs.push(input);
          resampler.outputs.push(output);
          if (output.length < resampler.maxOutputSamples(input.length)) throw new RangeError('output too small');
          let written = 0;
          for (const sample of input) {
            if (down) {
              if (phase === 0) output[written++] = sample;
              phase ^= 1;
            } else {
              output[written++] = sample;
              output[written++] = sample;
            }
          }
          return written;
        },
        destroy() {
          resampler.destroyCount++;
        },
      };
      created.push(resampler);
      return resampler;
    },
  };
}

const noResamplers: ResamplerFactory = {
  create: () => {
    throw new Error('no resampler expected');
  },
};

function pcm(samples: number[]): Uint8Array {
  return pcm16Bytes(Int16Array.from(samples));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

describe('audio converter', () => {
  it.each([PIPELINE_FORMAT, MULAW_8K, ALAW_8K])('passes %o through untouched, without a copy or a resampler', (format) => {
    const converter = createAudioConverter(format, { ...format }, noResamplers);
    const data = Uint8Array.from([1, 2, 3, 4]);
    expect(converter.convert(data)).toBe(data);
  });

  it('transcodes μ-law ↔ A-law at one rate byte for byte, as decode-then-encode would', () => {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const toAlaw = createAudioConverter(MULAW_8K, ALAW_8K, noResamplers).convert(codes);
    const toMulaw = createAudioConverter(ALAW_8K, MULAW_8K, noResamplers).convert(codes);
    for (let code = 0; code < 256; code++) {
      expect(toAlaw[code], `μ-law ${code}`).toBe(alawEncodeSample(mulawDecodeSample(code)));
      expect(toMulaw[code], `A-law ${code}`).toBe(mulawEncodeSample(alawDecodeSample(code)));
    }
    expect(toAlaw[0xff]).toBe(0xd5); // silence stays silence
    expect(toMulaw[0xd5]).toBe(mulawEncodeSample(8));
  });

  it('decodes μ-law 8 kHz to the pipeline format through the resampler', () => {
    const resamplers = fakeResamplers();
    const converter = createAudioConverter(MULAW_8K, PIPELINE_FORMAT, resamplers);
    const out = converter.convert(Uint8Array.from([0xff, 0x80, 0x00, 0xfe]));
    expect(Array.from(pcm16View(out))).toEqual([0, 0, 32124, 32124, -32124, -32124, 8, 8]);
    expect(resamplers.created.map((r) => [r.inputRateHz, r.outputRateHz])).toEqual([[8000, 16000]]);
  });

  it('decodes A-law 8 kHz to PCM16 8 kHz without a resampler', () => {
    const out = createAudioConverter(ALAW_8K, PCM16_8K, noResamplers).convert(Uint8Array.from([0xd5, 0x55, 0xaa, 0x2a]));
    expect(Array.from(pcm16View(out))).toEqual([8, -8, 32256, -32256]);
  });

  it('encodes pipeline PCM16 to μ-law 8 kHz, with samples split across chunks at odd bytes', () => {
    const samples = Array.from({ length: 400 }, (_, i) => Math.round(20000 * Math.sin(i / 7)));
    const whole = pcm(samples);
    const expected = samples.filter((_, i) => i % 2 === 0).map(mulawEncodeSample);

    const oneShot = createAudioConverter(PIPELINE_FORMAT, MULAW_8K, fakeResamplers()).convert(whole);
    expect(Array.from(oneShot)).toEqual(expected);

    const converter = createAudioConverter(PIPELINE_FORMAT, MULAW_8K, fakeResamplers());
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (let k = 0; offset < whole.length; k++) {
      const size = [1, 3, 5, 7, 11, 13, 64, 2, 1][k % 9]!;
      parts.push(converter.convert(whole.subarray(offset, offset + size)));
      offset += size;
    }
    expect(Array.from(concat(parts))).toEqual(expected);
  });

  it('encodes PCM16 8 kHz to A-law without a resampler', () => {
    const out = createAudioConverter(PCM16_8K, ALAW_8K, noResamplers).convert(pcm([0, -1, 32767, -32768, 16]));
    expect(Array.from(out)).toEqual([0xd5, 0x55, 0xaa, 0x2a, 0xd4]);
  });

  it('writes resampled PCM16 little-endian', () => {
    const out = createAudioConverter(PCM16_8K, PIPELINE_FORMAT, fakeResamplers()).convert(pcm([0x0102, -2]));
    expect(Array.from(out)).toEqual([0x02, 0x01, 0x02, 0x01, 0xfe, 0xff, 0xfe, 0xff]);
  });

  it('converts μ-law 8 kHz to A-law 16 kHz through linear PCM', () => {
    const out = createAudioConverter(MULAW_8K, { encoding: 'alaw', sampleRateHz: 16000 }, fakeResamplers()).convert(Uint8Array.from([0x80, 0xff]));
    expect(Array.from(out)).toEqual([alawEncodeSample(32124), alawEncodeSample(32124), 0xd5, 0xd5]);
  });

  it('reuses its scratch buffers: steady 20 ms frames reach the resampler in the same arrays', () => {
    const resamplers = fakeResamplers();
    const converter = createAudioConverter(PIPELINE_FORMAT, MULAW_8K, resamplers);
    const frame = new Uint8Array(640);
    for (let i = 0; i < 5; i++) expect(converter.convert(frame)).toHaveLength(160);
    const [resampler] = resamplers.created;
    expect(resampler!.inputs).toHaveLength(5);
    expect(new Set(resampler!.inputs).size).toBe(1);
    expect(new Set(resampler!.outputs).size).toBe(1);
    expect(resampler!.inputs[0]).toHaveLength(320); // an exact-length view, as processInto expects
  });

  it('returns an empty array while no whole sample is available', () => {
    const converter = createAudioConverter(PIPELINE_FORMAT, MULAW_8K, fakeResamplers());
    expect(converter.convert(new Uint8Array(0))).toHaveLength(0);
    expect(converter.convert(Uint8Array.from([0x10]))).toHaveLength(0);
    expect(Array.from(converter.convert(Uint8Array.from([0x00])))).toEqual([mulawEncodeSample(0x10)]);
  });

  it('destroys its resampler once and refuses to convert afterwards', () => {
    const resamplers = fakeResamplers();
    const converter = createAudioConverter(MULAW_8K, PIPELINE_FORMAT, resamplers);
    converter.destroy();
    converter.destroy();
    expect(resamplers.created[0]!.destroyCount).toBe(1);
    expect(() => converter.convert(new Uint8Array(160))).toThrow(/AUDIO_CONVERTER_DESTROYED/);
    const passThrough = createAudioConverter(MULAW_8K, MULAW_8K, noResamplers);
    passThrough.destroy();
    expect(() => passThrough.convert(new Uint8Array(1))).toThrow(/AUDIO_CONVERTER_DESTROYED/);
  });
});
