import { describe, expect, it } from 'vitest';
import { RTP_HEADER_BYTES, decodeRtp, encodeRtpHeader, encodeRtpPacket, type RtpPacket } from '../../../shared/telephony/sip/rtp';
import { SipError } from '../../../shared/telephony/sip/sip-error';

/** Header bytes written by hand from RFC 3550 §5.1 / reference §6.3. */
const PLAIN = [0x80, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0xa0, 0xde, 0xad, 0xbe, 0xef];

const decoded = (bytes: Uint8Array) => {
  const packet = decodeRtp(bytes);
  expect(packet).not.toBeInstanceOf(SipError);
  return packet as RtpPacket;
};

describe('RTP decoding (RFC 3550 §5.1)', () => {
  it('reads a plain PCMU packet: 0x80, PT 0, sequence, timestamp, SSRC, 160-byte payload', () => {
    const bytes = Uint8Array.from([...PLAIN, ...new Array(160).fill(0xff)]);
    const packet = decoded(bytes);
    expect(packet).toMatchObject({ version: 2, padding: false, marker: false, payloadType: 0, sequenceNumber: 0x1234, timestamp: 160, ssrc: 0xdeadbeef, csrcs: [], headerBytes: 12, paddingBytes: 0 });
    expect(packet.payload.length).toBe(160);
    expect(packet.payload.buffer).toBe(bytes.buffer);
  });

  it('reads marker, PCMA, CSRCs, a header extension and strips padding', () => {
    const bytes = Uint8Array.from([
      0xb2, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, // V=2 P=1 X=1 CC=2; M=1 PT=8
      0, 0, 0, 7, 0, 0, 0, 9, // CSRCs
      0xbe, 0xde, 0, 1, 1, 2, 3, 4, // extension: profile 0xBEDE, 1 word
      0xaa, 0xbb, // payload
      0, 0, 3, // padding of 3 (count in the last byte)
    ]);
    const packet = decoded(bytes);
    expect(packet).toMatchObject({ padding: true, marker: true, payloadType: 8, sequenceNumber: 65535, timestamp: 0xffffffff, ssrc: 1, csrcs: [7, 9], headerBytes: 28, paddingBytes: 3 });
    expect(packet.extension!.profile).toBe(0xbede);
    expect(Array.from(packet.extension!.data)).toEqual([1, 2, 3, 4]);
    expect(Array.from(packet.payload)).toEqual([0xaa, 0xbb]);
  });

  it.each([
    ['short packet', [0x80, 0, 0], 'truncated'],
    ['version 1', [0x40, ...PLAIN.slice(1)], 'unsupported'],
    ['version 0 (e.g. STUN)', [0x00, ...PLAIN.slice(1)], 'unsupported'],
    ['CSRC count past the end', [0x83, ...PLAIN.slice(1), 0, 0, 0, 1], 'truncated'],
    ['extension header missing', [0x90, ...PLAIN.slice(1), 0xbe], 'truncated'],
    ['extension length past the end', [0x90, ...PLAIN.slice(1), 0xbe, 0xde, 0, 2, 1, 2, 3, 4], 'truncated'],
    ['padding count 0', [0xa0, ...PLAIN.slice(1), 1, 0], 'malformed'],
    ['padding longer than the packet', [0xa0, ...PLAIN.slice(1), 1, 9], 'malformed'],
  ])('rejects %s', (_name, bytes, code) => {
    const result = decodeRtp(Uint8Array.from(bytes as number[]));
    expect(result).toBeInstanceOf(SipError);
    expect((result as SipError).code).toBe(code);
  });

  it('never throws on random bytes (fixed seed)', () => {
    let state = 99;
    const next = () => (state = (Math.imul(state, 22695477) + 1) >>> 0);
    let valid = 0;
    for (let round = 0; round < 5000; round += 1) {
      const bytes = new Uint8Array(next() % 64);
      for (let i = 0; i < bytes.length; i += 1) bytes[i] = next() >>> 24;
      if (!(decodeRtp(bytes) instanceof SipError)) valid += 1;
    }
    expect(valid).toBeGreaterThan(0);
  });
});

describe('RTP encoding into a caller-owned buffer', () => {
  it('writes exactly the hand-made header and round-trips', () => {
    const out = new Uint8Array(RTP_HEADER_BYTES);
    expect(encodeRtpHeader({ marker: false, payloadType: 0, sequenceNumber: 0x1234, timestamp: 160, ssrc: 0xdeadbeef }, out)).toBe(12);
    expect(Array.from(out)).toEqual(PLAIN);
  });

  it('writes marker, CSRCs and an extension at an offset, and a full packet that decodes back', () => {
    const out = new Uint8Array(64).fill(0x55);
    const header = { marker: true, payloadType: 101, sequenceNumber: 65535, timestamp: 0xffffffff, ssrc: 42, csrcs: [1, 2], extension: { profile: 0xbede, data: Uint8Array.from([9, 9, 9, 9]) } };
    expect(encodeRtpHeader(header, out, 4)).toBe(12 + 8 + 8);
    expect(out[3]).toBe(0x55);
    expect(out[4]).toBe(0x92);
    expect(out[5]).toBe(0x80 | 101);
    const packetBuffer = new Uint8Array(200);
    const payload = new Uint8Array(160).fill(0xd5);
    const length = encodeRtpPacket(header, payload, packetBuffer);
    expect(length).toBe(28 + 160);
    const back = decoded(packetBuffer.subarray(0, length as number));
    expect(back).toMatchObject({ marker: true, payloadType: 101, sequenceNumber: 65535, timestamp: 0xffffffff, ssrc: 42, csrcs: [1, 2] });
    expect(back.payload).toEqual(payload);
  });

  it('a 20 ms stream: sequence +1 and timestamp +160 per packet, wrapping, reusing one buffer', () => {
    const out = new Uint8Array(172);
    const payload = new Uint8Array(160);
    let seq = 65534;
    let ts = 0xffffff60;
    const seen: [number, number][] = [];
    for (let i = 0; i < 4; i += 1) {
      const n = encodeRtpPacket({ marker: i === 0, payloadType: 0, sequenceNumber: seq, timestamp: ts, ssrc: 7 }, payload, out);
      const p = decoded(out.subarray(0, n as number));
      seen.push([p.sequenceNumber, p.timestamp]);
      seq = (seq + 1) & 0xffff;
      ts = (ts + 160) >>> 0;
    }
    expect(seen).toEqual([[65534, 0xffffff60], [65535, 0], [0, 160], [1, 320]]);
  });

  it.each([
    ['payload type 128', { payloadType: 128 }],
    ['negative sequence', { sequenceNumber: -1 }],
    ['sequence 65536', { sequenceNumber: 65536 }],
    ['timestamp 2^32', { timestamp: 2 ** 32 }],
    ['fractional SSRC', { ssrc: 1.5 }],
    ['16 CSRCs', { csrcs: new Array(16).fill(1) }],
    ['extension of 3 bytes', { extension: { profile: 1, data: new Uint8Array(3) } }],
  ])('rejects %s', (_name, override) => {
    const header = { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 1, ssrc: 1, ...override };
    expect(encodeRtpHeader(header, new Uint8Array(128))).toMatchObject({ code: 'invalid-argument' });
  });

  it('rejects a buffer too small for the header or the packet', () => {
    const header = { marker: false, payloadType: 0, sequenceNumber: 1, timestamp: 1, ssrc: 1 };
    expect(encodeRtpHeader(header, new Uint8Array(11))).toMatchObject({ code: 'invalid-argument' });
    expect(encodeRtpHeader(header, new Uint8Array(12), 1)).toMatchObject({ code: 'invalid-argument' });
    expect(encodeRtpPacket(header, new Uint8Array(160), new Uint8Array(171))).toMatchObject({ code: 'invalid-argument' });
  });
});
