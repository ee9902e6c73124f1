import { z } from 'zod';
import { ALAW_8K, MULAW_8K, type AudioFormat } from '../audio/format';
import type { CarrierCodec, CarrierEvent } from './carrier';
import { ProtocolError, clipForLog, protocolErrorsFor } from './protocol-error';

/**
 * Asterisk's WebSocket channel driver (chan_websocket, Asterisk 20.16 / 21.11 / 22.6 / 23.0 and later) as a
 * pure codec (telephony reference §5). Asterisk dials us (`Dial(WebSocket/<client>/…)`), sends TEXT control
 * events and BINARY frames of raw codec audio; we answer with TEXT commands and BINARY audio. Control messages
 * come in two spellings, chosen on the Asterisk side per channel: legacy plain text (`NAME key:value …`) and
 * JSON (`{"event":"NAME",…}`, `f(json)`). Both are decoded; commands go back in the spelling Asterisk used,
 * because Asterisk parses commands only in its own configured format. Nothing here throws on bad input.
 */

const PROTOCOL = 'asterisk-websocket';
const { error: protocolError, invalid } = protocolErrorsFor(PROTOCOL, 'message');
const clip = clipForLog;

export type AsteriskControlFormat = 'json' | 'plain-text';

/**
 * The codecs we carry (`c(<codec>)` in the dial string), as Asterisk names them in `MEDIA_START`. Others
 * (g722, opus, …) would need a transcoder or passthrough framing: refused with a precise error instead.
 */
export const ASTERISK_AUDIO_FORMATS: Readonly<Record<string, AudioFormat>> = Object.freeze({
  ulaw: MULAW_8K,
  alaw: ALAW_8K,
  slin: Object.freeze({ encoding: 'pcm16', sampleRateHz: 8_000 }),
  slin16: Object.freeze({ encoding: 'pcm16', sampleRateHz: 16_000 }),
  slin24: Object.freeze({ encoding: 'pcm16', sampleRateHz: 24_000 }),
} satisfies Record<string, AudioFormat>);

/** chan_websocket closes the socket (and hangs up) on a larger message. */
export const ASTERISK_MAX_MESSAGE_BYTES = 65_500;
/** chan_websocket ignores TEXT messages longer than this (commands must stay short). */
export const ASTERISK_MAX_TEXT_BYTES = 128;

// ---- Asterisk → us ----------------------------------------------------------------------------------------

export interface AsteriskMediaStart {
  readonly event: 'MEDIA_START';
  readonly connectionId: string;
  readonly channel: string;
  readonly channelId: string;
  /** Asterisk's codec name (`ulaw`, `slin16`, …). */
  readonly format: string;
  /** Bytes of one frame (`ptime` ms) of `format`: what we send must be a multiple of it. */
  readonly optimalFrameSize: number;
  readonly ptimeMs?: number;
  /** JSON format only: the channel's variables (string values). */
  readonly channelVariables: Readonly<Record<string, string>>;
}

export type AsteriskEvent =
  | AsteriskMediaStart
  | { readonly event: 'DTMF_END'; readonly digit: string; readonly channelId?: string }
  | { readonly event: 'MEDIA_XOFF' | 'MEDIA_XON' | 'QUEUE_DRAINED'; readonly channelId?: string }
  | { readonly event: 'MEDIA_MARK_PROCESSED' | 'MEDIA_BUFFERING_COMPLETED'; readonly correlationId: string; readonly channelId?: string }
  | {
      readonly event: 'STATUS';
      readonly channelId?: string;
      readonly queueLength: number;
      readonly xonLevel: number;
      readonly xoffLevel: number;
      readonly queueFull: boolean;
      readonly bulkMedia: boolean;
      readonly mediaPaused: boolean;
    }
  /** Asterisk refused a command we sent (bad JSON, a buffering command in passthrough mode, …). */
  | { readonly event: 'ERROR'; readonly errorText: string; readonly channelId?: string };

export interface DecodedAsteriskEvent {
  /** The spelling Asterisk used: commands go back in the same one. */
  readonly controlFormat: AsteriskControlFormat;
  readonly message: AsteriskEvent;
}

// ---- us → Asterisk ----------------------------------------------------------------------------------------

export type AsteriskCommand =
  | {
      readonly command:
        | 'ANSWER'
        | 'HANGUP'
        | 'START_MEDIA_BUFFERING'
        | 'FLUSH_MEDIA'
        | 'PAUSE_MEDIA'
        | 'CONTINUE_MEDIA'
        | 'GET_STATUS'
        | 'REPORT_QUEUE_DRAINED';
    }
  /** `correlation_id` comes back in MEDIA_BUFFERING_COMPLETED / MEDIA_MARK_PROCESSED. */
  | { readonly command: 'STOP_MEDIA_BUFFERING' | 'MARK_MEDIA'; readonly correlationId?: string };

/**
 * One command as a TEXT message: JSON `{"command":"MARK_MEDIA","correlation_id":"m1"}` or plain text
 * `MARK_MEDIA m1` (the correlation id is the rest of the line there).
 */
export function encodeAsteriskCommand(format: AsteriskControlFormat, command: AsteriskCommand): string {
  const id = 'correlationId' in command ? command.correlationId : undefined;
  if (format === 'json') {
    return id === undefined ? `{"command":"${command.command}"}` : `{"command":"${command.command}","correlation_id":${JSON.stringify(id)}}`;
  }
  return id === undefined || id === '' ? command.command : `${command.command} ${id}`;
}

// ---- decoding ---------------------------------------------------------------------------------------------

const digit = z
  .string()
  .regex(/^[0-9*#A-Da-d]$/, 'must be one DTMF digit (0-9, *, #, A-D)')
  .transform((d) => d.toUpperCase());
const positiveInt = z.coerce.number().int().positive();
const optionalId = z.string().max(200).optional();
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true'), z.number().transform((n) => n !== 0)]);

const MediaStartFields = z.object({
  connection_id: z.string().max(200).optional(),
  channel: z.string().max(200).optional(),
  channel_id: optionalId,
  format: z.string().min(1, 'must name the codec').max(40),
  optimal_frame_size: positiveInt.max(ASTERISK_MAX_MESSAGE_BYTES, `at most ${ASTERISK_MAX_MESSAGE_BYTES} bytes`),
  ptime: positiveInt.max(1000).optional(),
  channel_variables: z.record(z.string(), z.unknown()).optional(),
});
const DtmfFields = z.object({ digit, channel_id: optionalId });
const ChannelFields = z.object({ channel_id: optionalId });
const CorrelationFields = z.object({ correlation_id: z.string().max(200).default(''), channel_id: optionalId });
const StatusFields = z.object({
  channel_id: optionalId,
  queue_length: z.coerce.number().int().min(0),
  xon_level: z.coerce.number().int().min(0),
  xoff_level: z.coerce.number().int().min(0),
  queue_full: flag,
  bulk_media: flag,
  media_paused: flag,
});
const ErrorFields = z.object({ error_text: z.string().default(''), channel_id: optionalId });

/** Most channel variables carried into the start event's parameters (and their value length). */
const MAX_PARAMETERS = 64;
const MAX_PARAMETER_LENGTH = 1000;

/** Decodes one TEXT message from Asterisk, in either control format. Never throws. */
export function decodeAsteriskEvent(text: string): DecodedAsteriskEvent | ProtocolError {
  const trimmed = text.trim();
  if (trimmed === '') return protocolError('invalid-message', 'an empty TEXT message');
  if (trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      return protocolError('bad-json', `a TEXT message that opens like JSON but does not parse (${text.length} characters)`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return protocolError('bad-json', 'the message is JSON but not an object');
    const name = (json as { event?: unknown }).event;
    if (typeof name !== 'string') return protocolError('invalid-message', 'the JSON message has no "event" string', undefined, ['event: missing']);
    const message = decodeFields(name, json as Record<string, unknown>);
    return message instanceof ProtocolError ? message : { controlFormat: 'json', message };
  }
  const space = trimmed.search(/\s/);
  const name = space < 0 ? trimmed : trimmed.slice(0, space);
  const rest = space < 0 ? '' : trimmed.slice(space + 1).trim();
  const message = decodeFields(name, plainFields(name, rest));
  return message instanceof ProtocolError ? message : { controlFormat: 'plain-text', message };
}

/**
 * Plain-text parameters: `key:value` tokens, except that MEDIA_MARK_PROCESSED and MEDIA_BUFFERING_COMPLETED
 * carry the bare correlation id (the rest of the line) and ERROR's `error_text` runs to the end of the line.
 */
function plainFields(name: string, rest: string): Record<string, unknown> {
  if (name === 'MEDIA_MARK_PROCESSED' || name === 'MEDIA_BUFFERING_COMPLETED') return { correlation_id: rest };
  const fields: Record<string, unknown> = {};
  let tail = rest;
  if (name === 'ERROR') {
    const at = tail.indexOf('error_text:');
    if (at >= 0) {
      fields.error_text = tail.slice(at + 'error_text:'.length).trim();
      tail = tail.slice(0, at);
    }
  }
  for (const token of tail.split(/\s+/)) {
    const colon = token.indexOf(':');
    if (colon > 0) fields[token.slice(0, colon)] = token.slice(colon + 1);
  }
  return fields;
}

function decodeFields(name: string, fields: Record<string, unknown>): AsteriskEvent | ProtocolError {
  switch (name) {
    case 'MEDIA_START': {
      const parsed = MediaStartFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      const f = parsed.data;
      return {
        event: 'MEDIA_START',
        connectionId: f.connection_id ?? '',
        channel: f.channel ?? '',
        channelId: f.channel_id ?? '',
        format: f.format,
        optimalFrameSize: f.optimal_frame_size,
        ...(f.ptime !== undefined ? { ptimeMs: f.ptime } : {}),
        channelVariables: stringEntries(f.channel_variables),
      };
    }
    case 'DTMF_END': {
      const parsed = DtmfFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      return { event: 'DTMF_END', digit: parsed.data.digit, ...channelIdOf(parsed.data) };
    }
    case 'MEDIA_XOFF':
    case 'MEDIA_XON':
    case 'QUEUE_DRAINED': {
      const parsed = ChannelFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      return { event: name, ...channelIdOf(parsed.data) };
    }
    case 'MEDIA_MARK_PROCESSED':
    case 'MEDIA_BUFFERING_COMPLETED': {
      const parsed = CorrelationFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      return { event: name, correlationId: parsed.data.correlation_id, ...channelIdOf(parsed.data) };
    }
    case 'STATUS': {
      const parsed = StatusFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      const f = parsed.data;
      return {
        event: 'STATUS',
        ...channelIdOf(f),
        queueLength: f.queue_length,
        xonLevel: f.xon_level,
        xoffLevel: f.xoff_level,
        queueFull: f.queue_full,
        bulkMedia: f.bulk_media,
        mediaPaused: f.media_paused,
      };
    }
    case 'ERROR': {
      const parsed = ErrorFields.safeParse(fields);
      if (!parsed.success) return invalid(name, parsed.error);
      return { event: 'ERROR', errorText: parsed.data.error_text.slice(0, 500), ...channelIdOf(parsed.data) };
    }
    default:
      return protocolError(
        'unknown-event',
        `chan_websocket has no "${clip(name)}" event (expected MEDIA_START, DTMF_END, MEDIA_XOFF, MEDIA_XON, MEDIA_MARK_PROCESSED, MEDIA_BUFFERING_COMPLETED, QUEUE_DRAINED, STATUS or ERROR; names are case-sensitive)`,
        name,
      );
  }
}

const channelIdOf = (f: { channel_id?: string | undefined }) => (f.channel_id ? { channelId: f.channel_id } : {});

function stringEntries(record: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!record) return out;
  let count = 0;
  for (const [key, value] of Object.entries(record)) {
    if (typeof value !== 'string' || value.length > MAX_PARAMETER_LENGTH) continue;
    out[key] = value;
    if (++count >= MAX_PARAMETERS) break;
  }
  return out;
}




// ---- the carrier codec the media node's channel uses ------------------------------------------------------

const IGNORED: CarrierEvent = Object.freeze({ type: 'ignored' });
/** Marks awaiting MEDIA_MARK_PROCESSED; the engine sends one every few hundred ms, so this is minutes of audio. */
const MAX_PENDING_MARKS = 256;

/**
 * chan_websocket as a `CarrierCodec`, one per connection: it remembers the control format Asterisk uses,
 * the frame size MEDIA_START announced, and which correlation id stands for which mark.
 *
 * Outbound audio: chan_websocket re-times what we send (one frame to the core every ptime) but drops the
 * remainder of a message that is not a multiple of `optimal_frame_size`. The engine hands us 20 ms frames,
 * which for ulaw, alaw, slin, slin16 and slin24 at ptime 20 are exactly one optimal frame, so each frame is
 * sent as it is. Should Asterisk announce another frame size, frames are re-cut here into whole multiples
 * (the < 1 frame rest waits for the next frame), so nothing is dropped and no START/STOP_MEDIA_BUFFERING
 * bracket is needed — which this interface could not send anyway (one message per play).
 *
 * Barge-in: FLUSH_MEDIA discards what Asterisk queued but has not played. Marks: MARK_MEDIA joins the queue
 * and MEDIA_MARK_PROCESSED comes back when playback reaches it; a flush discards queued marks silently (unlike
 * Twilio's clear), so pending ones are forgotten then. Correlation ids are short generated ids (`m1`, `m2`, …):
 * Asterisk ignores TEXT messages over 128 bytes, and the plain-text form cannot quote.
 */
export function createAsteriskWsCodec(): CarrierCodec & { readonly controlFormat: AsteriskControlFormat; readonly optimalFrameSize: number | undefined } {
  let controlFormat: AsteriskControlFormat | undefined;
  let optimalFrameSize: number | undefined;
  const carry = { bytes: new Uint8Array(0), length: 0 };
  const marks = new Map<string, string>();
  let nextMark = 0;

  const command = (c: AsteriskCommand) => encodeAsteriskCommand(controlFormat ?? 'plain-text', c);

  function toCarrierEvent(decoded: DecodedAsteriskEvent): CarrierEvent | ProtocolError {
    const message = decoded.message;
    switch (message.event) {
      case 'MEDIA_START': {
        // One per connection; a repeat must not change the framing of a call already running.
        if (optimalFrameSize !== undefined) return IGNORED;
        const format = Object.hasOwn(ASTERISK_AUDIO_FORMATS, message.format) ? ASTERISK_AUDIO_FORMATS[message.format] : undefined;
        if (!format) {
          return protocolError(
            'invalid-message',
            `unsupported codec "${clip(message.format)}": dial with c(ulaw), c(alaw), c(slin), c(slin16) or c(slin24)`,
            'MEDIA_START',
          );
        }
        optimalFrameSize = message.optimalFrameSize;
        carry.bytes = new Uint8Array(optimalFrameSize);
        carry.length = 0;
        return {
          type: 'start',
          streamId: message.connectionId || message.channelId || message.channel || 'asterisk',
          ...(message.channelId ? { callId: message.channelId } : {}),
          parameters: message.channelVariables,
          format: { input: format, output: format },
        };
      }
      case 'DTMF_END':
        return { type: 'dtmf', digit: message.digit };
      case 'MEDIA_XOFF':
        return { type: 'flow', paused: true };
      case 'MEDIA_XON':
        return { type: 'flow', paused: false };
      case 'MEDIA_MARK_PROCESSED': {
        const name = marks.get(message.correlationId);
        if (name === undefined) return IGNORED;
        marks.delete(message.correlationId);
        return { type: 'mark', name };
      }
      default:
        // STATUS, QUEUE_DRAINED, MEDIA_BUFFERING_COMPLETED answer commands we do not send; ERROR answers a
        // command Asterisk refused (nothing for the call to act on).
        return IGNORED;
    }
  }

  return {
    carrier: 'asterisk',
    // Until MEDIA_START says which codec the dial string chose.
    inputFormat: MULAW_8K,
    outputFormat: MULAW_8K,
    capabilities: { marks: true, clear: true },
    get controlFormat() {
      return controlFormat ?? 'plain-text';
    },
    get optimalFrameSize() {
      return optimalFrameSize;
    },
    decode(message) {
      if (typeof message !== 'string') {
        // BINARY = caller audio in the MEDIA_START codec. Copied: the channel may hold it before the call starts.
        return message.length === 0 ? IGNORED : { type: 'media', audio: message.slice() };
      }
      const decoded = decodeAsteriskEvent(message);
      if (decoded instanceof ProtocolError) return decoded;
      controlFormat ??= decoded.controlFormat;
      return toCarrierEvent(decoded);
    },
    encodeMedia(_streamId, audio) {
      const size = optimalFrameSize;
      if (size === undefined || (carry.length === 0 && audio.length % size === 0 && audio.length <= ASTERISK_MAX_MESSAGE_BYTES)) return audio;
      const total = carry.length + audio.length;
      const whole = Math.min(total - (total % size), ASTERISK_MAX_MESSAGE_BYTES - (ASTERISK_MAX_MESSAGE_BYTES % size));
      const out = new Uint8Array(whole);
      const fromCarry = Math.min(carry.length, whole);
      out.set(carry.bytes.subarray(0, fromCarry));
      out.set(audio.subarray(0, whole - fromCarry), fromCarry);
      // The rest (< one frame; more only past the message cap, which 20 ms frames never reach) waits. With no
      // whole frame yet the message is empty, which chan_websocket accepts and queues nothing for.
      const rest = audio.subarray(whole - fromCarry);
      const keep = rest.subarray(0, Math.min(rest.length, size - 1));
      carry.bytes.set(keep);
      carry.length = keep.length;
      return out;
    },
    encodeMark(_streamId, name) {
      if (marks.size >= MAX_PENDING_MARKS) marks.delete(marks.keys().next().value!);
      const id = `m${++nextMark}`;
      marks.set(id, name);
      return command({ command: 'MARK_MEDIA', correlationId: id });
    },
    encodeClear() {
      carry.length = 0;
      marks.clear();
      return command({ command: 'FLUSH_MEDIA' });
    },
    encodeHangup() {
      return command({ command: 'HANGUP' });
    },
  };
}
