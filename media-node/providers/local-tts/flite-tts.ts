/**
 * TTS provider `local`: Flite in worker threads, offline, no key. Each pushed piece is synthesised whole (Flite
 * runs ~40× faster than real time) and delivered in order; a stream keeps at most LOOKAHEAD pieces in the
 * pool so one long answer cannot starve another call's first sentence. The worker returns Flite's WAV; it is
 * decoded and converted here (a few µs per 20 ms frame), keeping the worker free of TypeScript.
 */
import { z } from 'zod';
import { createAudioConverter } from '../../../shared/audio/convert';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, sameFormat, type AudioFormat } from '../../../shared/audio/format';
import { createSpeexResamplerFactory, type ResamplerFactory } from '../../../shared/audio/resampler';
import { decodeWav, WavError } from '../../../shared/audio/wav';
import { asProviderError, ProviderError } from '../../../shared/contracts/errors';
import type { TextToSpeech, TtsCapabilities, TtsEvent, TtsStream, TtsStreamOptions } from '../../../shared/contracts/tts';
import type { Registrable } from '../../../shared/providers/registry';
import { loadWasmModulesNode } from '../../audio/wasm-node';
import { createFlitePool, type FlitePoolOptions } from './flite-pool';
import { DEFAULT_FLITE_VOICE, FLITE_VOICES, isFliteVoice, type FliteVoice } from './flite-voices';

export const LocalTtsBlockOptions = z.object({
  /** Speaking rate: 1 normal, 2 twice as fast (Flite's duration_stretch = 1 / speed). */
  speed: z.number().min(0.5).max(2).optional(),
});

/** Flite's own output is PCM16 16 kHz (kal: 8 kHz); the others are converted from it once per piece. */
export const LOCAL_TTS_FORMATS: readonly AudioFormat[] = Object.freeze([
  PIPELINE_FORMAT,
  MULAW_8K,
  ALAW_8K,
  Object.freeze({ encoding: 'pcm16', sampleRateHz: 8_000 } as const),
]);

export const LOCAL_TTS_CAPABILITIES: TtsCapabilities = Object.freeze({ wordTimings: false, outputFormats: LOCAL_TTS_FORMATS, edgeCapable: false });

/** Pieces of one stream in the pool at once: one synthesising, the next queued behind it. */
const LOOKAHEAD = 2;
/** Zeros appended before resampling so the filter's delay line lets the last few ms of speech out. */
const FLUSH_MS = 20;

export interface LocalTtsOptions extends Omit<FlitePoolOptions, 'workers'> {
  /** Default voice when the block names none: one of FLITE_VOICES (default slt). */
  readonly voice?: string;
  readonly workers?: number;
  /** For voices or formats that need resampling (default: the speex WASM, loaded on first use). */
  readonly resamplers?: ResamplerFactory;
}

export interface LocalTts extends TextToSpeech, Registrable {
  /** Starts the worker threads and compiles Flite now, so the first sentence does not pay for it. */
  prewarm(): Promise<void>;
  readonly stats: { readonly spawned: number; readonly crashed: number };
  close(): Promise<void>;
}

export function createLocalTts(options: LocalTtsOptions = {}): LocalTts {
  const defaultVoice = options.voice ?? DEFAULT_FLITE_VOICE;
  if (!isFliteVoice(defaultVoice)) throw unknownVoice(defaultVoice);
  const pool = createFlitePool(options);
  let resamplers: Promise<ResamplerFactory> | undefined = options.resamplers && Promise.resolve(options.resamplers);
  const loadResamplers = () => (resamplers ??= loadWasmModulesNode().then((modules) => createSpeexResamplerFactory(modules.speexResampler)));

  /** Flite's WAV → the stream's format. */
  async function toFormat(wavBytes: Uint8Array, format: AudioFormat): Promise<Uint8Array> {
    const wav = decodeWav(wavBytes);
    if (wav instanceof WavError) throw new ProviderError('LOCAL_TTS_FAILED', `Flite wrote an unreadable WAV: ${wav.message}`, false, 'internal');
    if (sameFormat(wav.format, format)) return wav.data;
    const converter = createAudioConverter(wav.format, format, await loadResamplers());
    try {
      const padded = new Uint8Array(wav.data.length + Math.round((wav.format.sampleRateHz * FLUSH_MS) / 1000) * 2);
      padded.set(wav.data);
      return converter.convert(padded);
    } finally {
      converter.destroy();
    }
  }

  function stream(opts: TtsStreamOptions, onEvent: (event: TtsEvent) => void): TtsStream {
    const waiting: { index: number; text: string }[] = [];
    const inPool: { index: number; audio: Promise<Uint8Array>; cancel(): void }[] = [];
    let pushed = 0;
    let ended = false;
    let stopped = false;
    let delivering = false;

    const voice = opts.voice ?? defaultVoice;
    const parsed = LocalTtsBlockOptions.safeParse(opts.options);
    const setupError = !isFliteVoice(voice)
      ? unknownVoice(voice)
      : !LOCAL_TTS_FORMATS.some((f) => sameFormat(f, opts.format))
        ? new ProviderError('LOCAL_TTS_FORMAT', `format ${opts.format.encoding}/${opts.format.sampleRateHz} Hz is not offered; use one of capabilities.outputFormats`, false, 'bad-request')
        : !parsed.success
          ? new ProviderError('LOCAL_TTS_OPTIONS', `invalid options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, false, 'bad-request')
          : undefined;
    const durationStretch = 1 / (parsed.data?.speed ?? 1);

    function fail(error: ProviderError): void {
      if (stopped) return;
      stop();
      onEvent({ type: 'error', error });
    }

    function stop(): void {
      stopped = true;
      waiting.length = 0;
      for (const piece of inPool.splice(0)) piece.cancel();
      opts.signal.removeEventListener('abort', stop);
    }

    function fill(): void {
      while (!stopped && inPool.length < LOOKAHEAD && waiting.length > 0) {
        const piece = waiting.shift()!;
        if (!piece.text.trim()) {
          // Nothing to say (Flite would still write 185 ms of silence).
          inPool.push({ index: piece.index, audio: Promise.resolve(new Uint8Array(0)), cancel: () => {} });
          continue;
        }
        const job = pool.synthesize({ text: piece.text, voice: voice as FliteVoice, durationStretch });
        const audio = job.wav.then((wav) => toFormat(wav, opts.format));
        audio.catch(() => undefined); // a cancelled stream never awaits it
        inPool.push({ index: piece.index, audio, cancel: job.cancel });
      }
      void deliver();
    }

    /** Emits finished pieces strictly in push order. */
    async function deliver(): Promise<void> {
      if (delivering) return;
      delivering = true;
      try {
        while (!stopped && inPool.length > 0) {
          const head = inPool[0]!;
          const data = await head.audio;
          if (stopped) return;
          inPool.shift();
          if (data.length > 0) onEvent({ type: 'audio', data, textIndex: head.index });
          fill();
        }
        if (!stopped && ended && waiting.length === 0 && inPool.length === 0) {
          stop();
          onEvent({ type: 'done' });
        }
      } catch (error) {
        fail(asProviderError('local', error));
      } finally {
        delivering = false;
      }
    }

    if (setupError) queueMicrotask(() => fail(setupError));
    else if (opts.signal.aborted) stopped = true;
    else opts.signal.addEventListener('abort', stop, { once: true });

    return {
      push(text) {
        const index = pushed++;
        if (!stopped && !ended && !setupError) {
          waiting.push({ index, text });
          fill();
        }
        return index;
      },
      end() {
        if (ended) return;
        ended = true;
        if (!setupError) void deliver();
      },
      cancel() {
        if (!stopped) stop();
      },
    };
  }

  return {
    id: 'local',
    optionsSchema: LocalTtsBlockOptions,
    capabilities: LOCAL_TTS_CAPABILITIES,
    stream,
    prewarm: () => pool.prewarm(),
    stats: pool.stats,
    close: () => pool.close(),
  };
}

function unknownVoice(voice: string): ProviderError {
  return new ProviderError('LOCAL_TTS_VOICE', `voice "${voice}" is not built into Flite; use one of ${FLITE_VOICES.join(', ')}`, false, 'bad-request');
}
