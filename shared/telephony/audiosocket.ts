import type { AudioFormat } from '../audio/format';
import type { CarrierCodec, CarrierEvent, CarrierProtocolError } from './carrier';
import { ProtocolError, type ProtocolErrorCode } from './protocol-error';

/**
 * Asterisk AudioSocket (telephony reference §4), as a pure codec: a TCP byte stream of TLV frames
 * (`type:u8 | length:u16 big-endian | payload`). Asterisk is the client; the first frame it sends is the call's
 * 16-byte UUID, then slin audio (the frame type says the rate), DTMF digits, and a hang-up or error.
 * A server may send only hang-up and non-empty audio: Asterisk ends the call on anything else. Nothing here
 * throws on bad input: a malformed frame decodes to a `ProtocolError` value.
 */

const PROTOCOL = 'asterisk-audiosocket';

export const AUDIOSOCKET_HEADER_BYTES = 3;

export const AUDIOSOCKET_KIND = {
  hangup: 0x00,
  uuid: 0x01,
  dtmf: 0x03,
  /** slin 8 kHz; 0x11–0x18 are the higher rates of AUDIOSOCKET_RATES. */
  audio: 0x10,
  error: 0xff,
} as const;

/** Audio frame types 0x10–0x18 and their sample rates (signed linear 16-bit little-endian mono). */
export const AUDIOSOCKET_RATES: ReadonlyMap<number, number> = new Map([
  [0x10, 8_000],
  [0x11, 12_000],
  [0x12, 16_000],
  [0x13, 24_000],
  [0x14, 32_000],
  [0x15, 44_100],
  [0x16, 48_000],
  [0x17, 96_000],
  [0x18, 192_000],
]);

const KIND_BY_RATE = new Map([...AUDIOSOCKET_RATES].map(([kind, rate]) => [rate, kind]));

/**
 * The largest payload accepted from Asterisk. It sends one frame per channel frame: 20 ms at 192 kHz is
 * 7 680 bytes, so 16 KiB leaves room for longer frames while a corrupt length cannot make us buffer 64 KiB.
 */
export const AUDIOSOCKET_MAX_PAYLOAD_BYTES = 16 * 1024;

/** Asterisk's error codes (bit flags of the original spec); current Asterisk never sends 0xff itself. */
export const AUDIOSOCKET_ERROR_FLAGS = { callerHungUp: 0x01, frameForwarding: 0x02, memory: 0x04 } as const;

export type AudioSocketMessage =
  | { readonly type: 'hangup' }
  /** The call's id, as Asterisk's canonical lower-case string form. */
  | { readonly type: 'uuid'; readonly uuid: string }
  | { readonly type: 'dtmf'; readonly digit: string }
  /** PCM16 LE mono at `sampleRateHz` (a view into the frame: copy it to keep it past the frame's life). */
  | { readonly type: 'audio'; readonly sampleRateHz: number; readonly pcm: Uint8Array }
  /** `code` is the first payload byte, 0 when the frame had none. */
  | { readonly type: 'error'; readonly code: number };

/** The audio format of a slin rate. */
export function slinFormat(sampleRateHz: number): AudioFormat {
  return { encoding: 'pcm16', sampleRateHz };
}

/** The frame type for slin audio at `sampleRateHz`, undefined for a rate AudioSocket cannot carry. */
export function audioSocketKindForRate(sampleRateHz: number): number | undefined {
  return KIND_BY_RATE.get(sampleRateHz);
}

// ---- decoding one frame ----------------------------------------------------------------------------------

/**
 * Decodes one whole frame (header included, exactly as the splitter cut it). Audio `pcm` is a view into
 * `frame`, so it lives as long as the frame does.
 */
export function decodeAudioSocketFrame(frame: Uint8Array): AudioSocketMessage | ProtocolError {
  if (frame.length < AUDIOSOCKET_HEADER_BYTES) return protocolError('invalid-message', `a frame needs a ${AUDIOSOCKET_HEADER_BYTES}-byte header; got ${frame.length} bytes`);
  const kind = frame[0]!;
  const length = (frame[1]! << 8) | frame[2]!;
  if (frame.length !== AUDIOSOCKET_HEADER_BYTES + length) {
    return protocolError('invalid-message', `the header declares ${length} payload bytes but the frame carries ${frame.length - AUDIOSOCKET_HEADER_BYTES}`, kindName(kind));
  }
  const payload = frame.subarray(AUDIOSOCKET_HEADER_BYTES);
  switch (kind) {
    case AUDIOSOCKET_KIND.hangup:
      return { type: 'hangup' };
    case AUDIOSOCKET_KIND.uuid:
      if (length !== 16) return protocolError('invalid-message', `a UUID frame carries 16 bytes; got ${length}`, 'uuid');
      return { type: 'uuid', uuid: formatUuid(payload) };
    case AUDIOSOCKET_KIND.dtmf: {
      const digit = length === 1 ? String.fromCharCode(payload[0]!).toUpperCase() : '';
      if (!/^[0-9*#A-D]$/.test(digit)) return protocolError('invalid-message', `a DTMF frame carries one ASCII digit (0-9, *, #, A-D); got ${length} byte(s)${length === 1 ? ` 0x${hex(payload[0]!)}` : ''}`, 'dtmf');
      return { type: 'dtmf', digit };
    }
    case AUDIOSOCKET_KIND.error:
      return { type: 'error', code: length > 0 ? payload[0]! : 0 };
    default: {
      const sampleRateHz = AUDIOSOCKET_RATES.get(kind);
      if (sampleRateHz === undefined) return protocolError('unknown-event', `AudioSocket has no frame type 0x${hex(kind)} (expected 0x00, 0x01, 0x03, 0x10–0x18 or 0xff)`, `0x${hex(kind)}`);
      if (length % 2 !== 0) return protocolError('invalid-message', `slin audio is 16-bit: ${length} bytes is not a whole number of samples`, kindName(kind));
      return { type: 'audio', sampleRateHz, pcm: payload };
    }
  }
}

/** Lower-case 8-4-4-4-12 hex of 16 bytes in RFC 4122 (network) byte order, as Asterisk's `uuid_parse` reads it. */
export function formatUuid(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text += '-';
    text += hex(bytes[i] ?? 0);
  }
  return text;
}

// ---- the stream splitter ---------------------------------------------------------------------------------

export type SplitResult =
  | { readonly ok: true; readonly frames: Uint8Array[] }
  /** The stream cannot be framed any more (a declared length over the limit): hang up. */
  | { readonly ok: false; readonly frames: Uint8Array[]; readonly error: ProtocolError };

/**
 * Cuts a TCP byte stream into whole frames, whatever the read boundaries: a frame split across reads
 * (even inside its header) is reassembled, several frames in one read come out one by one. Memory is
 * bounded by one frame (header + `maxPayloadBytes`). Each frame returned is its own bytes (a view of the
 * read when it came whole, else a fresh copy), never reused by the splitter. A declared length over the
 * limit fails the stream for good: the frames before it are still returned.
 */
export function createAudioSocketSplitter(options: { maxPayloadBytes?: number } = {}) {
  const maxPayloadBytes = Math.min(options.maxPayloadBytes ?? AUDIOSOCKET_MAX_PAYLOAD_BYTES, 0xffff);
  /** The frame being reassembled across reads: header bytes first, allocated whole once its length is known. */
  const header = new Uint8Array(AUDIOSOCKET_HEADER_BYTES);
  let headerFill = 0;
  let partial: Uint8Array | undefined;
  let partialFill = 0;
  let failed: ProtocolError | undefined;

  function tooLong(kind: number, length: number): ProtocolError {
    return protocolError('invalid-message', `a ${kindName(kind)} frame declares ${length} payload bytes, over the ${maxPayloadBytes}-byte limit: the stream cannot be trusted`, kindName(kind));
  }

  return {
    push(chunk: Uint8Array): SplitResult {
      const frames: Uint8Array[] = [];
      if (failed) return { ok: false, frames, error: failed };
      let at = 0;
      while (at < chunk.length) {
        if (partial) {
          const take = Math.min(partial.length - partialFill, chunk.length - at);
          partial.set(chunk.subarray(at, at + take), partialFill);
          partialFill += take;
          at += take;
          if (partialFill === partial.length) {
            frames.push(partial);
            partial = undefined;
            partialFill = 0;
          }
          continue;
        }
        if (headerFill > 0 || chunk.length - at < AUDIOSOCKET_HEADER_BYTES) {
          // A header split across reads: gather it byte by byte (at most 3).
          header[headerFill++] = chunk[at++]!;
          if (headerFill < AUDIOSOCKET_HEADER_BYTES) continue;
          headerFill = 0;
          const length = (header[1]! << 8) | header[2]!;
          if (length > maxPayloadBytes) return { ok: false, frames, error: (failed = tooLong(header[0]!, length)) };
          partial = new Uint8Array(AUDIOSOCKET_HEADER_BYTES + length);
          partial.set(header);
          partialFill = AUDIOSOCKET_HEADER_BYTES;
          if (length === 0) {
            frames.push(partial);
            partial = undefined;
            partialFill = 0;
          }
          continue;
        }
        const length = (chunk[at + 1]! << 8) | chunk[at + 2]!;
        if (length > maxPayloadBytes) return { ok: false, frames, error: (failed = tooLong(chunk[at]!, length)) };
        const size = AUDIOSOCKET_HEADER_BYTES + length;
        if (chunk.length - at >= size) {
          // The common case: a whole frame inside this read, handed out without a copy.
          frames.push(chunk.subarray(at, at + size));
          at += size;
          continue;
        }
        partial = new Uint8Array(size);
        const take = chunk.length - at;
        partial.set(chunk.subarray(at), 0);
        partialFill = take;
        at += take;
      }
      return { ok: true, frames };
    },
    /** Bytes of an incomplete frame held (for tests and the bounded-memory claim). */
    get heldBytes(): number {
      return headerFill + (partial ? partial.length : 0);
    },
  };
}

export type AudioSocketSplitter = ReturnType<typeof createAudioSocketSplitter>;

// ---- encoding: server → Asterisk -------------------------------------------------------------------------

const HANGUP_FRAME = new Uint8Array([AUDIOSOCKET_KIND.hangup, 0, 0]);

/** `00 00 00`: we end the call (closing the socket says the same). */
export function encodeAudioSocketHangup(): Uint8Array {
  return HANGUP_FRAME.slice();
}

/**
 * slin audio at `sampleRateHz` as one frame, or undefined when there is nothing to send: Asterisk rejects an
 * empty audio payload, and an odd trailing byte (half a sample) is dropped. Callers send 20 ms frames; audio
 * over 65 534 bytes is refused (undefined) rather than split, since no channel frame is that long.
 */
export function encodeAudioSocketAudio(sampleRateHz: number, pcm: Uint8Array): Uint8Array | undefined {
  const kind = audioSocketKindForRate(sampleRateHz);
  const length = pcm.length & ~1;
  if (kind === undefined || length === 0 || length > 0xffff) return undefined;
  const frame = new Uint8Array(AUDIOSOCKET_HEADER_BYTES + length);
  frame[0] = kind;
  frame[1] = length >> 8;
  frame[2] = length & 0xff;
  frame.set(pcm.subarray(0, length), AUDIOSOCKET_HEADER_BYTES);
  return frame;
}

/** How long an audio frame we send plays, in ms (0 for a frame that is not audio). */
export function audioSocketFrameMs(frame: Uint8Array): number {
  const rate = frame.length >= AUDIOSOCKET_HEADER_BYTES ? AUDIOSOCKET_RATES.get(frame[0]!) : undefined;
  if (rate === undefined) return 0;
  return ((frame.length - AUDIOSOCKET_HEADER_BYTES) / 2 / rate) * 1000;
}

// ---- the carrier codec the media node's channel uses -----------------------------------------------------

const IGNORED: CarrierEvent = Object.freeze({ type: 'ignored' });
const EMPTY = new Uint8Array(0);

/**
 * AudioSocket as a `CarrierCodec` for one connection whose audio runs at `sampleRateHz` (the rate of the
 * first audio frame Asterisk sent: the listener waits for it before the call starts). The UUID frame is the
 * `start`, announcing that format both ways (we answer in the rate Asterisk used). Audio at another rate
 * mid-call is a protocol error (Asterisk does not change a channel's codec under a running AudioSocket).
 *
 * Nothing can be recalled once written, and there are no marks: `encodeClear` and `encodeMark` send
 * nothing (the link drops the audio it still holds on a clear). `encodeMedia` of empty audio is an empty
 * array, which the link never writes. The hang-up frame is written by the link when it closes.
 */
export function createAudioSocketCodec(sampleRateHz: number): CarrierCodec {
  const format = slinFormat(sampleRateHz);
  return {
    carrier: 'audiosocket',
    inputFormat: format,
    outputFormat: format,
    capabilities: { marks: false, clear: false },
    decode(message) {
      if (typeof message === 'string') return protocolError('invalid-message', 'AudioSocket is a binary protocol; got text');
      const decoded = decodeAudioSocketFrame(message);
      switch (decoded.type) {
        case 'protocolError':
          return decoded;
        case 'uuid':
          return { type: 'start', streamId: decoded.uuid, callId: decoded.uuid, parameters: {}, format: { input: format, output: format } };
        case 'audio':
          if (decoded.sampleRateHz !== sampleRateHz) {
            return protocolError('invalid-message', `audio at ${decoded.sampleRateHz} Hz on a stream that started at ${sampleRateHz} Hz: dropped`, kindName(audioSocketKindForRate(decoded.sampleRateHz)!));
          }
          return decoded.pcm.length === 0 ? IGNORED : { type: 'media', audio: decoded.pcm };
        case 'dtmf':
          return { type: 'dtmf', digit: decoded.digit };
        case 'hangup':
          return { type: 'stop' };
        case 'error':
          // "Calling party hung up" ends the call; other codes are reported (counted, logged) and the call goes on.
          if (decoded.code & AUDIOSOCKET_ERROR_FLAGS.callerHungUp) return { type: 'stop' };
          return peerError(decoded.code);
      }
    },
    encodeMedia: (_streamId, audio) => encodeAudioSocketAudio(sampleRateHz, audio) ?? EMPTY,
    encodeMark: () => undefined,
    encodeClear: () => undefined,
  };
}

// ---- helpers ---------------------------------------------------------------------------------------------

function peerError(code: number): CarrierProtocolError {
  return { type: 'protocolError', code: 'peer-error', message: `Asterisk reported an AudioSocket error, code 0x${hex(code)}` };
}

function kindName(kind: number): string {
  switch (kind) {
    case AUDIOSOCKET_KIND.hangup:
      return 'hangup';
    case AUDIOSOCKET_KIND.uuid:
      return 'uuid';
    case AUDIOSOCKET_KIND.dtmf:
      return 'dtmf';
    case AUDIOSOCKET_KIND.error:
      return 'error';
    default:
      return AUDIOSOCKET_RATES.has(kind) ? `audio-${AUDIOSOCKET_RATES.get(kind)}` : `0x${hex(kind)}`;
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

function protocolError(code: ProtocolErrorCode, message: string, event?: string): ProtocolError {
  return new ProtocolError(PROTOCOL, code, message, event);
}
