/**
 * Bad input to the SIP-family codecs (SIP messages, SDP, RTP, RFC 4733 events, digest headers), returned,
 * never thrown: a malformed datagram from the internet costs a counter and a log line, not a dropped call.
 * `type: 'protocolError'` keeps it structurally a `CarrierProtocolError`, like the other carrier codecs' errors.
 */
export type SipErrorCode =
  /** The input is larger than the codec accepts (datagram, header count, SDP size). */
  | 'too-large'
  /** The input ends before a complete element (a short RTP header, a body shorter than Content-Length). */
  | 'truncated'
  /** A start line, header, SDP line or field that does not follow its grammar. */
  | 'malformed'
  /** A header or SDP line the standard makes mandatory is absent. */
  | 'missing'
  /** A well-formed value we do not support (RTP version, digest algorithm, qop). */
  | 'unsupported'
  /** A value to encode is out of range, or the output buffer is too small. */
  | 'invalid-argument';

export class SipError {
  readonly type = 'protocolError' as const;
  constructor(
    /** `sip`, `sdp`, `rtp`, `rfc4733` or `sip-digest`. */
    readonly protocol: string,
    readonly code: SipErrorCode,
    readonly message: string,
  ) {}

  toString(): string {
    return `${this.protocol} ${this.code}: ${this.message}`;
  }
}

export function isSipError(value: unknown): value is SipError {
  return value instanceof SipError;
}

/** Values from the wire go into messages: an attacker-sized one is cut short and stays printable. */
export function clipForMessage(text: string, max = 40): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > max ? `${printable.slice(0, max)}…` : printable;
}
