/**
 * Standard base64 (RFC 4648 §4, `+/`, `=` padding) for the media hot path: every carrier message carries
 * 20 ms of audio as base64 (160 μ-law bytes ↔ 216 characters), 50 times a second per call, both ways.
 * Web APIs only (no Buffer), table driven, and allocation-aware:
 * - encoding writes the characters into one reused scratch buffer, two characters per table lookup, and turns
 *   them into a string with one native `TextDecoder` call: the string is the only allocation;
 * - decoding copies the characters into a reused scratch buffer with one native `TextEncoder.encodeInto` call
 *   and writes the bytes straight into a caller-provided `Uint8Array` (`decodeBase64Into`), or into one
 *   exactly-sized new array (`decodeBase64`).
 *
 * Decoding is strict about the alphabet (no whitespace, no URL-safe `-_`, `=` only as final padding) and
 * lenient in two ways common decoders are: missing padding is accepted, and non-zero bits left over in the
 * last character are ignored (as `atob` and Node's Buffer do).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 0x3d; // '='
const INVALID = 0xff;

/** Character code of each 6-bit value. */
const ENCODE = new Uint8Array(64);
/** 6-bit value of each byte of (ASCII) input, INVALID for anything outside the alphabet. */
const DECODE = new Uint8Array(256).fill(INVALID);
for (let i = 0; i < 64; i++) {
  ENCODE[i] = ALPHABET.charCodeAt(i);
  DECODE[ALPHABET.charCodeAt(i)] = i;
}

/** Both characters of each 12-bit value as one 16-bit word, in the host's byte order (written via Uint16Array). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const ENCODE_PAIR = new Uint16Array(4096);
for (let i = 0; i < 4096; i++) {
  const first = ENCODE[i >> 6]!;
  const second = ENCODE[i & 63]!;
  ENCODE_PAIR[i] = LITTLE_ENDIAN ? first | (second << 8) : (first << 8) | second;
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** Scratch space shared by all calls (JavaScript runs one call at a time); grows to the largest message seen. */
let scratch = new Uint8Array(1024);
let scratchPairs = new Uint16Array(scratch.buffer);

function scratchOfAtLeast(byteLength: number): Uint8Array {
  if (scratch.length < byteLength) {
    scratch = new Uint8Array((Math.max(byteLength, scratch.length * 2) + 1) & ~1); // even, for the 16-bit view
    scratchPairs = new Uint16Array(scratch.buffer);
  }
  return scratch;
}

/** Characters needed to encode `byteLength` bytes (with padding). */
export function base64EncodedLength(byteLength: number): number {
  return Math.ceil(byteLength / 3) * 4;
}

/** Encodes `bytes` as standard, padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  const length = bytes.length;
  if (length === 0) return '';
  const out = scratchOfAtLeast(base64EncodedLength(length));
  const pairs = scratchPairs;
  const whole = length - (length % 3);
  let pair = 0;
  for (let i = 0; i < whole; i += 3) {
    const group = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    pairs[pair++] = ENCODE_PAIR[group >>> 12]!;
    pairs[pair++] = ENCODE_PAIR[group & 0xfff]!;
  }
  let at = pair * 2;
  const rest = length - whole;
  if (rest === 1) {
    const group = bytes[whole]! << 16;
    out[at++] = ENCODE[group >>> 18]!;
    out[at++] = ENCODE[(group >>> 12) & 63]!;
    out[at++] = PAD;
    out[at++] = PAD;
  } else if (rest === 2) {
    const group = (bytes[whole]! << 16) | (bytes[whole + 1]! << 8);
    out[at++] = ENCODE[group >>> 18]!;
    out[at++] = ENCODE[(group >>> 12) & 63]!;
    out[at++] = ENCODE[(group >>> 6) & 63]!;
    out[at++] = PAD;
  }
  return textDecoder.decode(out.subarray(0, at));
}

/**
 * Bytes that `text` decodes to, from its length and padding alone (the characters are not checked), or -1
 * when no valid base64 has that shape (length 4n+1, or padding that is not at the very end).
 */
export function base64DecodedLength(text: string): number {
  let length = text.length;
  if (length % 4 === 0 && length > 0 && text.charCodeAt(length - 1) === PAD) {
    length--;
    if (text.charCodeAt(length - 1) === PAD) length--;
  }
  const rest = length % 4;
  if (rest === 1) return -1;
  return (length >> 2) * 3 + (rest === 0 ? 0 : rest - 1);
}

/**
 * Decodes `text` into `out` starting at `offset`; returns the number of bytes written, or -1 when `text` is
 * not valid base64 (then `out` may hold partial garbage). Throws a RangeError only for a caller bug: `out`
 * too small for what the text decodes to (size it with `base64DecodedLength`).
 */
export function decodeBase64Into(text: string, out: Uint8Array, offset = 0): number {
  const byteLength = base64DecodedLength(text);
  if (byteLength < 0) return -1;
  if (out.length - offset < byteLength) {
    throw new RangeError(`decodeBase64Into: ${byteLength} bytes do not fit into ${out.length - offset} bytes at offset ${offset}`);
  }
  const chars = scratchOfAtLeast(text.length);
  // Non-ASCII characters become bytes >= 0x80 (invalid below) and, being longer in UTF-8, stop the copy early.
  const { read, written } = textEncoder.encodeInto(text, chars);
  if (read !== text.length || written !== text.length) return -1;
  let length = written;
  // Padding only completes a final group of four; any other '=' is an invalid character below.
  if (length % 4 === 0 && length > 0 && chars[length - 1] === PAD) {
    length--;
    if (chars[length - 1] === PAD) length--;
  }
  const whole = length - (length % 4);
  let at = offset;
  for (let i = 0; i < whole; i += 4) {
    const a = DECODE[chars[i]!]!;
    const b = DECODE[chars[i + 1]!]!;
    const c = DECODE[chars[i + 2]!]!;
    const d = DECODE[chars[i + 3]!]!;
    if (((a | b | c | d) & 0x80) !== 0) return -1; // INVALID has the top bit set, alphabet values never
    out[at++] = (a << 2) | (b >> 4);
    out[at++] = ((b & 15) << 4) | (c >> 2);
    out[at++] = ((c & 3) << 6) | d;
  }
  const rest = length - whole;
  if (rest >= 2) {
    const a = DECODE[chars[whole]!]!;
    const b = DECODE[chars[whole + 1]!]!;
    const c = rest === 3 ? DECODE[chars[whole + 2]!]! : 0;
    if (((a | b | c) & 0x80) !== 0) return -1;
    out[at++] = (a << 2) | (b >> 4);
    if (rest === 3) out[at++] = ((b & 15) << 4) | (c >> 2);
  }
  return at - offset;
}

/** Decodes `text` into a new, exactly-sized array; undefined when it is not valid base64. */
export function decodeBase64(text: string): Uint8Array | undefined {
  const byteLength = base64DecodedLength(text);
  if (byteLength < 0) return undefined;
  const out = new Uint8Array(byteLength);
  return decodeBase64Into(text, out) < 0 ? undefined : out;
}
