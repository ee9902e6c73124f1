import type { AudioFrame } from '../../audio/format';
import type { SpeechToText, SttSession } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt, type SocketSttSession } from '../streaming/stt-socket';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { createSarvamSttWire, sarvamSttOptions } from './stt-wire';
import { createSarvamTtsWire } from './tts-wire';

export { createSarvamSttWire, decodeSarvamStt, sarvamSttOptionsSchema, sarvamSttWire } from './stt-wire';
export { createSarvamTtsWire, decodeSarvamTts, sarvamTtsOptionsSchema, sarvamTtsWire } from './tts-wire';

export interface SarvamSttTuning {
  /** Silence keep-alive after this long without audio (default 5000 ms). Tests shorten it. */
  readonly keepAliveIntervalMs?: number;
}

export interface SarvamTtsTuning {
  /** Ping interval on idle pooled sockets (default 20 s; the server closes after 60 s idle). */
  readonly keepAliveIntervalMs?: number;
}

/** PCM16 16 kHz mono: the pipeline's input format. */
const BYTES_PER_MS = 32;

/**
 * Sarvam streaming STT (`stt.provider: sarvamai`, /speech-to-text/ws). Sarvam takes audio as base64 JSON, so
 * 20 ms frames are batched into `audioChunkMs` messages (100 ms by default) before they reach the socket
 * base: a thin per-session wrapper, see `batchAudio`.
 */
export function createSarvamStt(deps: SocketProviderDeps, tuning: SarvamSttTuning = {}): SpeechToText & Registrable {
  const inner = createSocketStt(createSarvamSttWire(tuning), deps);
  return {
    ...inner,
    requiresCredential: true,
    async open(options, onEvent) {
      // Validated before connecting: the wire would throw the same error from connect().
      const chunkMs = sarvamSttOptions(options.options).audioChunkMs;
      const session = await inner.open(options, onEvent);
      return chunkMs > 20 ? batchAudio(session as SocketSttSession, chunkMs * BYTES_PER_MS, chunkMs * 2) : session;
    },
  };
}

/** Sarvam Bulbul streaming TTS (`tts.provider: sarvamai`, /text-to-speech/ws). */
export function createSarvamTts(deps: SocketProviderDeps, tuning: SarvamTtsTuning = {}): SocketTts {
  return { ...createSocketTts(createSarvamTtsWire(tuning), deps), requiresCredential: true };
}

/**
 * A session that hands the inner one `chunkBytes` of audio at a time. A part-filled chunk goes out when
 * `maxHoldMs` pass without it filling (audio stopped), on finalize (so the flush covers everything written)
 * and on close. The replay ring, keep-alive and reconnects of the inner session see the batched writes.
 */
export function batchAudio(inner: SocketSttSession, chunkBytes: number, maxHoldMs: number): SocketSttSession {
  let pending: Uint8Array = new Uint8Array(chunkBytes);
  let filled = 0;
  let format: AudioFrame['format'] | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (!filled || !format) return;
    const data = pending.subarray(0, filled);
    pending = new Uint8Array(chunkBytes);
    filled = 0;
    inner.write({ format, data });
  };

  return {
    write(frame) {
      if (closed) return;
      format = frame.format;
      let offset = 0;
      while (offset < frame.data.byteLength) {
        const take = Math.min(chunkBytes - filled, frame.data.byteLength - offset);
        pending.set(frame.data.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === chunkBytes) flush();
      }
      if (filled && !timer) timer = setTimeout(flush, maxHoldMs);
    },
    finalize() {
      if (closed) return;
      flush();
      inner.finalize();
    },
    close() {
      if (!closed) {
        flush();
        closed = true;
      }
      return inner.close();
    },
    get stats() {
      return inner.stats;
    },
  } satisfies SttSession & SocketSttSession;
}
