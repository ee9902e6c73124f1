import { pcm16View, type AudioFrame } from '../../shared/audio/format';
import type { Clock } from '../../shared/contracts/clock';
import type { ProviderError } from '../../shared/contracts/errors';
import type { SpeechToText, SttCapabilities, SttEvent, SttSession } from '../../shared/contracts/stt';
import { createToneDecoder } from './tones';

export interface FakeSttOptions {
  readonly id?: string;
  readonly clock: Clock;
  /** Interim results after every word (false: finals only, like a batch-ish STT). */
  readonly interim?: boolean;
  /** Delay of every result after the audio that caused it. */
  readonly latencyMs?: number;
  /** The STT's own endpointing: a final after this much silence following words. */
  readonly autoFinalSilenceMs?: number;
  /** Emit an `endOfTurn` event with each auto final (an STT with built-in turn detection). */
  readonly endOfTurnEvents?: boolean;
  /** A provider that never answers a finalize request. */
  readonly ignoresFinalize?: boolean;
  /** How long opening takes (the provider's connect time). */
  readonly connectDelayMs?: number;
  /** Opening fails with this error. */
  readonly failOpen?: ProviderError;
  /** After this many frames the first session reports this error (later sessions work). */
  readonly failAfterFrames?: { frames: number; error: ProviderError };
}

/**
 * A streaming STT that really listens: words come from the tone alphabet decoded out of the frames it is
 * given, so frames dropped before it means words missing in the transcript.
 */
export function createFakeStt(options: FakeSttOptions) {
  const stats = { opened: 0, framesReceived: 0, finalizeCalls: 0, closed: 0, transcripts: [] as string[], words: [] as string[] };
  const capabilities: SttCapabilities = {
    interimResults: options.interim ?? true,
    finalize: true,
    wordTimings: false,
    endOfTurn: options.endOfTurnEvents ?? false,
    edgeCapable: true,
  };
  const stt: SpeechToText = {
    id: options.id ?? 'fake-stt',
    capabilities,
    async open(_opts, onEvent): Promise<SttSession> {
      const { clock } = options;
      if (options.connectDelayMs) await new Promise<void>((resolve) => clock.setTimeout(resolve, options.connectDelayMs!));
      if (options.failOpen) throw options.failOpen;
      stats.opened++;
      let pending: string[] = [];
      let silentMs = 0;
      let closed = false;
      let failed = false;
      let frames = 0;
      const session = stats.opened;
      const emit = (event: SttEvent) => {
        clock.setTimeout(() => !closed && onEvent(event), options.latencyMs ?? 0);
      };
      const emitFinal = (endOfTurn: boolean) => {
        const text = pending.join(' ');
        pending = [];
        if (text) stats.transcripts.push(text);
        emit({ type: 'final', text, confidence: text ? 0.95 : 0 });
        if (endOfTurn && text) emit({ type: 'endOfTurn', text });
      };
      const decoder = createToneDecoder(16_000, (word) => {
        pending.push(word);
        stats.words.push(word);
        if (capabilities.interimResults) emit({ type: 'interim', text: pending.join(' ') });
      });
      return {
        write(frame: AudioFrame) {
          if (closed || failed) return;
          stats.framesReceived++;
          frames++;
          if (options.failAfterFrames && session === 1 && frames >= options.failAfterFrames.frames) {
            failed = true;
            emit({ type: 'error', error: options.failAfterFrames.error });
            return;
          }
          decoder.push(pcm16View(frame.data));
          if (decoder.inWord) silentMs = 0;
          else silentMs += 20;
          if (options.autoFinalSilenceMs !== undefined && pending.length > 0 && silentMs >= options.autoFinalSilenceMs) {
            emitFinal(options.endOfTurnEvents ?? false);
          }
        },
        finalize() {
          stats.finalizeCalls++;
          if (options.ignoresFinalize) return;
          decoder.flush();
          emitFinal(false);
        },
        async close() {
          closed = true;
          stats.closed++;
        },
      };
    },
  };
  return { stt, stats };
}
