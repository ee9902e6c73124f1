import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { createSarvamSttWire } from './stt-wire';
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

/**
 * Sarvam streaming STT (`stt.provider: sarvamai`, /speech-to-text/ws). Sarvam takes audio as base64 JSON, so
 * the wire's `audioMessageMs` has the socket base send `audioChunkMs` messages (100 ms by default).
 */
export function createSarvamStt(deps: SocketProviderDeps, tuning: SarvamSttTuning = {}): SpeechToText & Registrable {
  return { ...createSocketStt(createSarvamSttWire(tuning), deps), requiresCredential: true };
}

/** Sarvam Bulbul streaming TTS (`tts.provider: sarvamai`, /text-to-speech/ws). */
export function createSarvamTts(deps: SocketProviderDeps, tuning: SarvamTtsTuning = {}): SocketTts {
  return { ...createSocketTts(createSarvamTtsWire(tuning), deps), requiresCredential: true };
}
