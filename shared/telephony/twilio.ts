import { z } from 'zod';
import { MULAW_8K } from '../audio/format';
import { base64DecodedLength, decodeBase64Into, encodeBase64 } from './base64';
import type { CarrierCodec, CarrierEvent } from './carrier';
import { ProtocolError, clipForLog, protocolErrorsFor } from './protocol-error';

/**
 * Twilio Media Streams (bidirectional, `<Connect><Stream>`), as a pure codec: JSON text frames in, typed
 * events out, and back (telephony reference §1.3, §1.4). Nothing here throws on bad input: a malformed frame
 * decodes to a `ProtocolError` value. Both directions are here, so the simulator and the conformance tests
 * can play Twilio with the same code the media node uses to talk to it.
 */

const PROTOCOL = 'twilio-media-streams';
const { error: protocolError, invalid } = protocolErrorsFor(PROTOCOL);
const clip = clipForLog;

export type TwilioTrack = 'inbound' | 'outbound';

export interface TwilioMediaFormat {
  /** Always `audio/x-mulaw` in practice. */
  readonly encoding: string;
  readonly sampleRateHz: number;
  readonly channels: number;
}

/** The fixed Media Streams format: μ-law, 8 kHz, mono. */
export const TWILIO_MEDIA_FORMAT: TwilioMediaFormat = Object.freeze({ encoding: 'audio/x-mulaw', sampleRateHz: 8000, channels: 1 });

// ---- Twilio → server --------------------------------------------------------------------------------------

/** Always the first frame; carries no streamSid. */
export interface TwilioConnected {
  readonly type: 'connected';
  readonly protocol: string;
  readonly version: string;
}

export interface TwilioStart {
  readonly type: 'start';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly callSid: string;
  readonly accountSid: string;
  readonly tracks: readonly TwilioTrack[];
  readonly mediaFormat: TwilioMediaFormat;
  /** The `<Parameter name value>` children of the TwiML `<Stream>`. */
  readonly customParameters: Readonly<Record<string, string>>;
}

export interface TwilioMedia {
  readonly type: 'media';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly track: TwilioTrack;
  /** Starts at 1, +1 per media message of this track. */
  readonly chunk: number;
  /** Presentation time: ms since the stream started. */
  readonly timestampMs: number;
  /** Raw μ-law bytes (no header); usually 160 (20 ms) but any length is decoded. */
  readonly payload: Uint8Array;
}

export interface TwilioDtmf {
  readonly type: 'dtmf';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  /** `0`–`9`, `*`, `#`, `A`–`D` (upper case). */
  readonly digit: string;
  /** As sent (`inbound_track`), when present. */
  readonly track?: string;
}

/** Echo of a mark we sent: the audio before it has played, or a `clear` discarded it. */
export interface TwilioMark {
  readonly type: 'mark';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly name: string;
}

/** The last frame; Twilio closes the socket after it. */
export interface TwilioStop {
  readonly type: 'stop';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly accountSid?: string;
  readonly callSid?: string;
}

/** Everything Twilio sends on a Media Streams WebSocket. */
export type TwilioInbound = TwilioConnected | TwilioStart | TwilioMedia | TwilioDtmf | TwilioMark | TwilioStop;

// ---- server → Twilio --------------------------------------------------------------------------------------

export interface TwilioOutboundMedia {
  readonly type: 'media';
  readonly streamSid: string;
  readonly payload: Uint8Array;
}
export interface TwilioOutboundMark {
  readonly type: 'mark';
  readonly streamSid: string;
  readonly name: string;
}
export interface TwilioOutboundClear {
  readonly type: 'clear';
  readonly streamSid: string;
}
/** Everything a server may send on a bidirectional stream. */
export type TwilioOutbound = TwilioOutboundMedia | TwilioOutboundMark | TwilioOutboundClear;

// ---- schemas ----------------------------------------------------------------------------------------------

/**
 * Twilio sends `sequenceNumber`, `chunk` and `timestamp` as decimal strings; a JSON number is accepted too
 * (tolerant reader), anything else is an error.
 */
const counter = z
  .preprocess((value) => (typeof value === 'number' ? String(value) : value), z.string().regex(/^\d{1,15}$/, 'must be a decimal number (sent as a string)'))
  .transform(Number);
const sid = z.string().min(1, 'must not be empty');
const track = z.enum(['inbound', 'outbound']);

const ConnectedFrame = z.object({ protocol: z.string().default(''), version: z.string().default('') });

const StartFrame = z.object({
  sequenceNumber: counter,
  start: z.object({
    streamSid: sid,
    callSid: sid,
    accountSid: sid,
    /** Documented as always present; defaults keep a call alive if Twilio ever drops them. */
    tracks: z.array(track).min(1).default(['inbound']),
    customParameters: z.record(z.string(), z.string()).default({}),
    mediaFormat: z
      .object({ encoding: z.string().min(1), sampleRate: z.number().int().positive(), channels: z.number().int().positive() })
      .optional(),
  }),
});

const MediaFrame = z.object({
  sequenceNumber: counter,
  streamSid: sid,
  media: z.object({ track, chunk: counter, timestamp: counter, payload: z.string() }),
});

const DtmfFrame = z.object({
  sequenceNumber: counter,
  streamSid: sid,
  dtmf: z.object({ digit: z.string().regex(/^[0-9*#A-Da-d]$/, 'must be one DTMF digit (0-9, *, #, A-D)'), track: z.string().optional() }),
});

const MarkFrame = z.object({ sequenceNumber: counter, streamSid: sid, mark: z.object({ name: z.string() }) });

const StopFrame = z.object({
  sequenceNumber: counter,
  streamSid: sid,
  stop: z.object({ accountSid: z.string().optional(), callSid: z.string().optional() }).default({}),
});

const OutboundMediaFrame = z.object({ streamSid: sid, media: z.object({ payload: z.string() }) });
const OutboundMarkFrame = z.object({ streamSid: sid, mark: z.object({ name: z.string() }) });
const OutboundClearFrame = z.object({ streamSid: sid });

// ---- decoding ---------------------------------------------------------------------------------------------

export interface DecodeTwilioOptions {
  /**
   * Decode media payloads into this buffer when it is large enough: `payload` is then a view of it, valid
   * until the next decode into the same buffer (copy it to keep it). Otherwise a new array is allocated.
   */
  readonly payloadBuffer?: Uint8Array;
}

/** Decodes one Twilio → server text frame. Never throws. */
export function decodeTwilioMessage(text: string, options?: DecodeTwilioOptions): TwilioInbound | ProtocolError {
  const frame = parseFrame(text);
  if (frame instanceof ProtocolError) return frame;
  const { event, json } = frame;
  switch (event) {
    case 'media': {
      const parsed = MediaFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { media } = parsed.data;
      const payload = decodePayload(media.payload, event, options?.payloadBuffer);
      if (payload instanceof ProtocolError) return payload;
      return {
        type: 'media',
        sequenceNumber: parsed.data.sequenceNumber,
        streamSid: parsed.data.streamSid,
        track: media.track,
        chunk: media.chunk,
        timestampMs: media.timestamp,
        payload,
      };
    }
    case 'mark': {
      const parsed = MarkFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'mark', sequenceNumber: parsed.data.sequenceNumber, streamSid: parsed.data.streamSid, name: parsed.data.mark.name };
    }
    case 'dtmf': {
      const parsed = DtmfFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { dtmf } = parsed.data;
      return {
        type: 'dtmf',
        sequenceNumber: parsed.data.sequenceNumber,
        streamSid: parsed.data.streamSid,
        digit: dtmf.digit.toUpperCase(),
        ...(dtmf.track === undefined ? {} : { track: dtmf.track }),
      };
    }
    case 'start': {
      const parsed = StartFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { start } = parsed.data;
      return {
        type: 'start',
        sequenceNumber: parsed.data.sequenceNumber,
        streamSid: start.streamSid,
        callSid: start.callSid,
        accountSid: start.accountSid,
        tracks: start.tracks,
        mediaFormat: start.mediaFormat
          ? { encoding: start.mediaFormat.encoding, sampleRateHz: start.mediaFormat.sampleRate, channels: start.mediaFormat.channels }
          : TWILIO_MEDIA_FORMAT,
        customParameters: start.customParameters,
      };
    }
    case 'connected': {
      const parsed = ConnectedFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'connected', protocol: parsed.data.protocol, version: parsed.data.version };
    }
    case 'stop': {
      const parsed = StopFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { stop } = parsed.data;
      return {
        type: 'stop',
        sequenceNumber: parsed.data.sequenceNumber,
        streamSid: parsed.data.streamSid,
        ...(stop.accountSid === undefined ? {} : { accountSid: stop.accountSid }),
        ...(stop.callSid === undefined ? {} : { callSid: stop.callSid }),
      };
    }
    default:
      return protocolError('unknown-event', `Twilio Media Streams has no "${clip(event)}" event (expected connected, start, media, dtmf, mark or stop)`, event);
  }
}

/** Decodes one server → Twilio text frame (what the simulator and conformance tests receive). Never throws. */
export function decodeTwilioOutbound(text: string): TwilioOutbound | ProtocolError {
  const frame = parseFrame(text);
  if (frame instanceof ProtocolError) return frame;
  const { event, json } = frame;
  switch (event) {
    case 'media': {
      const parsed = OutboundMediaFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const payload = decodePayload(parsed.data.media.payload, event, undefined);
      if (payload instanceof ProtocolError) return payload;
      return { type: 'media', streamSid: parsed.data.streamSid, payload };
    }
    case 'mark': {
      const parsed = OutboundMarkFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'mark', streamSid: parsed.data.streamSid, name: parsed.data.mark.name };
    }
    case 'clear': {
      const parsed = OutboundClearFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'clear', streamSid: parsed.data.streamSid };
    }
    default:
      return protocolError('unknown-event', `a server may send only media, mark or clear to Twilio, not "${clip(event)}"`, event);
  }
}

function parseFrame(text: string): { event: string; json: object } | ProtocolError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return protocolError('bad-json', `the frame is not valid JSON (${text.length} characters)`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return protocolError('bad-json', 'the frame is JSON but not an object');
  }
  const event = (json as { event?: unknown }).event;
  if (typeof event !== 'string') {
    return protocolError('invalid-message', 'the frame has no "event" string', undefined, [`event: expected a string, got ${describe(event)}`]);
  }
  return { event, json };
}

function decodePayload(text: string, event: string, buffer: Uint8Array | undefined): Uint8Array | ProtocolError {
  const byteLength = base64DecodedLength(text);
  if (byteLength >= 0) {
    const out = buffer && buffer.length >= byteLength ? buffer.subarray(0, byteLength) : new Uint8Array(byteLength);
    if (decodeBase64Into(text, out) === byteLength) return out;
  }
  return protocolError('bad-base64', `the ${event} payload is not valid base64 (${text.length} characters)`, event, ['media.payload: not base64']);
}



function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}


// ---- encoding: server → Twilio (hot path) -----------------------------------------------------------------

/** The last streamSid's JSON form: one call's frames all carry the same one. */
let cachedSid = '';
let cachedSidJson = '""';
function sidJson(streamSid: string): string {
  if (streamSid !== cachedSid) {
    cachedSid = streamSid;
    cachedSidJson = JSON.stringify(streamSid);
  }
  return cachedSidJson;
}

/** Audio to play: raw μ-law 8 kHz bytes, no header. */
export function encodeTwilioMedia(streamSid: string, ulaw: Uint8Array): string {
  return `{"event":"media","streamSid":${sidJson(streamSid)},"media":{"payload":"${encodeBase64(ulaw)}"}}`;
}

/** A mark queued behind the audio sent so far; Twilio echoes it when playback reaches it (or on `clear`). */
export function encodeTwilioMark(streamSid: string, name: string): string {
  return `{"event":"mark","streamSid":${sidJson(streamSid)},"mark":{"name":${JSON.stringify(name)}}}`;
}

/** Drops all queued outbound audio at once; every pending mark is echoed. */
export function encodeTwilioClear(streamSid: string): string {
  return `{"event":"clear","streamSid":${sidJson(streamSid)}}`;
}

// ---- encoding: Twilio → server (simulator, fakes, tests) --------------------------------------------------

/** Encodes a message as Twilio sends it (numbers as strings, `start.streamSid` also at the top level). */
export function encodeTwilioInbound(message: TwilioInbound): string {
  switch (message.type) {
    case 'connected':
      return JSON.stringify({ event: 'connected', protocol: message.protocol, version: message.version });
    case 'start':
      return JSON.stringify({
        event: 'start',
        sequenceNumber: String(message.sequenceNumber),
        start: {
          accountSid: message.accountSid,
          streamSid: message.streamSid,
          callSid: message.callSid,
          tracks: message.tracks,
          customParameters: message.customParameters,
          mediaFormat: { encoding: message.mediaFormat.encoding, sampleRate: message.mediaFormat.sampleRateHz, channels: message.mediaFormat.channels },
        },
        streamSid: message.streamSid,
      });
    case 'media':
      return (
        `{"event":"media","sequenceNumber":"${message.sequenceNumber}","streamSid":${sidJson(message.streamSid)},` +
        `"media":{"track":"${message.track}","chunk":"${message.chunk}","timestamp":"${message.timestampMs}","payload":"${encodeBase64(message.payload)}"}}`
      );
    case 'dtmf':
      return JSON.stringify({
        event: 'dtmf',
        streamSid: message.streamSid,
        sequenceNumber: String(message.sequenceNumber),
        dtmf: { track: message.track ?? 'inbound_track', digit: message.digit },
      });
    case 'mark':
      return JSON.stringify({ event: 'mark', sequenceNumber: String(message.sequenceNumber), streamSid: message.streamSid, mark: { name: message.name } });
    case 'stop':
      return JSON.stringify({
        event: 'stop',
        sequenceNumber: String(message.sequenceNumber),
        streamSid: message.streamSid,
        stop: { accountSid: message.accountSid, callSid: message.callSid },
      });
  }
}

// ---- the carrier codec the media node's channel uses ------------------------------------------------------

const IGNORED: CarrierEvent = Object.freeze({ type: 'ignored' });

/**
 * Twilio as a `CarrierCodec`: `connected` and outbound-track media are ignored; a `start` whose media format
 * is not μ-law 8 kHz mono is reported as a protocol error rather than played as noise. Media payloads are
 * freshly allocated (the channel may queue events that arrive before it is started).
 */
export const twilioCarrierCodec: CarrierCodec = {
  carrier: 'twilio',
  inputFormat: MULAW_8K,
  outputFormat: MULAW_8K,
  capabilities: { marks: true, clear: true },
  decode(message) {
    if (typeof message !== 'string') return protocolError('bad-json', 'Twilio Media Streams sends JSON text frames; got a binary frame');
    const decoded = decodeTwilioMessage(message);
    switch (decoded.type) {
      case 'protocolError':
        return decoded;
      case 'media':
        return decoded.track === 'inbound' ? { type: 'media', audio: decoded.payload } : IGNORED;
      case 'start': {
        const format = decoded.mediaFormat;
        if (format.encoding !== TWILIO_MEDIA_FORMAT.encoding || format.sampleRateHz !== 8000 || format.channels !== 1) {
          return protocolError(
            'invalid-message',
            `unsupported media format ${format.encoding} ${format.sampleRateHz} Hz × ${format.channels}; Media Streams should always be audio/x-mulaw 8000 Hz mono`,
            'start',
          );
        }
        return { type: 'start', streamId: decoded.streamSid, callId: decoded.callSid, parameters: decoded.customParameters };
      }
      case 'dtmf':
        return { type: 'dtmf', digit: decoded.digit };
      case 'mark':
        return { type: 'mark', name: decoded.name };
      case 'stop':
        return { type: 'stop' };
      case 'connected':
        return IGNORED;
    }
  },
  encodeMedia: encodeTwilioMedia,
  encodeMark: encodeTwilioMark,
  encodeClear: encodeTwilioClear,
};
