import { z } from 'zod';
import { MULAW_8K, type AudioFormat } from '../audio/format';
import { base64DecodedLength, decodeBase64Into, encodeBase64 } from './base64';
import type { CarrierCodec, CarrierEvent } from './carrier';
import { ProtocolError, clipForLog, protocolErrorsFor } from './protocol-error';

/**
 * Exotel's Voicebot applet (bidirectional AgentStream), as a pure codec: JSON text frames in, typed events
 * out, and back (telephony reference §3). All fields are snake_case and numeric-looking values are strings.
 * Nothing here throws on bad input: a malformed frame decodes to a `ProtocolError` value.
 *
 * Audio follows `start.media_format`: `audio/x-raw` (and `audio/L16`) is 16-bit signed little-endian PCM at
 * the announced rate (8, 16 or 24 kHz); any μ-law spelling is G.711 μ-law 8 kHz. We answer in the same format.
 *
 * What we send must come in chunks Exotel accepts (multiples of 320 bytes, 3 200 to 100 000 bytes): the
 * chunking lives in `createExotelChunker` below (pure) and is driven by media-node/channels/exotel-link.ts,
 * which owns the timer that flushes the last partial chunk of an utterance.
 */

const PROTOCOL = 'exotel-stream';
const { error: protocolError, invalid } = protocolErrorsFor(PROTOCOL);
const clip = clipForLog;

/** PCM16 at 8 kHz: Exotel's documented default when `media_format` says nothing. */
export const EXOTEL_DEFAULT_FORMAT: AudioFormat = Object.freeze({ encoding: 'pcm16', sampleRateHz: 8000 });
export const EXOTEL_SAMPLE_RATES = [8000, 16000, 24000] as const;

// ---- Exotel → server --------------------------------------------------------------------------------------

export interface ExotelConnected {
  readonly type: 'connected';
}
export interface ExotelStart {
  readonly type: 'start';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly callSid: string;
  readonly accountSid?: string;
  readonly from?: string;
  readonly to?: string;
  /** Query parameters of the stream URL (at most 3, as Exotel passes them on). */
  readonly customParameters: Readonly<Record<string, string>>;
  /** The audio both ways. */
  readonly format: AudioFormat;
}
export interface ExotelMedia {
  readonly type: 'media';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly chunk: number;
  readonly timestampMs: number;
  /** Raw audio in the start's format (about 100 ms per message; any length is decoded). */
  readonly payload: Uint8Array;
}
export interface ExotelDtmf {
  readonly type: 'dtmf';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly digit: string;
  readonly durationMs?: number;
}
/** A mark we sent: the audio before it has played. */
export interface ExotelMark {
  readonly type: 'mark';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly name: string;
}
export interface ExotelStop {
  readonly type: 'stop';
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly callSid?: string;
  /** `callended` (the caller hung up), `stopped` (the flow moved on), or whatever Exotel says. */
  readonly reason?: string;
}
export type ExotelInbound = ExotelConnected | ExotelStart | ExotelMedia | ExotelDtmf | ExotelMark | ExotelStop;

// ---- schemas ----------------------------------------------------------------------------------------------

/** Sent as decimal strings; a JSON number is accepted too (tolerant reader). */
const counter = z
  .preprocess((value) => (typeof value === 'number' ? String(value) : value), z.string().regex(/^\d{1,15}$/, 'must be a decimal number (sent as a string)'))
  .transform(Number);
const sid = z.string().min(1, 'must not be empty').max(200, 'at most 200 characters');
const optionalText = z.preprocess((value) => (typeof value === 'number' ? String(value) : value), z.string().max(200).optional());

const MediaFormat = z.object({
  encoding: z.string().min(1).max(100),
  sample_rate: z.preprocess((value) => (typeof value === 'number' ? String(value) : value), z.string().regex(/^\d{4,6}$/, 'must be a sample rate in Hz')).optional(),
  bit_rate: optionalText,
});

const StartFrame = z.object({
  sequence_number: counter.optional(),
  stream_sid: sid.optional(),
  start: z.object({
    stream_sid: sid,
    call_sid: sid,
    account_sid: optionalText,
    from: optionalText,
    to: optionalText,
    custom_parameters: z.record(z.string(), z.preprocess((value) => (typeof value === 'number' ? String(value) : value), z.string())).default({}),
    media_format: MediaFormat.optional(),
  }),
});
const MediaFrame = z.object({
  sequence_number: counter,
  stream_sid: sid,
  media: z.object({ chunk: counter, timestamp: counter, payload: z.string() }),
});
const DtmfFrame = z.object({
  sequence_number: counter,
  stream_sid: sid,
  dtmf: z.object({ digit: z.string().regex(/^[0-9*#A-Da-d]$/, 'must be one DTMF digit (0-9, *, #, A-D)'), duration: counter.optional() }),
});
const MarkFrame = z.object({ sequence_number: counter, stream_sid: sid, mark: z.object({ name: z.string() }) });
const StopFrame = z.object({
  sequence_number: counter,
  stream_sid: sid,
  stop: z.object({ call_sid: optionalText, account_sid: optionalText, reason: optionalText }).default({}),
});

/**
 * The audio format of `start.media_format`: `audio/x-raw` / `audio/L16` (rate from `sample_rate` or a
 * `;rate=` parameter) is PCM16; a μ-law encoding is μ-law 8 kHz. Anything else is an error, not noise.
 */
export function exotelAudioFormat(mediaFormat: z.output<typeof MediaFormat> | undefined): AudioFormat | string {
  if (!mediaFormat) return EXOTEL_DEFAULT_FORMAT;
  const [type = '', ...params] = mediaFormat.encoding.toLowerCase().split(';').map((part) => part.trim());
  const rateParam = params.find((p) => p.startsWith('rate='))?.slice(5);
  const rate = Number(mediaFormat.sample_rate ?? rateParam ?? 8000);
  if (/(^|[/-])(x-)?(mu-?law|ulaw|pcmu)$/.test(type)) {
    return rate === 8000 ? MULAW_8K : `μ-law at ${rate} Hz is not something Exotel sends (μ-law is 8000 Hz)`;
  }
  if (type === 'audio/x-raw' || type === 'audio/l16' || type === 'audio/pcm' || type === 'audio/slin') {
    if (mediaFormat.bit_rate !== undefined && mediaFormat.bit_rate !== '16') return `bit_rate ${mediaFormat.bit_rate} is not 16-bit PCM`;
    if (!(EXOTEL_SAMPLE_RATES as readonly number[]).includes(rate)) return `sample rate ${rate} Hz is not one of 8000, 16000, 24000`;
    return rate === 8000 ? EXOTEL_DEFAULT_FORMAT : { encoding: 'pcm16', sampleRateHz: rate };
  }
  return `encoding "${clip(mediaFormat.encoding)}" is neither audio/x-raw (PCM16) nor μ-law`;
}

// ---- decoding ---------------------------------------------------------------------------------------------

/** Decodes one Exotel → server text frame. Never throws. */
export function decodeExotelMessage(text: string): ExotelInbound | ProtocolError {
  const frame = parseFrame(text);
  if (frame instanceof ProtocolError) return frame;
  const { event, json } = frame;
  switch (event) {
    case 'media': {
      const parsed = MediaFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const payload = decodePayload(parsed.data.media.payload, event);
      if (payload instanceof ProtocolError) return payload;
      const { media } = parsed.data;
      return { type: 'media', sequenceNumber: parsed.data.sequence_number, streamSid: parsed.data.stream_sid, chunk: media.chunk, timestampMs: media.timestamp, payload };
    }
    case 'start': {
      const parsed = StartFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { start } = parsed.data;
      const format = exotelAudioFormat(start.media_format);
      if (typeof format === 'string') return protocolError('invalid-message', `unsupported start.media_format: ${format}`, event, [`start.media_format: ${format}`]);
      return {
        type: 'start',
        sequenceNumber: parsed.data.sequence_number ?? 1,
        streamSid: start.stream_sid,
        callSid: start.call_sid,
        ...(start.account_sid !== undefined ? { accountSid: start.account_sid } : {}),
        ...(start.from !== undefined ? { from: start.from } : {}),
        ...(start.to !== undefined ? { to: start.to } : {}),
        customParameters: start.custom_parameters,
        format,
      };
    }
    case 'dtmf': {
      const parsed = DtmfFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { dtmf } = parsed.data;
      return {
        type: 'dtmf',
        sequenceNumber: parsed.data.sequence_number,
        streamSid: parsed.data.stream_sid,
        digit: dtmf.digit.toUpperCase(),
        ...(dtmf.duration !== undefined ? { durationMs: dtmf.duration } : {}),
      };
    }
    case 'mark': {
      const parsed = MarkFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'mark', sequenceNumber: parsed.data.sequence_number, streamSid: parsed.data.stream_sid, name: parsed.data.mark.name };
    }
    case 'stop': {
      const parsed = StopFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const { stop } = parsed.data;
      return {
        type: 'stop',
        sequenceNumber: parsed.data.sequence_number,
        streamSid: parsed.data.stream_sid,
        ...(stop.call_sid !== undefined ? { callSid: stop.call_sid } : {}),
        ...(stop.reason !== undefined ? { reason: stop.reason } : {}),
      };
    }
    case 'connected':
      return { type: 'connected' };
    default:
      return protocolError('unknown-event', `Exotel streams have no "${clip(event)}" event (expected connected, start, media, dtmf, mark or stop)`, event);
  }
}

function parseFrame(text: string): { event: string; json: object } | ProtocolError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return protocolError('bad-json', `the frame is not valid JSON (${text.length} characters)`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return protocolError('bad-json', 'the frame is JSON but not an object');
  const event = (json as { event?: unknown }).event;
  if (typeof event !== 'string') return protocolError('invalid-message', 'the frame has no "event" string', undefined, ['event: expected a string']);
  return { event, json };
}

function decodePayload(text: string, event: string): Uint8Array | ProtocolError {
  const byteLength = base64DecodedLength(text);
  if (byteLength >= 0) {
    const out = new Uint8Array(byteLength);
    if (decodeBase64Into(text, out) === byteLength) return out;
  }
  return protocolError('bad-base64', `the ${event} payload is not valid base64 (${text.length} characters)`, event, ['media.payload: not base64']);
}




// ---- encoding: server → Exotel ----------------------------------------------------------------------------

/** One chunk of audio to play (a valid chunk size: see `createExotelChunker`), in the stream's format. */
export function encodeExotelMedia(streamSid: string, audio: Uint8Array): string {
  return `{"event":"media","stream_sid":${JSON.stringify(streamSid)},"media":{"payload":"${encodeBase64(audio)}"}}`;
}

/** Queued behind the audio sent so far; Exotel sends it back when playback reaches it. */
export function encodeExotelMark(streamSid: string, name: string): string {
  return `{"event":"mark","stream_sid":${JSON.stringify(streamSid)},"mark":{"name":${JSON.stringify(name)}}}`;
}

/** Drops the audio Exotel holds for playback (barge-in). */
export function encodeExotelClear(streamSid: string): string {
  return `{"event":"clear","stream_sid":${JSON.stringify(streamSid)}}`;
}

// ---- chunking of what we send (pure) ----------------------------------------------------------------------

/** Exotel's chunk rules for outbound media payloads (decoded bytes), reference §3. */
export const EXOTEL_CHUNK = Object.freeze({ multipleOf: 320, minBytes: 3200, maxBytes: 100_000 });

/** What to send, in order, once chunked. */
export type ExotelOutgoing = { readonly kind: 'media'; readonly audio: Uint8Array } | { readonly kind: 'text'; readonly text: string };

/**
 * Turns the engine's 20 ms frames into chunks Exotel accepts: every chunk a multiple of 320 bytes, at least
 * 3 200 and at most 99 840 bytes. Marks (any text message) stay behind the audio queued before them, so a
 * mark is never echoed before the audio it follows was even sent. `flush` ends an utterance: the partial
 * rest is padded with silence up to a valid size (a short gap of silence instead of a chunk Exotel would
 * distort or cut). `clear` drops everything queued. Pure: the caller owns the timer that calls `flush`.
 */
export function createExotelChunker(options: { silenceByte: () => number; maxPendingBytes?: number }) {
  const maxChunk = Math.floor(EXOTEL_CHUNK.maxBytes / EXOTEL_CHUNK.multipleOf) * EXOTEL_CHUNK.multipleOf;
  /** The engine hands only a small lead; far more than a few chunks pending means something is wrong upstream. */
  const maxPending = options.maxPendingBytes ?? 16 * EXOTEL_CHUNK.minBytes;
  let pending = new Uint8Array(4 * EXOTEL_CHUNK.minBytes);
  let pendingBytes = 0;
  /** Text messages waiting for the audio before them, with how many pending bytes precede each. */
  let held: { text: string; after: number }[] = [];
  let dropped = 0;

  function emit(chunkBytes: number, out: ExotelOutgoing[]): void {
    out.push({ kind: 'media', audio: pending.slice(0, chunkBytes) });
    pending.copyWithin(0, chunkBytes, pendingBytes);
    pendingBytes -= chunkBytes;
    const still: { text: string; after: number }[] = [];
    for (const item of held) {
      if (item.after <= chunkBytes) out.push({ kind: 'text', text: item.text });
      else still.push({ text: item.text, after: item.after - chunkBytes });
    }
    held = still;
  }

  function drain(out: ExotelOutgoing[]): void {
    while (pendingBytes >= EXOTEL_CHUNK.minBytes) {
      const size = Math.min(maxChunk, pendingBytes - (pendingBytes % EXOTEL_CHUNK.multipleOf));
      emit(size, out);
    }
  }

  return {
    /** Audio to play; returns whatever became sendable. */
    audio(bytes: Uint8Array): ExotelOutgoing[] {
      const out: ExotelOutgoing[] = [];
      if (pendingBytes + bytes.length > maxPending) {
        dropped += bytes.length;
        return out;
      }
      if (pendingBytes + bytes.length > pending.length) {
        const grown = new Uint8Array(Math.max(pending.length * 2, pendingBytes + bytes.length));
        grown.set(pending.subarray(0, pendingBytes));
        pending = grown;
      }
      pending.set(bytes, pendingBytes);
      pendingBytes += bytes.length;
      drain(out);
      return out;
    },
    /** A text message (a mark) to send once the audio queued before it has gone. */
    text(text: string): ExotelOutgoing[] {
      if (pendingBytes === 0) return [{ kind: 'text', text }];
      held.push({ text, after: pendingBytes });
      return [];
    },
    /** The utterance paused or ended: send the rest now, padded with silence to a valid chunk. */
    flush(): ExotelOutgoing[] {
      const out: ExotelOutgoing[] = [];
      if (pendingBytes > 0) {
        const rounded = Math.ceil(pendingBytes / EXOTEL_CHUNK.multipleOf) * EXOTEL_CHUNK.multipleOf;
        const size = Math.max(EXOTEL_CHUNK.minBytes, rounded);
        if (size > pending.length) {
          const grown = new Uint8Array(size);
          grown.set(pending.subarray(0, pendingBytes));
          pending = grown;
        }
        pending.fill(options.silenceByte(), pendingBytes, size);
        // Held texts sit at or before the real end of the audio: all of them go after this chunk.
        pendingBytes = size;
        drain(out);
      }
      for (const item of held) out.push({ kind: 'text', text: item.text });
      held = [];
      return out;
    },
    /** Barge-in: forget what was not sent (and the marks behind it). */
    clear(): void {
      pendingBytes = 0;
      held = [];
    },
    get pendingBytes() {
      return pendingBytes;
    },
    /** Audio refused because too much was pending (bytes). */
    get droppedBytes() {
      return dropped;
    },
  };
}

export type ExotelChunker = ReturnType<typeof createExotelChunker>;

// ---- the carrier codec the media node's channel uses ------------------------------------------------------

const IGNORED: CarrierEvent = Object.freeze({ type: 'ignored' });

/**
 * Exotel as a `CarrierCodec`, one per connection (it remembers the stream's format). `encodeMedia` hands
 * back the raw audio, not a frame: Exotel's chunk rules need batching over time, which the link made with
 * `connectExotel` (media-node/channels/exotel-link.ts) does before framing it with `encodeExotelMedia`.
 */
export interface ExotelCarrierCodec extends CarrierCodec {
  /** The format announced by `start` (the default until then). */
  readonly streamFormat: AudioFormat;
  /** The stream's sid once `start` has been decoded. */
  readonly streamSid: string | undefined;
}

export function createExotelCarrierCodec(): ExotelCarrierCodec {
  let streamFormat = EXOTEL_DEFAULT_FORMAT;
  let streamSid: string | undefined;
  return {
    carrier: 'exotel',
    inputFormat: EXOTEL_DEFAULT_FORMAT,
    outputFormat: EXOTEL_DEFAULT_FORMAT,
    capabilities: { marks: true, clear: true },
    get streamFormat() {
      return streamFormat;
    },
    get streamSid() {
      return streamSid;
    },
    decode(message) {
      if (typeof message !== 'string') return protocolError('bad-json', 'Exotel streams send JSON text frames; got a binary frame');
      const decoded = decodeExotelMessage(message);
      switch (decoded.type) {
        case 'protocolError':
          return decoded;
        case 'start':
          streamFormat = decoded.format;
          streamSid ??= decoded.streamSid;
          return {
            type: 'start',
            streamId: decoded.streamSid,
            callId: decoded.callSid,
            parameters: decoded.customParameters,
            format: { input: decoded.format, output: decoded.format },
          };
        case 'media':
          return { type: 'media', audio: decoded.payload };
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
    encodeMedia: (_streamSid, audio) => audio,
    encodeMark: encodeExotelMark,
    encodeClear: encodeExotelClear,
  };
}

/** The silence byte of a format (μ-law silence is 0xFF; PCM silence is zero). */
export function silenceByteOf(format: AudioFormat): number {
  return format.encoding === 'mulaw' ? 0xff : format.encoding === 'alaw' ? 0xd5 : 0;
}
