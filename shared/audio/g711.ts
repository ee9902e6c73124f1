/**
 * G.711 μ-law and A-law, bit-exact with the ITU-T reference implementation (G.191 `g711.c`):
 * 16-bit linear samples in, 8-bit codes out, and back. Negative samples are quantised on their one's
 * complement magnitude (`~x`), as the reference does, so e.g. -1..-4 encode as μ-law "negative zero" 0x7F.
 *
 * Decoding is a 256-entry table. Encoding is a table too: a μ-law code depends only on `x >> 2` and an
 * A-law code only on `x >> 4` (the reference drops those bits first), so 16 K + 4 K entries cover int16.
 * All tables are built once at module load (~20 K steps) from the segment algorithm below.
 */

/** The code of a zero sample: what telephony streams carry as silence. */
export const MULAW_SILENCE = 0xff;
export const ALAW_SILENCE = 0xd5;

/** Segment-search μ-law encoder (G.191 `ulaw_compress`); only used to build the table. */
function mulawCompress(sample: number): number {
  let magnitude = (sample < 0 ? ~sample : sample) >> 2; // 14-bit magnitude
  if (magnitude > 8158) magnitude = 8158;
  magnitude += 33; // bias, so every segment starts at a power of two
  let segment = 1;
  for (let rest = magnitude >> 6; rest !== 0; rest >>= 1) segment++;
  const step = 0x0f - ((magnitude >> segment) & 0x0f);
  const code = ((8 - segment) << 4) | step;
  return sample >= 0 ? code | 0x80 : code;
}

/** G.191 `ulaw_expand`. */
function mulawExpand(code: number): number {
  const inverted = ~code;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const step = 4 << (exponent + 1);
  const magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
  return code < 0x80 ? -magnitude : magnitude;
}

/** Segment-search A-law encoder (G.191 `alaw_compress`); only used to build the table. */
function alawCompress(sample: number): number {
  let magnitude = (sample < 0 ? ~sample : sample) >> 4; // 12-bit magnitude
  if (magnitude > 15) {
    let exponent = 1;
    while (magnitude > 16 + 15) {
      magnitude >>= 1;
      exponent++;
    }
    magnitude = magnitude - 16 + (exponent << 4);
  }
  if (sample >= 0) magnitude |= 0x80;
  return magnitude ^ 0x55; // even bits inverted on the wire
}

/** G.191 `alaw_expand`. */
function alawExpand(code: number): number {
  const bits = (code ^ 0x55) & 0x7f;
  const exponent = bits >> 4;
  let mantissa = bits & 0x0f;
  if (exponent > 0) mantissa += 16;
  mantissa = (mantissa << 4) + 8;
  if (exponent > 1) mantissa <<= exponent - 1;
  return code > 0x7f ? mantissa : -mantissa;
}

const MULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
for (let code = 0; code < 256; code++) {
  MULAW_DECODE[code] = mulawExpand(code);
  ALAW_DECODE[code] = alawExpand(code);
}

// Indexed by the sample's top 14 (μ-law) or 12 (A-law) bits as unsigned; entry i stands for the sample
// whose shifted value is i read as signed, i.e. every sample sharing those top bits.
const MULAW_ENCODE = new Uint8Array(1 << 14);
for (let i = 0; i < MULAW_ENCODE.length; i++) MULAW_ENCODE[i] = mulawCompress(((i << 18) >> 18) << 2);
const ALAW_ENCODE = new Uint8Array(1 << 12);
for (let i = 0; i < ALAW_ENCODE.length; i++) ALAW_ENCODE[i] = alawCompress(((i << 20) >> 20) << 4);

function clampInt16(sample: number): number {
  return sample > 32767 ? 32767 : sample < -32768 ? -32768 : sample;
}

export function mulawDecodeSample(code: number): number {
  return MULAW_DECODE[code & 0xff]!;
}

export function alawDecodeSample(code: number): number {
  return ALAW_DECODE[code & 0xff]!;
}

/** `sample` is an integer; values outside int16 are clipped. */
export function mulawEncodeSample(sample: number): number {
  return MULAW_ENCODE[(clampInt16(sample) >> 2) & 0x3fff]!;
}

/** `sample` is an integer; values outside int16 are clipped. */
export function alawEncodeSample(sample: number): number {
  return ALAW_ENCODE[(clampInt16(sample) >> 4) & 0x0fff]!;
}

// The array forms write into caller-owned buffers so the hot path allocates nothing. `length` lets a
// caller use the front of a larger scratch buffer without making a subarray view.

function checkLengths(length: number, inputLength: number, outputLength: number): void {
  if (length > inputLength || length > outputLength || length < 0) {
    throw new RangeError(`G.711: cannot convert ${length} samples (input ${inputLength}, output ${outputLength})`);
  }
}

/** Decodes `length` μ-law bytes into `out`; returns the number of samples written. */
export function mulawDecode(bytes: Uint8Array, out: Int16Array, length = bytes.length): number {
  checkLengths(length, bytes.length, out.length);
  for (let i = 0; i < length; i++) out[i] = MULAW_DECODE[bytes[i]!]!;
  return length;
}

/** Decodes `length` A-law bytes into `out`; returns the number of samples written. */
export function alawDecode(bytes: Uint8Array, out: Int16Array, length = bytes.length): number {
  checkLengths(length, bytes.length, out.length);
  for (let i = 0; i < length; i++) out[i] = ALAW_DECODE[bytes[i]!]!;
  return length;
}

/** Encodes `length` samples into μ-law bytes in `out`; returns the number of bytes written. */
export function mulawEncode(pcm: Int16Array, out: Uint8Array, length = pcm.length): number {
  checkLengths(length, pcm.length, out.length);
  for (let i = 0; i < length; i++) out[i] = MULAW_ENCODE[(pcm[i]! >> 2) & 0x3fff]!;
  return length;
}

/** Encodes `length` samples into A-law bytes in `out`; returns the number of bytes written. */
export function alawEncode(pcm: Int16Array, out: Uint8Array, length = pcm.length): number {
  checkLengths(length, pcm.length, out.length);
  for (let i = 0; i < length; i++) out[i] = ALAW_ENCODE[(pcm[i]! >> 4) & 0x0fff]!;
  return length;
}
