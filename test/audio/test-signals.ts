/** Synthetic test signals and their measurement (PCM16 mono). */

export function sineTone(rateHz: number, frequencyHz: number, samples: number, amplitude = 0.5): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++) out[i] = Math.round(amplitude * 32_767 * Math.sin((2 * Math.PI * frequencyHz * i) / rateHz));
  return out;
}

/** A voiced-speech stand-in: harmonics of f0 up to 3.4 kHz falling at 1/k (−6 dB/octave), scaled to `peak`. */
export function harmonicTone(rateHz: number, f0Hz: number, samples: number, peak = 0.3): Int16Array {
  const raw = new Float64Array(samples);
  let max = 0;
  for (let i = 0; i < samples; i++) {
    let v = 0;
    for (let k = 1; k * f0Hz <= 3_400; k++) v += Math.sin((2 * Math.PI * k * f0Hz * i) / rateHz) / k;
    raw[i] = v;
    max = Math.max(max, Math.abs(v));
  }
  return Int16Array.from(raw, (v) => Math.round((v / max) * peak * 32_767));
}

/** Deterministic white noise in ±amplitude full scale. */
export function whiteNoise(samples: number, amplitude = 0.25, seed = 1): Int16Array {
  const out = new Int16Array(samples);
  let s = seed >>> 0;
  for (let i = 0; i < samples; i++) {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    out[i] = Math.round(((s >>> 8) / 2 ** 24 - 0.5) * 2 * amplitude * 32_767);
  }
  return out;
}

/** Amplitude (full scale = 1) of the `frequencyHz` component, by a least-squares sine/cosine fit from `start`. */
export function toneAmplitude(signal: Int16Array, rateHz: number, frequencyHz: number, start = 0): number {
  let ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
  for (let i = start; i < signal.length; i++) {
    const phase = (2 * Math.PI * frequencyHz * i) / rateHz;
    const s = Math.sin(phase), c = Math.cos(phase), y = (signal[i] ?? 0) / 32_767;
    ss += s * s; cc += c * c; sc += s * c; ys += y * s; yc += y * c;
  }
  const det = ss * cc - sc * sc;
  return Math.hypot((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
}

/** RMS (full scale = 1) from `start`. */
export function rms(signal: Int16Array, start = 0): number {
  let sum = 0;
  for (let i = start; i < signal.length; i++) sum += ((signal[i] ?? 0) / 32_767) ** 2;
  return Math.sqrt(sum / Math.max(1, signal.length - start));
}

export const decibels = (ratio: number): number => 20 * Math.log10(ratio);

export function concat(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Splits into `size`-sample frames (the last one may be short). */
export function pieces(signal: Int16Array, size: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let i = 0; i < signal.length; i += size) out.push(signal.subarray(i, i + size));
  return out;
}
