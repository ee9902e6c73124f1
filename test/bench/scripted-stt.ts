import { pcm16View } from '../../shared/audio/format';
import type { Clock } from '../../shared/contracts/clock';
import type { SpeechToText, SttEvent } from '../../shared/contracts/stt';

/**
 * A cheap STT for load benchmarks: it finds word-sized bursts of energy (not which word) and reports the
 * script's words one per burst. A real STT costs the runtime one socket write per frame; the tone-decoding
 * test STT costs ~20 µs per frame, which would measure the double instead of the runtime.
 */
export function createScriptedStt(clock: Clock, script: string): SpeechToText {
  const words = script.split(' ');
  return {
    id: 'fake-stt',
    capabilities: { interimResults: true, finalize: true, wordTimings: false, endOfTurn: false, edgeCapable: true },
    async open(_options, onEvent) {
      let heard = 0;
      let inBurst = false;
      let closed = false;
      const emit = (e: SttEvent) => clock.setTimeout(() => !closed && onEvent(e), 0);
      return {
        write(frame) {
          const pcm = pcm16View(frame.data);
          // Peak of a few samples is enough to tell a tone from digital silence.
          const loud = Math.abs(pcm[40]!) + Math.abs(pcm[120]!) + Math.abs(pcm[200]!) + Math.abs(pcm[280]!) > 1200;
          if (loud && !inBurst) inBurst = true;
          if (!loud && inBurst) {
            inBurst = false;
            heard++;
            emit({ type: 'interim', text: words.slice(0, Math.min(heard, words.length)).join(' ') });
          }
        },
        finalize() {
          const text = words.slice(0, Math.min(heard, words.length)).join(' ');
          heard = 0;
          emit({ type: 'final', text, confidence: text ? 0.9 : 0 });
        },
        async close() {
          closed = true;
        },
      };
    },
  };
}
