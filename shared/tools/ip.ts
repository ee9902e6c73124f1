/**
 * IP addresses: parse IPv4/IPv6 text, match CIDR ranges (the http tool's SSRF guard, carrier and SIP trunk
 * allow-lists), and say whether an address is one an assistant's outbound request must not reach (loopback,
 * private, link-local, CGNAT, metadata, multicast, reserved). Pure (no DNS): resolution is injected by the
 * runtime that has it.
 */

/** An address as 4 (IPv4) or 16 (IPv6) bytes. */
export type IpBytes = Uint8Array;

export function parseIPv4(text: string): IpBytes | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(input: string): IpBytes | undefined {
  let text = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (!text.includes(':')) return undefined;
  let tail: IpBytes | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = parseIPv4(text.slice(lastColon + 1));
    if (!tail) return undefined;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

export function parseIp(text: string): IpBytes | undefined {
  return parseIPv4(text) ?? parseIPv6(text);
}

export interface Cidr {
  readonly bytes: IpBytes;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [address, bits, extra] = text.trim().split('/');
  if (extra !== undefined || !address) return undefined;
  const bytes = parseIp(address);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  if (bits !== undefined && !/^[0-9]{1,3}$/.test(bits)) return undefined;
  const prefix = bits === undefined ? max : Number(bits);
  return prefix <= max ? { bytes, prefix } : undefined;
}

export function inCidr(address: IpBytes, range: Cidr): boolean {
  if (address.length !== range.bytes.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i]! & mask) !== (range.bytes[i]! & mask)) return false;
  }
  return true;
}

const cidr = (text: string): Cidr => parseCidr(text)!;

/** Why each range is refused; the first match names the reason in the error the model gets. */
const BLOCKED_V4: readonly [Cidr, string][] = [
  [cidr('0.0.0.0/8'), 'an unspecified ("this network") address'],
  [cidr('10.0.0.0/8'), 'a private address'],
  [cidr('100.64.0.0/10'), 'a carrier-grade NAT address'],
  [cidr('127.0.0.0/8'), 'a loopback address'],
  [cidr('169.254.0.0/16'), 'a link-local (cloud metadata) address'],
  [cidr('172.16.0.0/12'), 'a private address'],
  [cidr('192.0.0.0/24'), 'an IETF protocol address'],
  [cidr('192.0.2.0/24'), 'a documentation (TEST-NET-1) address'],
  [cidr('192.168.0.0/16'), 'a private address'],
  [cidr('198.18.0.0/15'), 'a benchmarking address'],
  [cidr('198.51.100.0/24'), 'a documentation (TEST-NET-2) address'],
  [cidr('203.0.113.0/24'), 'a documentation (TEST-NET-3) address'],
  [cidr('224.0.0.0/4'), 'a multicast address'],
  [cidr('240.0.0.0/4'), 'a reserved address'],
];
const BLOCKED_V6: readonly [Cidr, string][] = [
  [cidr('::/128'), 'the unspecified address'],
  [cidr('::1/128'), 'a loopback address'],
  [cidr('::ffff:0:0:0/96'), 'an IPv4-translated (SIIT) address'],
  [cidr('64:ff9b:1::/48'), 'a local-use NAT64 address'],
  [cidr('100::/64'), 'a discard-only address'],
  [cidr('2001::/32'), 'a Teredo tunnel address'],
  [cidr('fc00::/7'), 'a private (unique local) address'],
  [cidr('fe80::/10'), 'a link-local address'],
  [cidr('fec0::/10'), 'a site-local address'],
  [cidr('ff00::/8'), 'a multicast address'],
];
/** IPv6 forms that carry an IPv4 address, judged by that address. */
const EMBEDDED_V4: readonly [Cidr, number][] = [
  [cidr('::ffff:0:0/96'), 12], // IPv4-mapped
  [cidr('::/96'), 12], // IPv4-compatible (deprecated)
  [cidr('64:ff9b::/96'), 12], // NAT64
  [cidr('2002::/16'), 2], // 6to4
];

/** Undefined when the address may be reached, else why not ("a loopback address"). */
export function blockedReason(address: IpBytes): string | undefined {
  if (address.length === 4) return BLOCKED_V4.find(([range]) => inCidr(address, range))?.[1];
  const own = BLOCKED_V6.find(([range]) => inCidr(address, range))?.[1];
  if (own) return own;
  for (const [range, offset] of EMBEDDED_V4) {
    if (inCidr(address, range)) return blockedReason(address.subarray(offset, offset + 4));
  }
  return undefined;
}

/** Canonical text (RFC 5952 for IPv6: lower case, the longest run of two or more zero groups as `::`). */
export function formatIp(address: IpBytes): string {
  if (address.length === 4) return address.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i]! << 8) | address[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero group stays "0"
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * Whether a peer's address falls in one of `cidrs` (allow-lists of carriers and SIP trunks). An IPv4-mapped
 * IPv6 peer (`::ffff:a.b.c.d`, a dual-stack socket) is matched as IPv4; IPv4 never matches an IPv6 range.
 */
export function ipAllowed(address: string | undefined, cidrs: readonly string[]): boolean {
  let ip = address === undefined ? undefined : parseIp(address.trim());
  if (!ip) return false;
  if (ip.length === 16 && ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff) ip = ip.subarray(12);
  const match = ip;
  return cidrs.some((text) => {
    const range = parseCidr(text);
    return range !== undefined && inCidr(match, range);
  });
}
