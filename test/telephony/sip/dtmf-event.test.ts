import { describe, expect, it } from 'vitest';
import { createDtmfDeduplicator, decodeTelephoneEvent, digitForEvent, encodeTelephoneEvent, eventForDigit, type TelephoneEvent } from '../../../shared/telephony/sip/dtmf-event';
import { SipError } from '../../../shared/telephony/sip/sip-error';

const event = (bytes: number[]) => {
  const decoded = decodeTelephoneEvent(Uint8Array.from(bytes));
  expect(decoded).not.toBeInstanceOf(SipError);
  return decoded as TelephoneEvent;
};

describe('RFC 4733 telephone-event payload (reference §6.4)', () => {
  it('decodes event, end bit, volume and duration from the 4-byte block', () => {
    expect(event([5, 0x0a, 0x00, 0xa0])).toEqual({ event: 5, digit: '5', end: false, volume: 10, durationUnits: 160 });
    expect(event([11, 0x8a, 0x03, 0x20])).toEqual({ event: 11, digit: '#', end: true, volume: 10, durationUnits: 800 });
    // The reserved R bit is ignored; flash (16) has no digit.
    expect(event([16, 0x40 | 63, 0xff, 0xff])).toEqual({ event: 16, end: false, volume: 63, durationUnits: 65535 });
  });

  it('maps events 0-15 to 0-9 * # A-D and back', () => {
    expect(Array.from({ length: 16 }, (_, i) => digitForEvent(i)).join('')).toBe('0123456789*#ABCD');
    expect(digitForEvent(16)).toBeUndefined();
    expect(eventForDigit('*')).toBe(10);
    expect(eventForDigit('d')).toBe(15);
    expect(eventForDigit('x')).toBeUndefined();
    expect(eventForDigit('12')).toBeUndefined();
  });

  it('rejects a payload shorter than 4 bytes', () => {
    expect(decodeTelephoneEvent(Uint8Array.from([1, 2, 3]))).toMatchObject({ type: 'protocolError', code: 'truncated' });
    expect(decodeTelephoneEvent(new Uint8Array(0))).toMatchObject({ code: 'truncated' });
  });

  it('encodes into a caller buffer and round-trips', () => {
    const out = new Uint8Array(6);
    expect(encodeTelephoneEvent({ event: 10, end: true, volume: 10, durationUnits: 1280 }, out, 2)).toBe(4);
    expect(Array.from(out)).toEqual([0, 0, 10, 0x8a, 0x05, 0x00]);
    expect(event(Array.from(out.subarray(2)))).toEqual({ event: 10, digit: '*', end: true, volume: 10, durationUnits: 1280 });
  });

  it.each([
    ['event 256', { event: 256, end: false, volume: 0, durationUnits: 0 }],
    ['volume 64', { event: 1, end: false, volume: 64, durationUnits: 0 }],
    ['duration 65536', { event: 1, end: false, volume: 0, durationUnits: 65536 }],
    ['negative duration', { event: 1, end: false, volume: 0, durationUnits: -1 }],
  ])('refuses to encode %s', (_name, value) => {
    expect(encodeTelephoneEvent(value, new Uint8Array(4))).toMatchObject({ code: 'invalid-argument' });
  });

  it('refuses a buffer without 4 bytes at the offset', () => {
    expect(encodeTelephoneEvent({ event: 1, end: false, volume: 0, durationUnits: 0 }, new Uint8Array(4), 1)).toMatchObject({ code: 'invalid-argument' });
  });
});

describe('DTMF de-duplication: one digit per event from the end packets sent three times', () => {
  /** One key press as a sender emits it: growing durations on one timestamp, then three end packets. */
  const press = (digit: number, timestamp: number, ssrc = 1) => [
    ...[160, 320, 480].map((d) => ({ ssrc, timestamp, event: { event: digit, digit: digitForEvent(digit), end: false, volume: 10, durationUnits: d } as TelephoneEvent })),
    ...[0, 1, 2].map(() => ({ ssrc, timestamp, event: { event: digit, digit: digitForEvent(digit), end: true, volume: 10, durationUnits: 640 } as TelephoneEvent })),
  ];

  it('reports each digit once, on its first end packet, including the same digit twice in a row', () => {
    const dedupe = createDtmfDeduplicator();
    const packets = [...press(1, 1000), ...press(1, 3000), ...press(11, 5000)];
    const reported = packets.map((p) => dedupe.accept(p));
    expect(reported.filter((d) => d !== undefined)).toEqual(['1', '1', '#']);
    expect(reported.indexOf('1')).toBe(3);
  });

  it('keys by SSRC too, ignores non-digit events, and forgets old events within its bound', () => {
    const dedupe = createDtmfDeduplicator(2);
    expect(dedupe.accept(press(2, 1000, 1)[3]!)).toBe('2');
    expect(dedupe.accept(press(2, 1000, 2)[3]!)).toBe('2');
    expect(dedupe.accept({ ssrc: 1, timestamp: 9, event: { event: 16, end: true, volume: 0, durationUnits: 1 } })).toBeUndefined();
    expect(dedupe.accept(press(3, 2000, 1)[3]!)).toBe('3');
    // Capacity 2: the first key has been evicted, so a (very) late repeat would be reported again.
    expect(dedupe.accept(press(2, 1000, 1)[3]!)).toBe('2');
    expect(dedupe.accept(press(3, 2000, 1)[4]!)).toBeUndefined();
  });
});
