/**
 * The message framing of Azure Speech's WebSocket protocol (reference/providers.md §1.5, §2.5; reverse-engineered
 * from the SDKs, [3P]), as pure functions. No I/O, no protocol state.
 *
 * - Text frame: `Name: value\r\n` header lines, an empty line (`\r\n`), then the body (JSON or SSML).
 * - Binary frame: a 2-byte big-endian length of the header block, the ASCII header block (same lines), then
 *   the payload (audio).
 * Every message carries `Path` (what it is: `speech.config`, `audio`, `turn.start`, ...), and the SDKs add
 * `X-RequestId` (32 hex digits, no dashes; one per turn), `X-Timestamp` and `Content-Type`.
 *
 * Decoding returns an `AzureFramingError` for bad input instead of throwing: one garbled frame must not end a
 * call. Header names are matched case-insensitively and the `Path` is lower-cased (`speech.startDetected` and
 * `speech.startdetected` are both seen), tolerant of `Name:value` without the space.
 */

export type AzureHeaderList = readonly (readonly [name: string, value: string])[];

export interface AzureMessage {
  readonly kind: 'text' | 'binary';
  /** The `Path` header, lower-cased. */
  readonly path: string;
  /** The `X-RequestId` header, when present. */
  readonly requestId: string | undefined;
  /** Every header, names lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
  /** Text frames: the body after the empty line. Binary frames: a view of the payload (copy to keep it). */
  readonly body: string | Uint8Array;
}

export class AzureFramingError {
  readonly name = 'AzureFramingError';
  constructor(readonly message: string) {}
}

const CRLF = '\r\n';
const SEPARATOR = '\r\n\r\n';
const MAX_BINARY_HEADER_BYTES = 0xffff;
/** RFC 7230 token characters: what a header name may hold. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerBlock(headers: AzureHeaderList): string {
  let block = '';
  for (const [name, value] of headers) {
    if (!HEADER_NAME.test(name)) throw new RangeError(`invalid Azure header name "${name}"`);
    if (/[\r\n]/.test(value)) throw new RangeError(`the value of Azure header ${name} holds a line break`);
    block += `${name}: ${value}${CRLF}`;
  }
  return block;
}

/** A text message: header lines, an empty line, the body. */
export function encodeTextMessage(headers: AzureHeaderList, body: string): string {
  return `${headerBlock(headers)}${CRLF}${body}`;
}

/** A binary message: 2-byte big-endian header length, ASCII header lines, the payload (copied in). */
export function encodeBinaryMessage(headers: AzureHeaderList, payload: Uint8Array): Uint8Array {
  const block = headerBlock(headers);
  const length = block.length;
  if (length > MAX_BINARY_HEADER_BYTES) throw new RangeError(`Azure binary headers of ${length} bytes exceed 65535`);
  const out = new Uint8Array(2 + length + payload.byteLength);
  out[0] = length >> 8;
  out[1] = length & 0xff;
  for (let i = 0; i < length; i++) {
    const code = block.charCodeAt(i);
    if (code > 0x7e) throw new RangeError('Azure binary headers must be ASCII');
    out[2 + i] = code;
  }
  out.set(payload, 2 + length);
  return out;
}

function parseHeaders(block: string): Record<string, string> | AzureFramingError {
  const headers: Record<string, string> = {};
  for (const line of block.split(CRLF)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return new AzureFramingError(`a header line without "name:": ${JSON.stringify(line.slice(0, 60))}`);
    const name = line.slice(0, colon).trim();
    if (!HEADER_NAME.test(name)) return new AzureFramingError(`an invalid header name: ${JSON.stringify(name.slice(0, 60))}`);
    headers[name.toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

function message(kind: AzureMessage['kind'], headers: Record<string, string>, body: string | Uint8Array): AzureMessage | AzureFramingError {
  const path = headers.path;
  if (!path) return new AzureFramingError(`a ${kind} message without a Path header`);
  return { kind, path: path.toLowerCase(), requestId: headers['x-requestid'] || undefined, headers, body };
}

/** One WebSocket frame (text as string, binary as bytes) → the message, or what is wrong with it. */
export function decodeMessage(data: string | Uint8Array): AzureMessage | AzureFramingError {
  if (typeof data === 'string') {
    const at = data.indexOf(SEPARATOR);
    // Headers without a body may end at the blank line itself ("...\r\n\r\n") or, leniently, at the frame's end.
    const split = at >= 0 ? at : data.endsWith(CRLF) && /^[^\r\n]+:/.test(data) ? data.length - 2 : -1;
    if (split < 0) return new AzureFramingError(`a text frame without the blank line that ends its headers: ${JSON.stringify(data.slice(0, 60))}`);
    const headers = parseHeaders(data.slice(0, split));
    if (headers instanceof AzureFramingError) return headers;
    return message('text', headers, data.slice(Math.min(data.length, split + SEPARATOR.length)));
  }
  if (data.byteLength < 2) return new AzureFramingError(`a binary frame of ${data.byteLength} bytes has no header length`);
  const length = (data[0]! << 8) | data[1]!;
  if (2 + length > data.byteLength) return new AzureFramingError(`a binary frame claims ${length} header bytes but holds ${data.byteLength - 2}`);
  let block = '';
  for (let i = 2; i < 2 + length; i++) {
    const code = data[i]!;
    if (code > 0x7e || (code < 0x20 && code !== 0x0d && code !== 0x0a && code !== 0x09)) return new AzureFramingError('a binary frame whose headers are not ASCII text');
    block += String.fromCharCode(code);
  }
  const headers = parseHeaders(block);
  if (headers instanceof AzureFramingError) return headers;
  return message('binary', headers, data.subarray(2 + length));
}

/** A request id as the SDKs make them: a random UUID's 32 hex digits, no dashes, upper case. */
export function newRequestId(): string {
  return crypto.randomUUID().replace(/-/g, '').toUpperCase();
}

/** `X-Timestamp`: ISO 8601 with milliseconds, UTC. */
export function azureTimestamp(date: Date = new Date()): string {
  return date.toISOString();
}
