import { type AudioFormat, PIPELINE_FORMAT, pcm16Bytes } from '../../shared/audio/format';
import { alawEncode, mulawEncode } from '../../shared/audio/g711';
import type { Clock } from '../../shared/contracts/clock';
import type { ProviderError } from '../../shared/contracts/errors';
import type { TextToSpeech, TtsEvent, TtsStream } from '../../shared/contracts/tts';
import { splitWords, synthesizeWords } from './tones';

export interface FakeTtsOptions {
  readonly id?: string;
  readonly clock: Clock;
  readonly formats?: readonly AudioFormat[];
  /** Delay before each piece's first audio. */
  readonly firstAudioDelayMs?: number;
  /** Audio is delivered in chunks of this length... */
  readonly chunkMs?: number;
  /** ...each taking chunkMs × this long to make (0: as fast as possible). */
  readonly realTimeFactor?: number;
  readonly wordTimings?: boolean;
  /** The stream reports this error once this many pieces have been voiced. */
  readonly failAfterPieces?: { pieces: number; error: ProviderError };
  /** A broken provider that keeps sending audio after cancel() (the engine must drop it). */
  readonly ignoresCancel?: boolean;
}

/** A TTS that speaks tone-alphabet words: audio length follows the text, word timings included. */
export function createFakeTts(options: FakeTtsOptions) {
  const stats = { streams: 0, cancelled: 0, pushed: [] as string[], formatsAsked: [] as AudioFormat[], eventsAfterCancel: 0 };
  const tts: TextToSpeech = {
    id: options.id ?? 'fake-tts',
    capabilities: { wordTimings: options.wordTimings ?? true, outputFormats: options.formats ?? [PIPELINE_FORMAT], edgeCapable: true },
    stream(opts, onEvent): TtsStream {
      stats.streams++;
      stats.formatsAsked.push(opts.format);
      const { clock } = options;
      const queue: { index: number; text: string }[] = [];
      let next = 0;
      let ended = false;
      let cancelled = false;
      let running = false;
      let producedMs = 0;
      let voiced = 0;
      const sleep = (ms: number) => new Promise<void>((r) => (ms > 0 ? clock.setTimeout(r, ms) : r()));
      const send = (event: TtsEvent) => {
        if (cancelled) {
          if (!options.ignoresCancel) return;
          stats.eventsAfterCancel++;
        }
        onEvent(event);
      };

      async function run(): Promise<void> {
        running = true;
        while (queue.length > 0 && (!cancelled || options.ignoresCancel)) {
          const piece = queue.shift()!;
          if (options.failAfterPieces && voiced >= options.failAfterPieces.pieces) {
            send({ type: 'error', error: options.failAfterPieces.error });
            running = false;
            return;
          }
          const { pcm, spans } = synthesizeWords(splitWords(piece.text), opts.format.sampleRateHz);
          const bytes = encode(pcm, opts.format);
          if (options.wordTimings ?? true) {
            send({ type: 'words', words: spans.map((s) => ({ word: s.word, startMs: s.startMs + producedMs, endMs: s.endMs + producedMs })) });
          }
          await sleep(options.firstAudioDelayMs ?? 0);
          const chunkBytes = Math.round(((options.chunkMs ?? 100) * opts.format.sampleRateHz) / 1000) * (opts.format.encoding === 'pcm16' ? 2 : 1);
          for (let at = 0; at < bytes.length; at += chunkBytes) {
            if (cancelled && !options.ignoresCancel) break;
            if (at > 0) await sleep((options.chunkMs ?? 100) * (options.realTimeFactor ?? 0));
            send({ type: 'audio', data: bytes.slice(at, at + chunkBytes), textIndex: piece.index });
          }
          producedMs += (bytes.length / (opts.format.encoding === 'pcm16' ? 2 : 1) / opts.format.sampleRateHz) * 1000;
          voiced++;
        }
        running = false;
        if (ended && queue.length === 0) send({ type: 'done' });
      }

      return {
        push(text) {
          stats.pushed.push(text);
          const index = next++;
          queue.push({ index, text });
          if (!running) void run();
          return index;
        },
        end() {
          ended = true;
          if (!running && queue.length === 0) send({ type: 'done' });
        },
        cancel() {
          if (cancelled) return;
          cancelled = true;
          stats.cancelled++;
        },
      };
    },
  };
  return { tts, stats };
}

function encode(pcm: Int16Array, format: AudioFormat): Uint8Array {
  if (format.encoding === 'pcm16') return pcm16Bytes(pcm).slice();
  const out = new Uint8Array(pcm.length);
  if (format.encoding === 'mulaw') mulawEncode(pcm, out);
  else alawEncode(pcm, out);
  return out;
}
