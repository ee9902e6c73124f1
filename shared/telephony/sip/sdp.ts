import { SipError, clipForMessage, type SipErrorCode } from './sip-error';

/**
 * SDP (RFC 4566) offer parsing and RFC 3264 answer building for one G.711 audio stream plus RFC 4733
 * telephone-event (reference §6.2). Pure: text in, a typed description or answer out.
 */

const PROTOCOL = 'sdp';
const err = (code: SipErrorCode, message: string) => new SipError(PROTOCOL, code, message);

/** A real offer is well under 2 KiB; this bounds the work of a hostile one. */
export const SDP_MAX_BYTES = 16 * 1024;
export const SDP_MAX_MEDIA = 16;

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpConnection {
  readonly addrType: 'IP4' | 'IP6';
  readonly address: string;
}

export interface SdpRtpMap {
  readonly encoding: string;
  readonly clockRateHz: number;
  readonly channels?: number;
}

export interface SdpMedia {
  readonly media: string;
  /** 0 means the offerer rejected or disabled this stream. */
  readonly port: number;
  readonly proto: string;
  /** Payload types / formats in the offerer's preference order. */
  readonly formats: readonly string[];
  readonly connection?: SdpConnection;
  readonly rtpmap: ReadonlyMap<number, SdpRtpMap>;
  readonly fmtp: ReadonlyMap<number, string>;
  readonly ptimeMs?: number;
  readonly direction?: SdpDirection;
  /** Every `a=` line of the stream, name and value (null for a flag). */
  readonly attributes: readonly { readonly name: string; readonly value: string | null }[];
}

export interface SessionDescription {
  readonly origin: { readonly username: string; readonly sessionId: string; readonly sessionVersion: string; readonly addrType: 'IP4' | 'IP6'; readonly address: string };
  readonly sessionName: string;
  readonly connection?: SdpConnection;
  readonly direction?: SdpDirection;
  readonly media: readonly SdpMedia[];
}

const DIRECTIONS = new Set<string>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

interface MutableMedia {
  media: string; port: number; proto: string; formats: string[]; connection?: SdpConnection;
  rtpmap: Map<number, SdpRtpMap>; fmtp: Map<number, string>; ptimeMs?: number; direction?: SdpDirection;
  attributes: { name: string; value: string | null }[];
}

function parseConnection(value: string): SdpConnection | SipError {
  const match = /^IN (IP4|IP6) (\S+)$/.exec(value);
  if (!match) return err('malformed', `bad c= line "${clipForMessage(value)}": expected IN IP4|IP6 <address>`);
  // A multicast TTL suffix (`/127`) never appears in unicast telephony; keep only the address.
  const address = match[2]!.split('/')[0]!;
  return { addrType: match[1] as 'IP4' | 'IP6', address };
}

/** Parses an SDP body. Never throws. */
export function parseSdp(input: string | Uint8Array): SessionDescription | SipError {
  const text = typeof input === 'string' ? input : new TextDecoder().decode(input);
  if (text.length > SDP_MAX_BYTES) return err('too-large', `SDP of ${text.length} characters exceeds ${SDP_MAX_BYTES}`);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l !== '');
  if (lines[0] !== 'v=0') return err('malformed', `SDP must start with "v=0"; got "${clipForMessage(lines[0] ?? '')}"`);
  let origin: SessionDescription['origin'] | undefined;
  let sessionName: string | undefined;
  let connection: SdpConnection | undefined;
  let direction: SdpDirection | undefined;
  let sawTiming = false;
  const media: MutableMedia[] = [];
  for (const line of lines.slice(1)) {
    if (line.length < 2 || line[1] !== '=' || !/[a-z]/.test(line[0]!)) return err('malformed', `bad SDP line "${clipForMessage(line)}": expected <letter>=<value>`);
    const type = line[0]!;
    const value = line.slice(2);
    const current = media[media.length - 1];
    switch (type) {
      case 'o': {
        const match = /^(\S+) (\d+) (\d+) IN (IP4|IP6) (\S+)$/.exec(value);
        if (!match) return err('malformed', `bad o= line "${clipForMessage(value)}": expected <user> <sess-id> <sess-version> IN IP4 <address>`);
        origin = { username: match[1]!, sessionId: match[2]!, sessionVersion: match[3]!, addrType: match[4] as 'IP4' | 'IP6', address: match[5]! };
        break;
      }
      case 's':
        sessionName = value;
        break;
      case 't':
        if (!/^\d+ \d+$/.test(value)) return err('malformed', `bad t= line "${clipForMessage(value)}"`);
        sawTiming = true;
        break;
      case 'c': {
        const parsed = parseConnection(value);
        if (parsed instanceof SipError) return parsed;
        if (current) current.connection = parsed;
        else connection = parsed;
        break;
      }
      case 'm': {
        if (media.length >= SDP_MAX_MEDIA) return err('too-large', `more than ${SDP_MAX_MEDIA} m= lines`);
        const match = /^(\S+) (\d{1,5})(?:\/\d+)? (\S+)((?: \S+)*)$/.exec(value);
        if (!match || Number(match[2]) > 65535) return err('malformed', `bad m= line "${clipForMessage(value)}": expected <media> <port> <proto> <formats>`);
        media.push({ media: match[1]!, port: Number(match[2]), proto: match[3]!, formats: match[4]!.trim().split(' ').filter(Boolean), rtpmap: new Map(), fmtp: new Map(), attributes: [] });
        break;
      }
      case 'a': {
        const colon = value.indexOf(':');
        const name = colon < 0 ? value : value.slice(0, colon);
        const attrValue = colon < 0 ? null : value.slice(colon + 1);
        if (DIRECTIONS.has(name) && attrValue === null) {
          if (current) current.direction = name as SdpDirection;
          else direction = name as SdpDirection;
        }
        if (!current) break;
        current.attributes.push({ name, value: attrValue });
        if (name === 'rtpmap' && attrValue !== null) {
          const match = /^(\d{1,3}) ([^/\s]+)\/(\d+)(?:\/(\d+))?$/.exec(attrValue.trim());
          if (!match || Number(match[1]) > 127) return err('malformed', `bad a=rtpmap "${clipForMessage(attrValue)}": expected <pt> <encoding>/<clock>[/<channels>]`);
          current.rtpmap.set(Number(match[1]), { encoding: match[2]!, clockRateHz: Number(match[3]), ...(match[4] ? { channels: Number(match[4]) } : {}) });
        } else if (name === 'fmtp' && attrValue !== null) {
          const match = /^(\d{1,3}) (.*)$/.exec(attrValue.trim());
          if (!match) return err('malformed', `bad a=fmtp "${clipForMessage(attrValue)}": expected <pt> <parameters>`);
          current.fmtp.set(Number(match[1]), match[2]!.trim());
        } else if (name === 'ptime' && attrValue !== null) {
          if (!/^\d{1,4}(\.\d+)?$/.test(attrValue.trim())) return err('malformed', `bad a=ptime "${clipForMessage(attrValue)}"`);
          current.ptimeMs = Number(attrValue.trim());
        }
        break;
      }
      default:
        // b=, i=, u=, e=, p=, k=, r=, z=: legal and irrelevant to an audio answer.
        break;
    }
  }
  if (!origin) return err('missing', 'SDP has no o= line');
  if (sessionName === undefined) return err('missing', 'SDP has no s= line');
  if (!sawTiming) return err('missing', 'SDP has no t= line');
  return { origin, sessionName, ...(connection ? { connection } : {}), ...(direction ? { direction } : {}), media };
}

// ---- answering -------------------------------------------------------------------------------------------

export type G711Codec = 'PCMU' | 'PCMA';
const STATIC_PT: Readonly<Record<G711Codec, number>> = { PCMU: 0, PCMA: 8 };

export interface LocalMedia {
  /** Our public media address (`SIP_PUBLIC_IP`), written in o= and c=. */
  readonly address: string;
  readonly rtpPort: number;
  /** Fixed for the dialog (RFC 3264 §8: o= sess-id never changes). */
  readonly sessionId: string;
  /** Incremented by the caller for every changed SDP in the dialog. */
  readonly sessionVersion: string | number;
  readonly username?: string;
  /** Codecs we accept, best first; default both, in the offerer's order. */
  readonly codecs?: readonly G711Codec[];
}

export interface SdpAnswer {
  readonly type: 'answer';
  readonly sdp: string;
  readonly codec: G711Codec;
  readonly payloadType: number;
  /** The offerer's telephone-event payload type when it offered one at 8000 Hz. */
  readonly telephoneEventPayloadType?: number;
  /** Where the offerer receives RTP (before any symmetric-RTP latching). */
  readonly remote: { readonly address: string; readonly port: number };
  /** The offer's direction for our audio stream. */
  readonly offeredDirection: SdpDirection;
  readonly answerDirection: SdpDirection;
  /** The offerer put us on hold: a=sendonly / a=inactive, or the legacy c=0.0.0.0. */
  readonly onHold: boolean;
  readonly ptimeMs: 20;
}

/** The offer has no stream we can take: the caller answers 488 Not Acceptable Here. */
export interface SdpNoCommonCodec {
  readonly type: 'noCommonCodec';
  readonly reason: string;
}

const ANSWER_DIRECTION: Readonly<Record<SdpDirection, SdpDirection>> = { sendrecv: 'sendrecv', sendonly: 'recvonly', recvonly: 'sendonly', inactive: 'inactive' };

function codecOf(media: SdpMedia, pt: number): G711Codec | undefined {
  const map = media.rtpmap.get(pt);
  if (!map) return pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : undefined;
  const name = map.encoding.toUpperCase();
  if ((name === 'PCMU' || name === 'PCMA') && map.clockRateHz === 8000 && (map.channels ?? 1) === 1) return name;
  return undefined;
}

/**
 * Builds the answer to `offer`: the first usable audio stream gets one G.711 codec (offerer's preference
 * among ours) plus telephone-event when offered, with the offerer's payload type numbers; every other
 * m= line is rejected with port 0, keeping the count and order (RFC 3264 §6).
 */
export function answerSdp(offer: SessionDescription, local: LocalMedia): SdpAnswer | SdpNoCommonCodec | SipError {
  if (!Number.isInteger(local.rtpPort) || local.rtpPort < 1 || local.rtpPort > 65535) return err('invalid-argument', `bad local RTP port ${local.rtpPort}`);
  const allowed = local.codecs ?? ['PCMU', 'PCMA'];
  let chosen: { index: number; codec: G711Codec; pt: number; te?: number } | undefined;
  const reasons: string[] = [];
  offer.media.forEach((media, index) => {
    if (chosen) return;
    if (media.media !== 'audio') return;
    if (media.port === 0) return void reasons.push(`stream ${index} is disabled (port 0)`);
    if (media.proto !== 'RTP/AVP') return void reasons.push(`stream ${index} uses ${clipForMessage(media.proto)}, not RTP/AVP`);
    const candidates: { codec: G711Codec; pt: number }[] = [];
    for (const format of media.formats) {
      if (!/^\d{1,3}$/.test(format)) continue;
      const codec = codecOf(media, Number(format));
      if (codec && allowed.includes(codec)) candidates.push({ codec, pt: Number(format) });
    }
    if (local.codecs) candidates.sort((a, b) => allowed.indexOf(a.codec) - allowed.indexOf(b.codec));
    const pick = candidates[0];
    if (!pick) return void reasons.push(`stream ${index} offers none of ${allowed.join('/')} at 8000 Hz (formats ${clipForMessage(media.formats.join(' '))})`);
    const te = media.formats.map(Number).find((pt) => {
      const map = media.rtpmap.get(pt);
      return map !== undefined && map.encoding.toLowerCase() === 'telephone-event' && map.clockRateHz === 8000;
    });
    chosen = { index, ...pick, ...(te !== undefined ? { te } : {}) };
  });
  if (!chosen) return { type: 'noCommonCodec', reason: reasons.length ? reasons.join('; ') : 'the offer has no audio stream' };

  const media = offer.media[chosen.index]!;
  const connection = media.connection ?? offer.connection;
  if (!connection) return err('missing', `audio stream ${chosen.index} has no c= line and the session has none`);
  const offeredDirection = media.direction ?? offer.direction ?? 'sendrecv';
  const heldByAddress = connection.address === '0.0.0.0' || connection.address === '::';
  const onHold = offeredDirection === 'sendonly' || offeredDirection === 'inactive' || heldByAddress;
  const answerDirection = ANSWER_DIRECTION[offeredDirection];

  const lines = sessionLines(local);
  offer.media.forEach((m, index) => {
    if (index !== chosen!.index) {
      // Rejected stream: port 0 and at least one of the offered formats (RFC 3264 §6).
      lines.push(`m=${m.media} 0 ${m.proto} ${m.formats[0] ?? '0'}`);
      return;
    }
    const formats = [chosen!.pt, ...(chosen!.te !== undefined ? [chosen!.te] : [])];
    lines.push(`m=audio ${local.rtpPort} RTP/AVP ${formats.join(' ')}`);
    lines.push(`a=rtpmap:${chosen!.pt} ${chosen!.codec}/8000`);
    if (chosen!.te !== undefined) {
      lines.push(`a=rtpmap:${chosen!.te} telephone-event/8000`);
      lines.push(`a=fmtp:${chosen!.te} ${media.fmtp.get(chosen!.te) ?? '0-16'}`);
    }
    lines.push('a=ptime:20', `a=${answerDirection}`);
  });
  return {
    type: 'answer',
    sdp: `${lines.join('\r\n')}\r\n`,
    codec: chosen.codec,
    payloadType: chosen.pt,
    ...(chosen.te !== undefined ? { telephoneEventPayloadType: chosen.te } : {}),
    remote: { address: connection.address, port: media.port },
    offeredDirection,
    answerDirection,
    onHold,
    ptimeMs: 20,
  };
}

/** The static payload type of a G.711 codec (0 PCMU, 8 PCMA). */
export function staticPayloadType(codec: G711Codec): number {
  return STATIC_PT[codec];
}

/**
 * Our offer for an outbound call: one audio stream with our G.711 codecs (best first) and telephone-event
 * 101, ptime 20, sendrecv. The far end's answer is read with `answerSdp(parseSdp(answer), local)`, which
 * picks the codec it kept and where it receives RTP.
 */
export function offerSdp(local: LocalMedia, telephoneEventPayloadType = 101): string {
  const codecs = local.codecs ?? (['PCMU', 'PCMA'] as const);
  const pts = codecs.map((c) => STATIC_PT[c]);
  const lines = [
    ...sessionLines(local),
    `m=audio ${local.rtpPort} RTP/AVP ${[...pts, telephoneEventPayloadType].join(' ')}`,
    ...codecs.map((c) => `a=rtpmap:${STATIC_PT[c]} ${c}/8000`),
    `a=rtpmap:${telephoneEventPayloadType} telephone-event/8000`,
    `a=fmtp:${telephoneEventPayloadType} 0-16`,
    'a=ptime:20',
    'a=sendrecv',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** The session part of our SDP: v=, o= (our session id and version), s=, c= (our media address), t=. */
function sessionLines(local: LocalMedia): string[] {
  const ipType = local.address.includes(':') ? 'IP6' : 'IP4';
  return ['v=0', `o=${local.username ?? '-'} ${local.sessionId} ${local.sessionVersion} IN ${ipType} ${local.address}`, 's=-', `c=IN ${ipType} ${local.address}`, 't=0 0'];
}
