import { SIP_TOKEN, parseCSeq, parseNameAddr, parseSipUri, parseVia, splitOutsideQuotes, type CSeq, type NameAddr, type SipUri, type Via } from './header-values';
import { SipError, clipForMessage, type SipErrorCode } from './sip-error';

export { parseCSeq, parseNameAddr, parseSipUri, parseVia, splitOutsideQuotes, type CSeq, type NameAddr, type SipUri, type Via };

/**
 * SIP message codec (RFC 3261 §7, §20; reference §6.1), pure: bytes of one datagram in, a typed request or
 * response out (or a `SipError`), and a response built from a request back to bytes. No sockets, no timers.
 */

const PROTOCOL = 'sip';
const err = (code: SipErrorCode, message: string) => new SipError(PROTOCOL, code, message);

/** A UDP datagram carries at most 65 535 bytes; anything above 64 KiB is not one we could have received whole. */
export const SIP_MAX_MESSAGE_BYTES = 64 * 1024;
/** Far more than any real request carries (sipp's INVITE has 10); bounds the work a hostile datagram causes. */
export const SIP_MAX_HEADERS = 100;

/** RFC 3261 §7.3.3 compact forms, and the spelling we write for each full name. */
const COMPACT: Readonly<Record<string, string>> = {
  v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type', k: 'supported',
  s: 'subject', e: 'content-encoding', o: 'event', r: 'refer-to', b: 'referred-by', u: 'allow-events', x: 'session-expires',
};
const CANONICAL: Readonly<Record<string, string>> = {
  'via': 'Via', 'from': 'From', 'to': 'To', 'call-id': 'Call-ID', 'cseq': 'CSeq', 'contact': 'Contact',
  'content-length': 'Content-Length', 'content-type': 'Content-Type', 'supported': 'Supported', 'subject': 'Subject',
  'max-forwards': 'Max-Forwards', 'record-route': 'Record-Route', 'route': 'Route', 'www-authenticate': 'WWW-Authenticate',
  'proxy-authenticate': 'Proxy-Authenticate', 'authorization': 'Authorization', 'proxy-authorization': 'Proxy-Authorization',
  'user-agent': 'User-Agent', 'server': 'Server', 'allow': 'Allow', 'require': 'Require', 'content-encoding': 'Content-Encoding',
  'event': 'Event', 'refer-to': 'Refer-To', 'referred-by': 'Referred-By', 'allow-events': 'Allow-Events',
  'session-expires': 'Session-Expires', 'expires': 'Expires', 'accept': 'Accept', 'unsupported': 'Unsupported',
};
/**
 * Headers whose grammar is a comma-separated list (`1#element`), so `Via: a, b` means two Vias. Headers whose
 * values contain commas of their own (Date, the authentication headers) are never split.
 */
const LIST_HEADERS = new Set([
  'via', 'contact', 'route', 'record-route', 'allow', 'supported', 'require', 'proxy-require', 'unsupported',
  'accept', 'accept-encoding', 'accept-language', 'content-encoding', 'allow-events', 'in-reply-to',
]);

/** The lower-case full name of a header name as written (compact forms expanded). */
export function headerKey(name: string): string {
  const lower = name.trim().toLowerCase();
  return COMPACT[lower] ?? lower;
}

function displayName(key: string, asWritten: string): string {
  return CANONICAL[key] ?? asWritten;
}

export interface SipHeader {
  /** Full name as we write it (`Via`, `Call-ID`); an unknown header keeps its spelling. */
  readonly name: string;
  readonly value: string;
}

interface SipMessageBase {
  /** Every header in order, list headers split one value per entry, folded lines joined. */
  readonly headers: readonly SipHeader[];
  /** Exactly Content-Length bytes (or the rest of the datagram when UDP had none). */
  readonly body: Uint8Array;
  readonly via: readonly Via[];
  readonly from: NameAddr;
  readonly to: NameAddr;
  readonly callId: string;
  readonly cseq: CSeq;
  readonly contact: readonly NameAddr[];
  readonly maxForwards?: number;
}

export interface SipRequest extends SipMessageBase {
  readonly kind: 'request';
  readonly method: string;
  readonly requestUri: SipUri;
}

export interface SipResponse extends SipMessageBase {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
}

export type SipMessage = SipRequest | SipResponse;

/** All values of a header, in order (list headers one element each). Names are case-insensitive, compact forms allowed. */
export function getHeaders(message: { readonly headers: readonly SipHeader[] }, name: string): string[] {
  const key = headerKey(name);
  return message.headers.filter((header) => headerKey(header.name) === key).map((header) => header.value);
}

/** The first value of a header, undefined when absent. */
export function getHeader(message: { readonly headers: readonly SipHeader[] }, name: string): string | undefined {
  const key = headerKey(name);
  return message.headers.find((header) => headerKey(header.name) === key)?.value;
}

// ---- parsing a datagram ----------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/** The offset where the header section ends (after the blank line) and where it ends before it. */
function findHeaderEnd(bytes: Uint8Array): { headEnd: number; bodyStart: number } | undefined {
  for (let i = 0; i < bytes.length - 1; i += 1) {
    if (bytes[i] !== 0x0a) continue;
    // A blank line: LF LF, or LF CR LF (lenient to bare-LF senders, as RFC 3261 §7.5 asks of receivers).
    if (bytes[i + 1] === 0x0a) return { headEnd: i, bodyStart: i + 2 };
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { headEnd: i, bodyStart: i + 3 };
  }
  return undefined;
}

export interface ParseSipOptions {
  /** `udp` (default): a missing Content-Length means the rest of the datagram. `stream`: it is mandatory (§18.3). */
  readonly transport?: 'udp' | 'stream';
}

/** Parses one SIP message (one UDP datagram, or one message already cut from a stream). Never throws. */
export function parseSipMessage(input: Uint8Array | string, options: ParseSipOptions = {}): SipMessage | SipError {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  if (bytes.length > SIP_MAX_MESSAGE_BYTES) return err('too-large', `message of ${bytes.length} bytes exceeds the ${SIP_MAX_MESSAGE_BYTES}-byte limit`);
  // RFC 3261 §7.5: leading CRLFs (keep-alives) before the start line are ignored.
  let start = 0;
  while (start < bytes.length && (bytes[start] === 0x0d || bytes[start] === 0x0a)) start += 1;
  if (start === bytes.length) return err('truncated', 'empty message (only line breaks)');
  const view = bytes.subarray(start);
  const end = findHeaderEnd(view);
  const isStream = options.transport === 'stream';
  if (!end && isStream) return err('truncated', 'no blank line ends the header section');
  const headText = utf8.decode(end ? view.subarray(0, end.headEnd) : view);
  const lines = headText.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  const startLine = lines.shift() ?? '';

  const rawHeaders: SipHeader[] = [];
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // Header folding (RFC 3261 §7.3.1): a continuation line joins the previous value with one space.
      const previous = rawHeaders.pop();
      if (!previous) return err('malformed', 'a continuation line before any header');
      rawHeaders.push({ name: previous.name, value: `${previous.value} ${line.trim()}` });
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    if (!SIP_TOKEN.test(name)) return err('malformed', `bad header line "${clipForMessage(line)}": expected <name>: <value>`);
    rawHeaders.push({ name, value: line.slice(colon + 1).trim() });
    if (rawHeaders.length > SIP_MAX_HEADERS) return err('too-large', `more than ${SIP_MAX_HEADERS} headers`);
  }

  const headers: SipHeader[] = [];
  for (const header of rawHeaders) {
    const key = headerKey(header.name);
    const name = displayName(key, header.name);
    const values = LIST_HEADERS.has(key) && !(key === 'contact' && header.value === '*') ? splitOutsideQuotes(header.value, ',') : [header.value];
    for (const value of values) {
      if (LIST_HEADERS.has(key) && !value.trim()) return err('malformed', `empty element in ${name} "${clipForMessage(header.value)}"`);
      headers.push({ name, value: value.trim() });
    }
    if (headers.length > SIP_MAX_HEADERS) return err('too-large', `more than ${SIP_MAX_HEADERS} header values`);
  }

  // Body: Content-Length bytes after the blank line.
  const available = end ? view.subarray(end.bodyStart) : new Uint8Array(0);
  const lengthValues = getHeaders({ headers }, 'content-length');
  let body = available;
  if (lengthValues.length > 1 && new Set(lengthValues).size > 1) return err('malformed', `conflicting Content-Length values ${lengthValues.map((v) => `"${clipForMessage(v, 12)}"`).join(', ')}`);
  const lengthText = lengthValues[0];
  if (lengthText === undefined) {
    if (isStream) return err('missing', 'Content-Length is mandatory on a stream transport');
  } else {
    if (!/^\d{1,10}$/.test(lengthText)) return err('malformed', `bad Content-Length "${clipForMessage(lengthText)}"`);
    const length = Number(lengthText);
    if (length > available.length) return err('truncated', `Content-Length ${length} exceeds the ${available.length} body bytes received`);
    body = available.subarray(0, length);
  }

  const common = parseCommonHeaders(headers);
  if (common instanceof SipError) return common;

  if (startLine.startsWith('SIP/')) {
    const match = /^SIP\/2\.0 ([1-6]\d\d)(?: (.*))?$/.exec(startLine);
    if (!match) return err('malformed', `bad status line "${clipForMessage(startLine)}": expected SIP/2.0 <3-digit code> <reason>`);
    return { kind: 'response', status: Number(match[1]), reason: match[2] ?? '', headers, body, ...common };
  }
  const match = /^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP\/2\.0$/.exec(startLine);
  if (!match) return err('malformed', `bad request line "${clipForMessage(startLine)}": expected <METHOD> <Request-URI> SIP/2.0`);
  const method = match[1]!;
  const requestUri = parseSipUri(match[2]!);
  if (requestUri instanceof SipError) return err('malformed', `Request-URI: ${requestUri.message}`);
  // RFC 3261 §8.2 / §12.2.2: the CSeq method must match the request method (ACK and CANCEL carry their own).
  if (common.cseq.method !== method) return err('malformed', `CSeq method "${clipForMessage(common.cseq.method)}" does not match request method "${clipForMessage(method)}"`);
  return { kind: 'request', method, requestUri, headers, body, ...common };
}

function parseCommonHeaders(headers: readonly SipHeader[]): Omit<SipMessageBase, 'headers' | 'body'> | SipError {
  const one = (name: string): string | SipError => {
    const values = getHeaders({ headers }, name);
    if (values.length === 0) return err('missing', `mandatory header ${displayName(name, name)} is missing`);
    // Two different values of a single-valued header make the message ambiguous (RFC 3261 §20: 400).
    if (new Set(values).size > 1) return err('malformed', `header ${displayName(name, name)} appears ${values.length} times with different values`);
    return values[0]!;
  };
  const viaValues = getHeaders({ headers }, 'via');
  if (viaValues.length === 0) return err('missing', 'mandatory header Via is missing');
  const via: Via[] = [];
  for (const value of viaValues) {
    const parsed = parseVia(value);
    if (parsed instanceof SipError) return parsed;
    via.push(parsed);
  }
  const fromText = one('from');
  if (fromText instanceof SipError) return fromText;
  const from = parseNameAddr(fromText);
  if (from instanceof SipError) return err('malformed', `From: ${from.message}`);
  const toText = one('to');
  if (toText instanceof SipError) return toText;
  const to = parseNameAddr(toText);
  if (to instanceof SipError) return err('malformed', `To: ${to.message}`);
  const callId = one('call-id');
  if (callId instanceof SipError) return callId;
  if (!callId || /\s/.test(callId)) return err('malformed', `bad Call-ID "${clipForMessage(callId)}"`);
  const cseqText = one('cseq');
  if (cseqText instanceof SipError) return cseqText;
  const cseq = parseCSeq(cseqText);
  if (cseq instanceof SipError) return cseq;
  const contact: NameAddr[] = [];
  for (const value of getHeaders({ headers }, 'contact')) {
    if (value === '*') continue;
    const parsed = parseNameAddr(value);
    if (parsed instanceof SipError) return err('malformed', `Contact: ${parsed.message}`);
    contact.push(parsed);
  }
  const maxForwardsText = getHeader({ headers }, 'max-forwards');
  let maxForwards: number | undefined;
  if (maxForwardsText !== undefined) {
    if (!/^\d{1,3}$/.test(maxForwardsText) || Number(maxForwardsText) > 255) return err('malformed', `bad Max-Forwards "${clipForMessage(maxForwardsText)}": expected 0-255`);
    maxForwards = Number(maxForwardsText);
  }
  return { via, from, to, callId, cseq, contact, ...(maxForwards !== undefined ? { maxForwards } : {}) };
}

// ---- building and serializing ----------------------------------------------------------------------------

/** What `serializeSipMessage` needs: a start line's parts, headers and a body. Content-Length is always recomputed. */
export type OutgoingSipMessage =
  | { readonly kind: 'request'; readonly method: string; readonly requestUri: string | SipUri; readonly headers: readonly SipHeader[]; readonly body?: Uint8Array | string }
  | { readonly kind: 'response'; readonly status: number; readonly reason: string; readonly headers: readonly SipHeader[]; readonly body?: Uint8Array | string };

/** Bytes of a message: CRLF line ends, headers in order, a Content-Length matching the body (any given one is replaced). */
export function serializeSipMessage(message: OutgoingSipMessage | SipMessage): Uint8Array {
  const body = message.body === undefined ? new Uint8Array(0) : typeof message.body === 'string' ? encoder.encode(message.body) : message.body;
  const startLine = message.kind === 'request'
    ? `${message.method} ${typeof message.requestUri === 'string' ? message.requestUri : message.requestUri.raw} SIP/2.0`
    : `SIP/2.0 ${message.status} ${message.reason}`;
  const lines = [startLine];
  for (const header of message.headers) {
    if (headerKey(header.name) === 'content-length') continue;
    lines.push(`${header.name}: ${header.value}`);
  }
  lines.push(`Content-Length: ${body.length}`, '', '');
  const head = encoder.encode(lines.join('\r\n'));
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

export interface BuildResponseOptions {
  /** Our dialog tag, added to To unless the request's To already has one (in-dialog requests keep theirs). */
  readonly toTag?: string;
  /** Where the request came from: fills the top Via's `received` and `rport` (RFC 3261 §18.2.1, RFC 3581). */
  readonly source?: { readonly address: string; readonly port: number };
}

/**
 * A response to `request` (RFC 3261 §8.2.6): all Vias in order, From, Call-ID and CSeq verbatim, To with our tag,
 * Record-Route copied into 18x/2xx of a dialog-creating request, then `extraHeaders`, then the body.
 */
export function buildResponse(
  request: SipRequest,
  status: number,
  reason: string,
  extraHeaders: readonly SipHeader[] = [],
  body?: Uint8Array | string,
  options: BuildResponseOptions = {},
): OutgoingSipMessage {
  const headers: SipHeader[] = [];
  request.via.forEach((via, index) => {
    headers.push({ name: 'Via', value: index === 0 && options.source ? stampVia(via, options.source) : via.raw });
  });
  headers.push({ name: 'From', value: request.from.raw });
  const toValue = request.to.tag || !options.toTag ? request.to.raw : `${request.to.raw};tag=${options.toTag}`;
  headers.push({ name: 'To', value: toValue });
  headers.push({ name: 'Call-ID', value: request.callId });
  headers.push({ name: 'CSeq', value: `${request.cseq.seq} ${request.cseq.method}` });
  if (status > 100 && status < 300 && (request.method === 'INVITE' || request.method === 'SUBSCRIBE')) {
    for (const value of getHeaders(request, 'record-route')) headers.push({ name: 'Record-Route', value });
  }
  headers.push(...extraHeaders);
  return { kind: 'response', status, reason, headers, ...(body !== undefined ? { body } : {}) };
}

/** The top Via as a response carries it back: `received` when the source differs from sent-by, `rport` filled. */
function stampVia(via: Via, source: { readonly address: string; readonly port: number }): string {
  const [head = via.raw, ...params] = splitOutsideQuotes(via.raw, ';');
  const kept = params.map((p) => p.trim()).filter((p) => {
    const name = p.split('=')[0]!.trim().toLowerCase();
    return name !== 'received' && name !== 'rport';
  });
  if (via.rport !== undefined) kept.push(`rport=${source.port}`);
  const bareHost = via.host.replace(/^\[|\]$/g, '');
  if (via.rport !== undefined || bareHost !== source.address) kept.push(`received=${source.address}`);
  return [head.trim(), ...kept].join(';');
}

/** Decodes a body as UTF-8 text (SDP, sipfrag, dtmf-relay). */
export function bodyText(message: { readonly body: Uint8Array }): string {
  return utf8.decode(message.body);
}

