import { SipError, type SipErrorCode } from './sip-error';

/**
 * RTP fixed header (RFC 3550 §5.1; reference §6.3): decode a received packet into a typed view, and encode a
 * header (and payload) into a buffer the caller owns, so the 50-packets-a-second send path allocates nothing.
 */

const PROTOCOL = 'rtp';
const err = (code: SipErrorCode, message: string) => new SipError(PROTOCOL, code, message);

export const RTP_HEADER_BYTES = 12;
export const RTP_VERSION = 2;

export interface RtpHeader {
  readonly marker: boolean;
  /** 0–127. */
  readonly payloadType: number;
  /** u16, wraps. */
  readonly sequenceNumber: number;
  /** u32, in the payload's clock units. */
  readonly timestamp: number;
  /** u32. */
  readonly ssrc: number;
  /** Up to 15 contributing sources. */
  readonly csrcs?: readonly number[];
  /** A header extension (X bit): profile-defined 16-bit id and data of a multiple of 4 bytes. */
  readonly extension?: { readonly profile: number; readonly data: Uint8Array };
}

export interface RtpPacket extends Required<Omit<RtpHeader, 'extension'>> {
  readonly version: 2;
  readonly padding: boolean;
  readonly extension?: { readonly profile: number; readonly data: Uint8Array };
  /** The payload, padding stripped: a view into the packet (copy it to keep it past the packet's life). */
  readonly payload: Uint8Array;
  /** Bytes before the payload (fixed header, CSRCs, extension). */
  readonly headerBytes: number;
  readonly paddingBytes: number;
}

/** Decodes one RTP packet. Never throws; a packet that fails any RFC 3550 §A.1 validity check is an error. */
export function decodeRtp(packet: Uint8Array): RtpPacket | SipError {
  if (packet.length < RTP_HEADER_BYTES) return err('truncated', `an RTP packet needs at least ${RTP_HEADER_BYTES} bytes; got ${packet.length}`);
  const b0 = packet[0]!;
  const version = b0 >> 6;
  if (version !== RTP_VERSION) return err('unsupported', `RTP version ${version}; only version 2 exists`);
  const padding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  const b1 = packet[1]!;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  let offset = RTP_HEADER_BYTES + csrcCount * 4;
  if (packet.length < offset) return err('truncated', `header announces ${csrcCount} CSRCs (${offset} bytes); packet has ${packet.length}`);
  const csrcs: number[] = [];
  for (let i = 0; i < csrcCount; i += 1) csrcs.push(view.getUint32(RTP_HEADER_BYTES + i * 4));
  let extension: RtpPacket['extension'];
  if (hasExtension) {
    if (packet.length < offset + 4) return err('truncated', `header extension announced but packet ends at ${packet.length} bytes`);
    const profile = view.getUint16(offset);
    const words = view.getUint16(offset + 2);
    const dataStart = offset + 4;
    offset = dataStart + words * 4;
    if (packet.length < offset) return err('truncated', `header extension of ${words} words runs past the packet's ${packet.length} bytes`);
    extension = { profile, data: packet.subarray(dataStart, offset) };
  }
  let paddingBytes = 0;
  if (padding) {
    paddingBytes = packet[packet.length - 1]!;
    if (paddingBytes === 0 || offset + paddingBytes > packet.length) return err('malformed', `padding count ${paddingBytes} is invalid for ${packet.length - offset} bytes after the header`);
  }
  return {
    version: RTP_VERSION,
    padding,
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    csrcs,
    ...(extension ? { extension } : {}),
    payload: packet.subarray(offset, packet.length - paddingBytes),
    headerBytes: offset,
    paddingBytes,
  };
}

const isU32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** Bytes the header of `header` takes (fixed part, CSRCs, extension). */
export function rtpHeaderLength(header: RtpHeader): number {
  return RTP_HEADER_BYTES + (header.csrcs?.length ?? 0) * 4 + (header.extension ? 4 + header.extension.data.length : 0);
}

/**
 * Writes the header into `out` at `offset` and returns the number of bytes written. No padding is ever
 * written (we send whole G.711 frames). Out-of-range fields or a short buffer are an error.
 */
export function encodeRtpHeader(header: RtpHeader, out: Uint8Array, offset = 0): number | SipError {
  if (!Number.isInteger(header.payloadType) || header.payloadType < 0 || header.payloadType > 127) return err('invalid-argument', `payload type ${header.payloadType} is outside 0-127`);
  if (!Number.isInteger(header.sequenceNumber) || header.sequenceNumber < 0 || header.sequenceNumber > 0xffff) return err('invalid-argument', `sequence number ${header.sequenceNumber} is outside 0-65535`);
  if (!isU32(header.timestamp)) return err('invalid-argument', `timestamp ${header.timestamp} is not an unsigned 32-bit integer`);
  if (!isU32(header.ssrc)) return err('invalid-argument', `SSRC ${header.ssrc} is not an unsigned 32-bit integer`);
  const csrcs = header.csrcs ?? [];
  if (csrcs.length > 15) return err('invalid-argument', `${csrcs.length} CSRCs; at most 15 fit the CC field`);
  if (!csrcs.every(isU32)) return err('invalid-argument', 'a CSRC is not an unsigned 32-bit integer');
  const ext = header.extension;
  if (ext && (ext.data.length % 4 !== 0 || ext.data.length > 0xffff * 4 || !Number.isInteger(ext.profile) || ext.profile < 0 || ext.profile > 0xffff)) {
    return err('invalid-argument', `header extension must have a 16-bit profile and data of a multiple of 4 bytes; got ${ext.data.length} bytes`);
  }
  const length = rtpHeaderLength(header);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > out.length) return err('invalid-argument', `the output buffer has ${out.length - offset} bytes at offset ${offset}; the header needs ${length}`);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[offset] = (RTP_VERSION << 6) | (ext ? 0x10 : 0) | csrcs.length;
  out[offset + 1] = (header.marker ? 0x80 : 0) | header.payloadType;
  view.setUint16(offset + 2, header.sequenceNumber);
  view.setUint32(offset + 4, header.timestamp);
  view.setUint32(offset + 8, header.ssrc);
  let at = offset + RTP_HEADER_BYTES;
  for (const csrc of csrcs) {
    view.setUint32(at, csrc);
    at += 4;
  }
  if (ext) {
    view.setUint16(at, ext.profile);
    view.setUint16(at + 2, ext.data.length / 4);
    out.set(ext.data, at + 4);
    at += 4 + ext.data.length;
  }
  return at - offset;
}

/** Header then payload into `out` from offset 0; returns the packet length (send `out.subarray(0, n)`). */
export function encodeRtpPacket(header: RtpHeader, payload: Uint8Array, out: Uint8Array): number | SipError {
  const need = rtpHeaderLength(header) + payload.length;
  if (need > out.length) return err('invalid-argument', `the output buffer has ${out.length} bytes; the packet needs ${need}`);
  const written = encodeRtpHeader(header, out, 0);
  if (written instanceof SipError) return written;
  out.set(payload, written);
  return written + payload.length;
}
