import { backchannelWordSet, isEcho, substantiveWordCount } from './words';

export interface InterruptionOptions {
  readonly enabled: boolean;
  readonly mode: 'words' | 'vad-only';
  readonly minSpeechMs: number;
  readonly minWords: number;
  readonly vadOnlyConfirmMs: number;
  readonly falseInterruptionMs: number;
  readonly backchannels: readonly string[];
  readonly echoGuard: boolean;
  readonly dtmfBargeIn: boolean;
  readonly frameMs?: number;
}

export type InterruptionInput =
  /** An assistant turn began (thinking or speaking): caller speech may now interrupt it. */
  | { readonly type: 'assistantActive'; readonly turnId: number; readonly atMs: number }
  /** The assistant turn finished playing (or was cancelled). */
  | { readonly type: 'assistantIdle'; readonly turnId: number; readonly atMs: number }
  | { readonly type: 'vad'; readonly voiced: boolean; readonly atMs: number }
  /** The caller's current utterance as the STT has it (interim or final). */
  | { readonly type: 'transcript'; readonly text: string; readonly atMs: number }
  | { readonly type: 'dtmf'; readonly atMs: number }
  | { readonly type: 'tick'; readonly atMs: number };

export type InterruptionDecision =
  /** Step 1: stop the audio at once (clear the channel's lead); generation goes on into our buffer. */
  | { readonly type: 'pause'; readonly turnId: number }
  /** Step 2: real interruption: cancel LLM and TTS, cut history to what was heard. */
  | { readonly type: 'confirm'; readonly turnId: number }
  /** False alarm: play on from where playout stopped. */
  | { readonly type: 'resume'; readonly turnId: number };

export interface InterruptionPolicy {
  onInput(input: InterruptionInput): readonly InterruptionDecision[];
  nextDeadline(): number | undefined;
  readonly phase: 'idle' | 'active' | 'paused';
}

const NONE: readonly InterruptionDecision[] = Object.freeze([]);
/** Silence that ends a run of sound already known to be echo (longer than the gap between two words). */
const ECHO_RUN_GAP_MS = 200;

/**
 * Barge-in in two steps. Caller speech of `minSpeechMs` over the assistant pauses it; words that are not
 * backchannels (and not the assistant's own echo) confirm; nothing confirming within `falseInterruptionMs`
 * resumes. `vad-only` confirms on continuous speech alone, for STTs without interim results.
 */
export function createInterruptionPolicy(options: InterruptionOptions, recentAssistantWords: () => readonly string[]): InterruptionPolicy {
  const frameMs = options.frameMs ?? 20;
  const backchannels = backchannelWordSet(options.backchannels);
  let phase: 'idle' | 'active' | 'paused' = 'idle';
  let turnId = -1;
  let voicedRunMs = 0;
  let voicedNow = false;
  let speechSinceActive = false;
  let pausedAt = 0;
  /** The caller's current sound was already recognised as the assistant's echo: it does not pause output. */
  let echoInRun = false;
  let unvoicedMs = 0;

  function confirm(): InterruptionDecision[] {
    const out: InterruptionDecision[] = phase === 'paused' ? [] : [{ type: 'pause', turnId }];
    out.push({ type: 'confirm', turnId });
    phase = 'idle';
    return out;
  }

  function resume(): InterruptionDecision[] {
    phase = 'active';
    voicedRunMs = 0;
    return [{ type: 'resume', turnId }];
  }

  return {
    get phase() {
      return phase;
    },
    onInput(input) {
      switch (input.type) {
        case 'assistantActive':
          phase = 'active';
          turnId = input.turnId;
          voicedRunMs = 0;
          speechSinceActive = voicedNow;
          return NONE;
        case 'assistantIdle':
          if (input.turnId === turnId) phase = 'idle';
          return NONE;
        case 'vad':
          voicedNow = input.voiced;
          if (!input.voiced) {
            voicedRunMs = 0;
            unvoicedMs += frameMs;
            if (unvoicedMs >= ECHO_RUN_GAP_MS) echoInRun = false;
            // A pause that outlived its window while the caller was still making sound ends when they stop.
            if (phase === 'paused' && input.atMs - pausedAt >= options.falseInterruptionMs) return resume();
            return NONE;
          }
          voicedRunMs += frameMs;
          unvoicedMs = 0;
          if (phase === 'idle' || !options.enabled) return NONE;
          speechSinceActive = true;
          if (phase === 'active' && voicedRunMs >= options.minSpeechMs && !echoInRun) {
            phase = 'paused';
            pausedAt = input.atMs;
            return [{ type: 'pause', turnId }];
          }
          if (phase === 'paused' && options.mode === 'vad-only' && voicedRunMs >= options.vadOnlyConfirmMs) return confirm();
          return NONE;
        case 'transcript': {
          if (phase === 'idle' || !options.enabled || !speechSinceActive) return NONE;
          const echo = options.echoGuard && isEcho(input.text, recentAssistantWords());
          // Our own voice came back: no need to sit out the false-interruption window.
          if (echo) {
            echoInRun = true;
            return phase === 'paused' ? resume() : NONE;
          }
          return substantiveWordCount(input.text, backchannels) >= options.minWords ? confirm() : NONE;
        }
        case 'dtmf':
          if (phase === 'idle' || !options.dtmfBargeIn) return NONE;
          return confirm();
        case 'tick':
          if (phase !== 'paused' || voicedNow || input.atMs - pausedAt < options.falseInterruptionMs) return NONE;
          return resume();
      }
    },
    // While the caller is voiced a tick cannot resume (the first silent frame does): no deadline, or a past one
    // would have the engine re-arm a zero-delay timer until they stop.
    nextDeadline: () => (phase === 'paused' && !voicedNow ? pausedAt + options.falseInterruptionMs : undefined),
  };
}
