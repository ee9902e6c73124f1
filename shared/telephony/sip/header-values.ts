import { SipError, clipForMessage, type SipErrorCode } from './sip-error';

/**
 * The structured header values of SIP (RFC 3261 §19.1, §20, §25.1): URIs, name-addr (From, To, Contact),
 * Via and CSeq. Pure parsers that return a `SipError` instead of throwing.
 */

const err = (code: SipErrorCode, message: string) => new SipError('sip', code, message);

export interface SipUri {
  readonly scheme: 'sip' | 'sips' | 'tel';
  /** The user part (`+15551234567`, `service`), absent for `sip:host`. */
  readonly user?: string;
  readonly host: string;
  readonly port?: number;
  /** URI parameters (`transport=udp`, `lr` → null). */
  readonly params: ReadonlyMap<string, string | null>;
  readonly raw: string;
}

export interface NameAddr {
  readonly displayName?: string;
  readonly uri: SipUri;
  /** Header parameters after the address (`tag`, `expires`, `q`): lower-case names, flag parameters null. */
  readonly params: ReadonlyMap<string, string | null>;
  readonly tag?: string;
  readonly raw: string;
}

export interface Via {
  /** `UDP`, `TCP`, `TLS`, `WS` (upper-case). */
  readonly transport: string;
  readonly host: string;
  readonly port?: number;
  readonly branch?: string;
  readonly received?: string;
  /** RFC 3581: `true` when the client asked (`;rport` flag), the port number once a server filled it. */
  readonly rport?: number | true;
  readonly params: ReadonlyMap<string, string | null>;
  readonly raw: string;
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

// ---- grammar -------------------------------------------------------------------------------

/** RFC 3261 `token` characters (methods, header and parameter names). */
export const SIP_TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;

/** Splits at `separator` outside double quotes and angle brackets (so `"a, b" <sip:x>` stays one element). */
export function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let angle = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i += 1;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') angle += 1;
    else if (ch === '>' && angle > 0) angle -= 1;
    else if (ch === separator && angle === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** `;name=value;flag` parameters; names lower-cased, quoted values unquoted. */
function parseParams(parts: readonly string[]): Map<string, string | null> | string {
  const params = new Map<string, string | null>();
  for (const part of parts) {
    const trimmed = part.trim();
    if (!trimmed) return 'an empty parameter';
    const eq = trimmed.indexOf('=');
    const name = (eq < 0 ? trimmed : trimmed.slice(0, eq)).trim().toLowerCase();
    if (!SIP_TOKEN.test(name)) return `a bad parameter name "${clipForMessage(name)}"`;
    let value = eq < 0 ? null : trimmed.slice(eq + 1).trim();
    if (value !== null && value.startsWith('"')) {
      if (value.length < 2 || !value.endsWith('"')) return `an unterminated quoted value for "${name}"`;
      value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    params.set(name, value);
  }
  return params;
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** `host[:port]`, host an IPv4/name or a bracketed IPv6 reference. */
function parseHostPort(text: string): { host: string; port?: number } | string {
  let host: string;
  let rest: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return `an unterminated IPv6 reference in "${clipForMessage(text)}"`;
    host = text.slice(0, close + 1);
    rest = text.slice(close + 1);
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    rest = colon < 0 ? '' : text.slice(colon);
  }
  if (!host || !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)$/.test(host)) return `a bad host "${clipForMessage(host)}"`;
  if (!rest) return { host };
  if (!rest.startsWith(':')) return `unexpected text after the host in "${clipForMessage(text)}"`;
  const port = parsePort(rest.slice(1));
  if (port === undefined) return `a bad port "${clipForMessage(rest.slice(1))}"`;
  return { host, port };
}

/** A SIP, SIPS or tel URI (RFC 3261 §19.1); `?headers` are kept in `raw` but not interpreted. */
export function parseSipUri(text: string): SipUri | SipError {
  const raw = text.trim();
  const colon = raw.indexOf(':');
  const scheme = colon < 0 ? '' : raw.slice(0, colon).toLowerCase();
  if (scheme !== 'sip' && scheme !== 'sips' && scheme !== 'tel') return err('malformed', `unsupported URI "${clipForMessage(raw)}": expected sip:, sips: or tel:`);
  const afterScheme = raw.slice(colon + 1).split('?')[0]!;
  const [target = '', ...paramParts] = afterScheme.split(';');
  const params = parseParams(paramParts);
  if (typeof params === 'string') return err('malformed', `URI "${clipForMessage(raw)}" has ${params}`);
  if (scheme === 'tel') {
    if (!/^[+0-9\-.()*#A-Da-d]+$/.test(target)) return err('malformed', `bad tel URI number "${clipForMessage(target)}"`);
    return { scheme, user: target, host: '', params, raw };
  }
  const at = target.lastIndexOf('@');
  const user = at < 0 ? undefined : target.slice(0, at);
  if (user !== undefined && !user) return err('malformed', `URI "${clipForMessage(raw)}" has an empty user part`);
  const hostPort = parseHostPort(at < 0 ? target : target.slice(at + 1));
  if (typeof hostPort === 'string') return err('malformed', `URI "${clipForMessage(raw)}" has ${hostPort}`);
  return { scheme, ...(user !== undefined ? { user } : {}), ...hostPort, params, raw };
}

/**
 * `"Display" <uri>;params`, `Display <uri>;params` or a bare `uri;params` (RFC 3261 §20.10: in the bare form the
 * parameters belong to the header, not to the URI).
 */
export function parseNameAddr(text: string): NameAddr | SipError {
  const raw = text.trim();
  let display: string | undefined;
  let uriText: string;
  let rest: string;
  const open = raw.indexOf('<');
  if (open >= 0 || raw.startsWith('"')) {
    let before = open < 0 ? raw : raw.slice(0, open);
    if (raw.startsWith('"')) {
      const quoted = /^"((?:[^"\\]|\\.)*)"\s*/.exec(raw);
      if (!quoted) return err('malformed', `bad quoted display name in "${clipForMessage(raw)}"`);
      before = quoted[0];
      display = quoted[1]!.replace(/\\(.)/g, '$1');
    } else if (before.trim()) display = before.trim();
    const start = before.length;
    if (raw[start] !== '<') return err('malformed', `expected <uri> after the display name in "${clipForMessage(raw)}"`);
    const close = raw.indexOf('>', start);
    if (close < 0) return err('malformed', `unterminated <uri> in "${clipForMessage(raw)}"`);
    uriText = raw.slice(start + 1, close);
    rest = raw.slice(close + 1).trim();
    if (rest && !rest.startsWith(';')) return err('malformed', `unexpected text after <uri> in "${clipForMessage(raw)}"`);
    rest = rest.slice(1);
  } else {
    const semi = raw.indexOf(';');
    uriText = semi < 0 ? raw : raw.slice(0, semi);
    rest = semi < 0 ? '' : raw.slice(semi + 1);
  }
  const uri = parseSipUri(uriText);
  if (uri instanceof SipError) return uri;
  const params = rest ? parseParams(splitOutsideQuotes(rest, ';')) : new Map<string, string | null>();
  if (typeof params === 'string') return err('malformed', `address "${clipForMessage(raw)}" has ${params}`);
  const tag = params.get('tag');
  return { ...(display !== undefined ? { displayName: display } : {}), uri, params, ...(tag ? { tag } : {}), raw };
}

/** One Via value: `SIP/2.0/UDP host[:port];branch=…;rport;received=…`. */
export function parseVia(text: string): Via | SipError {
  const raw = text.trim();
  const match = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(;.*)?$/i.exec(raw);
  if (!match) return err('malformed', `bad Via "${clipForMessage(raw)}": expected SIP/2.0/<transport> <host>[:port][;params]`);
  const hostPort = parseHostPort(match[2]!);
  if (typeof hostPort === 'string') return err('malformed', `Via "${clipForMessage(raw)}" has ${hostPort}`);
  const params = match[3] ? parseParams(splitOutsideQuotes(match[3].slice(1), ';')) : new Map<string, string | null>();
  if (typeof params === 'string') return err('malformed', `Via "${clipForMessage(raw)}" has ${params}`);
  const rportText = params.get('rport');
  let rport: number | true | undefined;
  if (rportText === null) rport = true;
  else if (rportText !== undefined) {
    rport = parsePort(rportText);
    if (rport === undefined) return err('malformed', `Via "${clipForMessage(raw)}" has a bad rport "${clipForMessage(rportText)}"`);
  }
  const branch = params.get('branch');
  const received = params.get('received');
  return {
    transport: match[1]!.toUpperCase(),
    ...hostPort,
    ...(branch ? { branch } : {}),
    ...(received ? { received } : {}),
    ...(rport !== undefined ? { rport } : {}),
    params,
    raw,
  };
}

export function parseCSeq(text: string): CSeq | SipError {
  const match = /^(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)$/.exec(text.trim());
  if (!match) return err('malformed', `bad CSeq "${clipForMessage(text)}": expected <number> <METHOD>`);
  const seq = Number(match[1]);
  // RFC 3261 §8.1.1.5: the sequence number must be below 2**31.
  if (seq >= 2 ** 31) return err('malformed', `CSeq number ${seq} is not below 2^31`);
  return { seq, method: match[2]! };
}
