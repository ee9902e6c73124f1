import { describe, expect, it } from 'vitest';
import { base64DecodedLength, base64EncodedLength, decodeBase64, decodeBase64Into, encodeBase64 } from '../../shared/telephony/base64';

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function randomBytes(length: number, seed: number): Uint8Array {
  let state = seed || 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

const hex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes).toString('hex') : 'undefined');

/** The reference: Node's Buffer for values, and a regex of the RFC 4648 grammar (padding optional) for validity. */
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
function referenceDecode(text: string): Uint8Array | undefined {
  return STRICT_BASE64.test(text) ? new Uint8Array(Buffer.from(text, 'base64')) : undefined;
}

describe('base64 for the media hot path', () => {
  it('encodes every length 0..700 exactly like Buffer, and decodes it back', () => {
    for (let length = 0; length <= 700; length++) {
      const bytes = randomBytes(length, length + 7);
      const text = encodeBase64(bytes);
      expect(text).toBe(Buffer.from(bytes).toString('base64'));
      expect(text.length).toBe(base64EncodedLength(length));
      expect(base64DecodedLength(text)).toBe(length);
      expect(hex(decodeBase64(text))).toBe(hex(bytes));
    }
  });

  it('turns a 20 ms μ-law frame (160 bytes) into 216 characters and back', () => {
    const frame = randomBytes(160, 42);
    const text = encodeBase64(frame);
    expect(text).toHaveLength(216);
    const out = new Uint8Array(160);
    expect(decodeBase64Into(text, out)).toBe(160);
    expect(out).toEqual(frame);
  });

  it('encodes views of larger buffers (byteOffset) and keeps working after a large message grew the scratch space', () => {
    const big = randomBytes(100_000, 3);
    expect(encodeBase64(big)).toBe(Buffer.from(big).toString('base64'));
    const view = big.subarray(1001, 1161);
    expect(encodeBase64(view)).toBe(Buffer.from(view).toString('base64'));
    expect(hex(decodeBase64(Buffer.from(big).toString('base64')))).toBe(hex(big));
    expect(encodeBase64(new Uint8Array([0xfb, 0xff]))).toBe('+/8=');
  });

  it('decodes into a caller buffer at an offset, and throws a RangeError only when the buffer is too small', () => {
    const out = new Uint8Array(10).fill(7);
    expect(decodeBase64Into('AQID', out, 4)).toBe(3);
    expect([...out]).toEqual([7, 7, 7, 7, 1, 2, 3, 7, 7, 7]);
    expect(() => decodeBase64Into('AQIDBA==', new Uint8Array(3))).toThrow(RangeError);
  });

  it('accepts missing padding and ignores leftover bits, as atob and Buffer do', () => {
    expect(decodeBase64('AQI')).toEqual(new Uint8Array([1, 2]));
    expect(decodeBase64('AQ')).toEqual(new Uint8Array([1]));
    expect(decodeBase64('AR==')).toEqual(new Uint8Array(Buffer.from('AR==', 'base64')));
    expect(decodeBase64('')).toEqual(new Uint8Array(0));
  });

  it.each([
    ['a lone character', 'A'],
    ['5 characters', 'AAAAA'],
    ['padding in the middle', 'AA==AAAA'],
    ['padding in a group', 'AB=C'],
    ['three padding characters', 'A==='],
    ['only padding', '===='],
    ['padding after a full group', 'AAAA='],
    ['padding ending an incomplete group', 'z++00A='],
    ['a space', 'AB CD'],
    ['a newline', 'AAAA\nAAAA'],
    ['URL-safe alphabet', 'ab-_'],
    ['non-ASCII', 'AAé='],
    ['an astral character', 'AA😀'],
    ['a NUL', 'AA\u0000A'],
  ])('rejects %s', (_name, text) => {
    expect(decodeBase64(text)).toBeUndefined();
    expect(decodeBase64Into(text, new Uint8Array(64))).toBe(-1);
  });

  it('agrees with the reference on validity and value for 20 000 random strings over a hostile alphabet', () => {
    const alphabet = 'AZaz09+/=-_ \né';
    let state = 99;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    for (let i = 0; i < 20_000; i++) {
      let text = '';
      const length = next() % 13;
      for (let j = 0; j < length; j++) text += alphabet[next() % alphabet.length];
      expect(decodeBase64(text), JSON.stringify(text)).toEqual(referenceDecode(text));
    }
  });
});
