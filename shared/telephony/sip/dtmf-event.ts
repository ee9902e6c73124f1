import { SipError, type SipErrorCode } from './sip-error';

/**
 * RFC 4733 telephone-event payloads (reference §6.4): the 4-byte event block after the RTP header, and a
 * de-duplicator that turns the stream of repeated packets of one key press into one digit.
 */

const PROTOCOL = 'rfc4733';
const err = (code: SipErrorCode, message: string) => new SipError(PROTOCOL, code, message);

export const TELEPHONE_EVENT_BYTES = 4;
/** Events 0–15 are the DTMF digits in this order; 16 is flash. */
const DIGITS = '0123456789*#ABCD';

export interface TelephoneEvent {
  /** 0–255. */
  readonly event: number;
  /** The DTMF digit of events 0–15 (`0`–`9`, `*`, `#`, `A`–`D`). */
  readonly digit?: string;
  /** The E bit: this packet ends the event (sent three times). */
  readonly end: boolean;
  /** 0–63, the power level in -dBm0. */
  readonly volume: number;
  /** Clock units (8 kHz: 160 per 20 ms) since the event's RTP timestamp. */
  readonly durationUnits: number;
}

export function digitForEvent(event: number): string | undefined {
  return Number.isInteger(event) && event >= 0 && event < DIGITS.length ? DIGITS[event] : undefined;
}

/** The event code of a DTMF digit (case-insensitive for A–D); undefined for anything else. */
export function eventForDigit(digit: string): number | undefined {
  if (digit.length !== 1) return undefined;
  const index = DIGITS.indexOf(digit.toUpperCase());
  return index < 0 ? undefined : index;
}

/**
 * Decodes the first event block of a payload. RFC 4733 §2.5.1.2 allows redundant blocks after it; the first
 * one is the current event, so the rest is ignored. Never throws.
 */
export function decodeTelephoneEvent(payload: Uint8Array): TelephoneEvent | SipError {
  if (payload.length < TELEPHONE_EVENT_BYTES) return err('truncated', `a telephone-event payload needs ${TELEPHONE_EVENT_BYTES} bytes; got ${payload.length}`);
  const event = payload[0]!;
  const flags = payload[1]!;
  const digit = digitForEvent(event);
  return {
    event,
    ...(digit !== undefined ? { digit } : {}),
    end: (flags & 0x80) !== 0,
    // The R bit (0x40) is reserved: senders set 0, receivers ignore it (RFC 4733 §2.3).
    volume: flags & 0x3f,
    durationUnits: (payload[2]! << 8) | payload[3]!,
  };
}

/** Writes one event block into `out` at `offset` (4 bytes). Out-of-range fields are an error. */
export function encodeTelephoneEvent(
  value: { readonly event: number; readonly end: boolean; readonly volume: number; readonly durationUnits: number },
  out: Uint8Array,
  offset = 0,
): number | SipError {
  if (!Number.isInteger(value.event) || value.event < 0 || value.event > 255) return err('invalid-argument', `event ${value.event} is outside 0-255`);
  if (!Number.isInteger(value.volume) || value.volume < 0 || value.volume > 63) return err('invalid-argument', `volume ${value.volume} is outside 0-63`);
  if (!Number.isInteger(value.durationUnits) || value.durationUnits < 0 || value.durationUnits > 0xffff) return err('invalid-argument', `duration ${value.durationUnits} is outside 0-65535`);
  if (!Number.isInteger(offset) || offset < 0 || offset + TELEPHONE_EVENT_BYTES > out.length) return err('invalid-argument', `the output buffer has no ${TELEPHONE_EVENT_BYTES} bytes at offset ${offset}`);
  out[offset] = value.event;
  out[offset + 1] = (value.end ? 0x80 : 0) | value.volume;
  out[offset + 2] = value.durationUnits >> 8;
  out[offset + 3] = value.durationUnits & 0xff;
  return TELEPHONE_EVENT_BYTES;
}

export interface DtmfDeduplicator {
  /**
   * Feed every decoded telephone-event packet; returns the digit the first time an end packet of an event
   * (SSRC, RTP timestamp, event) arrives, undefined for start/continuation packets and for the repeats.
   */
  accept(packet: { readonly ssrc: number; readonly timestamp: number; readonly event: TelephoneEvent }): string | undefined;
}

/**
 * Remembers the last `capacity` reported events (bounded memory: an old event's repeats arrive within
 * milliseconds, so a small window suffices). Non-digit events (flash, tones) are never reported.
 */
export function createDtmfDeduplicator(capacity = 16): DtmfDeduplicator {
  const seen: string[] = [];
  return {
    accept({ ssrc, timestamp, event }) {
      if (!event.end || event.digit === undefined) return undefined;
      const key = `${ssrc >>> 0}:${timestamp >>> 0}:${event.event}`;
      if (seen.includes(key)) return undefined;
      seen.push(key);
      if (seen.length > Math.max(1, capacity)) seen.shift();
      return event.digit;
    },
  };
}
