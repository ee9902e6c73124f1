import { z } from 'zod';
import { bytesPerFrame, type AudioFormat } from '../audio/format';
import type { CarrierCodec, CarrierEvent } from './carrier';
import type { ProtocolError} from './protocol-error';
import { clipForLog, protocolErrorsFor } from './protocol-error';

/**
 * The Vonage Voice API WebSocket (`connect` to a `websocket` endpoint), as a pure codec (telephony reference
 * §2.2). Vonage is the client. Its first message is a JSON text frame `websocket:connected` naming the audio
 * format (`content-type: audio/l16;rate=16000`) with the NCCO's `headers` flattened next to it; then binary
 * frames of raw 16-bit little-endian mono PCM, 20 ms each (640 bytes at 16 kHz, 320 at 8 kHz), with JSON text
 * events (`websocket:dtmf`, `websocket:notify`, `websocket:cleared`) interleaved. We answer in the same
 * format, one 20 ms frame per binary message, and control playback with `{"action":"notify"}` (our marks)
 * and `{"action":"clear"}` (barge-in). Nothing here throws on bad input.
 */

const PROTOCOL = 'vonage-websocket';
const { error: protocolError, invalid } = protocolErrorsFor(PROTOCOL, 'message');
const clip = clipForLog;

/** The L16 rates an NCCO may ask for: 8 and 16 kHz are documented; 24 kHz is accepted by current Vonage [unconfirmed]. */
export const VONAGE_SAMPLE_RATES = [8000, 16000, 24000] as const;
export type VonageSampleRate = (typeof VONAGE_SAMPLE_RATES)[number];
/** What our NCCOs ask for unless told otherwise: wideband, the pipeline's own rate (no resampling inbound). */
export const VONAGE_DEFAULT_SAMPLE_RATE: VonageSampleRate = 16000;

export const vonageFormat = (sampleRateHz: VonageSampleRate): AudioFormat => Object.freeze({ encoding: 'pcm16', sampleRateHz });
export const VONAGE_L16_16K = vonageFormat(16000);
export const VONAGE_L16_8K = vonageFormat(8000);

/** The NCCO `content-type` of a rate: `audio/l16;rate=16000`. */
export const vonageContentType = (sampleRateHz: VonageSampleRate) => `audio/l16;rate=${sampleRateHz}`;

/** The sample rate a `content-type` names (`audio/l16;rate=8000`, case and spaces tolerated), or undefined. */
export function parseVonageContentType(contentType: string): VonageSampleRate | undefined {
  const match = /^\s*audio\/l16\s*;\s*rate\s*=\s*(\d+)\s*$/i.exec(contentType);
  const rate = match ? Number(match[1]) : Number.NaN;
  return (VONAGE_SAMPLE_RATES as readonly number[]).includes(rate) ? (rate as VonageSampleRate) : undefined;
}

/** The name of the notify payload field that carries our mark: `{"action":"notify","payload":{"mark":"…"}}`. */
export const VONAGE_MARK_FIELD = 'mark';

// ---- what Vonage sends ------------------------------------------------------------------------------------

export type VonageInbound =
  | {
      readonly type: 'connected';
      readonly sampleRateHz: VonageSampleRate;
      /** The NCCO endpoint's `headers`, flattened by Vonage to the top level (scalars as strings, objects as JSON). */
      readonly headers: Readonly<Record<string, string>>;
    }
  | { readonly type: 'audio'; readonly pcm: Uint8Array }
  | { readonly type: 'dtmf'; readonly digit: string; readonly durationMs?: number }
  /** A notify we sent has been reached by playback; `payload` echoed as we sent it. */
  | { readonly type: 'notify'; readonly payload: Readonly<Record<string, unknown>> }
  /** Vonage's acknowledgement of our `clear`. */
  | { readonly type: 'cleared' };

const digit = z.string().regex(/^[0-9*#A-Da-d]$/, 'must be one DTMF digit (0-9, *, #, A-D)');
const duration = z.number().nonnegative().optional();
/** Both shapes seen in the field: the documented top-level `digit`, and `dtmf: { digit, duration }`. */
const DtmfFrame = z.union([
  z.object({ digit, duration }),
  z.object({ dtmf: z.object({ digit, duration }) }).transform((frame) => frame.dtmf),
]);
const ConnectedFrame = z.object({ 'content-type': z.string() });
const NotifyFrame = z.object({ payload: z.record(z.string(), z.unknown()) });

/** Decodes one message from Vonage (text or binary). Binary is audio; its format is the one `connected` announced. */
export function decodeVonageMessage(message: string | Uint8Array): VonageInbound | ProtocolError {
  if (typeof message !== 'string') {
    if (message.byteLength === 0 || message.byteLength % 2 !== 0) {
      return protocolError('invalid-message', `an L16 audio frame has an even, non-zero number of bytes; got ${message.byteLength}`, 'audio');
    }
    // A copy: the channel may hold the frame (before the call starts) beyond the transport's buffer.
    return { type: 'audio', pcm: message.slice() };
  }
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    return protocolError('bad-json', `the text frame is not valid JSON (${message.length} characters)`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return protocolError('bad-json', 'the text frame is JSON but not an object');
  const event = (json as { event?: unknown }).event;
  if (typeof event !== 'string') return protocolError('invalid-message', 'the text frame has no "event" string', undefined, ['event: missing']);
  switch (event) {
    case 'websocket:connected': {
      const parsed = ConnectedFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      const sampleRateHz = parseVonageContentType(parsed.data['content-type']);
      if (sampleRateHz === undefined) {
        return protocolError('invalid-message', `unsupported content-type "${clip(parsed.data['content-type'])}" (expected audio/l16;rate=8000 or 16000)`, event, ['content-type: not audio/l16 at 8, 16 or 24 kHz']);
      }
      return { type: 'connected', sampleRateHz, headers: flattenHeaders(json as Record<string, unknown>) };
    }
    case 'websocket:dtmf': {
      const parsed = DtmfFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'dtmf', digit: parsed.data.digit.toUpperCase(), ...(parsed.data.duration === undefined ? {} : { durationMs: parsed.data.duration }) };
    }
    case 'websocket:notify': {
      const parsed = NotifyFrame.safeParse(json);
      if (!parsed.success) return invalid(event, parsed.error);
      return { type: 'notify', payload: parsed.data.payload };
    }
    case 'websocket:cleared':
      return { type: 'cleared' };
    default:
      return protocolError('unknown-event', `the Vonage WebSocket has no "${clip(event)}" event (expected websocket:connected, websocket:dtmf, websocket:notify or websocket:cleared)`, event);
  }
}

/** Everything but `event` and `content-type`: the headers we put in the NCCO. */
function flattenHeaders(json: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === 'event' || key === 'content-type' || value === null || value === undefined) continue;
    headers[key] = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return headers;
}

// ---- what we send -----------------------------------------------------------------------------------------

/**
 * One 20 ms binary frame at `sampleRateHz` (Vonage wants exactly one frame per message): a short frame is
 * padded with silence; anything past one frame is cut (the engine hands over 20 ms frames, so it never is).
 * Always a fresh buffer: the socket may still hold the previous one.
 */
export function encodeVonageAudio(sampleRateHz: VonageSampleRate, pcm: Uint8Array): Uint8Array {
  const frame = new Uint8Array(bytesPerFrame(vonageFormat(sampleRateHz)));
  frame.set(pcm.byteLength > frame.byteLength ? pcm.subarray(0, frame.byteLength) : pcm);
  return frame;
}

/** Queued behind the audio sent so far; Vonage answers `websocket:notify` with the same payload when playback reaches it. */
export function encodeVonageNotify(payload: Readonly<Record<string, unknown>>): string {
  return JSON.stringify({ action: 'notify', payload });
}

/** Drops the audio Vonage has buffered and not yet played (barge-in). */
export const encodeVonageClear = (): string => '{"action":"clear"}';

// ---- the carrier codec the media node's channel uses ------------------------------------------------------

const IGNORED: CarrierEvent = Object.freeze({ type: 'ignored' });

/**
 * Vonage as a `CarrierCodec`, one per connection: the `connected` message fixes the format (announced to the
 * channel through the start event's `format`), so audio before it is refused. The stream id is the call's
 * `callUuid` header when the NCCO carried one (ours do), else `contextId`, else `vonage`; every header is a
 * start parameter.
 */
export function createVonageCarrierCodec(defaultRate: VonageSampleRate = VONAGE_DEFAULT_SAMPLE_RATE): CarrierCodec {
  let sampleRateHz: VonageSampleRate | undefined;
  return {
    carrier: 'vonage',
    inputFormat: vonageFormat(defaultRate),
    outputFormat: vonageFormat(defaultRate),
    capabilities: { marks: true, clear: true },
    decode(message) {
      const decoded = decodeVonageMessage(message);
      switch (decoded.type) {
        case 'protocolError':
          return decoded;
        case 'connected': {
          if (sampleRateHz !== undefined) return IGNORED; // a repeated connected changes nothing mid-call
          sampleRateHz = decoded.sampleRateHz;
          const format = vonageFormat(decoded.sampleRateHz);
          const { callUuid, contextId } = decoded.headers;
          return {
            type: 'start',
            streamId: callUuid ?? contextId ?? 'vonage',
            ...(callUuid !== undefined ? { callId: callUuid } : {}),
            parameters: decoded.headers,
            format: { input: format, output: format },
          };
        }
        case 'audio':
          if (sampleRateHz === undefined) return protocolError('invalid-message', 'audio arrived before websocket:connected announced its format', 'audio');
          return { type: 'media', audio: decoded.pcm };
        case 'dtmf':
          return { type: 'dtmf', digit: decoded.digit };
        case 'notify': {
          const mark = decoded.payload[VONAGE_MARK_FIELD];
          // A notify that is not one of our marks (someone else's NCCO tooling) is nothing to us.
          return typeof mark === 'string' ? { type: 'mark', name: mark } : IGNORED;
        }
        case 'cleared':
          return IGNORED;
      }
    },
    encodeMedia(_streamId, audio) {
      return encodeVonageAudio(sampleRateHz ?? defaultRate, audio);
    },
    encodeMark(_streamId, name) {
      return encodeVonageNotify({ [VONAGE_MARK_FIELD]: name });
    },
    encodeClear() {
      return encodeVonageClear();
    },
  };
}

// ---- helpers ----------------------------------------------------------------------------------------------



