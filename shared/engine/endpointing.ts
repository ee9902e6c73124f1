import type { TurnDecision, TurnDetector, TurnInput } from '../contracts/turn';
import { joinText, normalisedWords } from './words';

export interface EndpointingOptions {
  readonly silenceMs: number;
  readonly minSpeechMs: number;
  readonly finalWaitMs: number;
  readonly sttEndOfTurn: boolean;
  readonly preemptiveGeneration: boolean;
  readonly preemptiveSilenceMs: number;
  readonly frameMs?: number;
}

const NONE: readonly TurnDecision[] = Object.freeze([]);

/**
 * The default turn detector: VAD silence combined with STT finals. The turn ends when the caller has been
 * silent for `silenceMs` and every word heard is final; pending interim words trigger a finalize and, after
 * `finalWaitMs`, are taken as they are. The STT's own end-of-turn event ends the turn at once.
 */
export function createEndpointing(options: EndpointingOptions): TurnDetector {
  const frameMs = options.frameMs ?? 20;
  let speaking = false;
  let voicedRunMs = 0;
  let lastVoicedMs = 0;
  let speechEndedAt: number | undefined;
  let awaitingFinalSince: number | undefined;
  let finals: string[] = [];
  let interim = '';
  let lastFinalAt: number | undefined;
  let preemptiveText: string | undefined;
  /** Text committed without its final: the STT's late final for the same words must not open a new turn. */
  let lateFinalOf: string | undefined;

  const currentText = () => joinText([...finals, interim]);

  function resetTurn(): void {
    speechEndedAt = undefined;
    awaitingFinalSince = undefined;
    finals = [];
    interim = '';
    lastFinalAt = undefined;
    preemptiveText = undefined;
    lastVoicedMs = 0;
  }

  function commit(text: string, out: TurnDecision[]): void {
    out.push({ type: 'endOfTurn', text, speechEndMs: speechEndedAt ?? (lastVoicedMs > 0 ? lastVoicedMs : undefined), sttFinalMs: lastFinalAt });
    speaking = false;
    voicedRunMs = 0;
    resetTurn();
  }

  function tryCommit(now: number, out: TurnDecision[]): void {
    if (speechEndedAt === undefined) return;
    if (interim === '' && finals.length > 0) return commit(currentText(), out);
    if (awaitingFinalSince === undefined) {
      // Words still interim (or none yet): ask the STT to flush and wait a bounded time for its final.
      awaitingFinalSince = now;
      out.push({ type: 'finalize' });
    }
  }

  return {
    onInput(input: TurnInput): readonly TurnDecision[] {
      switch (input.type) {
        case 'vad': {
          if (input.voiced) {
            voicedRunMs += frameMs;
            if (!speaking && voicedRunMs >= options.minSpeechMs) {
              speaking = true;
              lastVoicedMs = input.atMs;
              const out: TurnDecision[] = [{ type: 'speechStarted', atMs: input.atMs - voicedRunMs }];
              // The caller resumed before the turn was committed: it is the same turn, keep its words.
              speechEndedAt = undefined;
              awaitingFinalSince = undefined;
              if (preemptiveText !== undefined) {
                preemptiveText = undefined;
                out.push({ type: 'discardPreemptive' });
              }
              return out;
            }
            if (speaking) {
              lastVoicedMs = input.atMs;
              // The caller went on after a pause that offered a preemptive reply (still within silenceMs): drop it.
              if (preemptiveText !== undefined && voicedRunMs >= options.minSpeechMs) {
                preemptiveText = undefined;
                return [{ type: 'discardPreemptive' }];
              }
            }
            return NONE;
          }
          voicedRunMs = 0;
          if (!speaking) return NONE;
          const silenceMs = input.atMs - lastVoicedMs;
          let out: TurnDecision[] | undefined;
          if (options.preemptiveGeneration && preemptiveText === undefined && silenceMs >= options.preemptiveSilenceMs) {
            const text = currentText();
            if (text) {
              preemptiveText = text;
              (out ??= []).push({ type: 'preemptive', text });
            }
          }
          if (silenceMs >= options.silenceMs) {
            speaking = false;
            speechEndedAt = lastVoicedMs;
            (out ??= []).push({ type: 'speechEnded', atMs: lastVoicedMs });
            tryCommit(input.atMs, out);
          }
          return out ?? NONE;
        }
        case 'interim':
          interim = input.text.trim();
          return NONE;
        case 'final': {
          const text = input.text.trim();
          const late = lateFinalOf;
          lateFinalOf = undefined;
          // The answer to a finalize we stopped waiting for: its words already went out with that turn.
          if (late !== undefined && !speaking && finals.length === 0 && containsWords(late, text)) return NONE;
          if (text) finals.push(text);
          interim = '';
          lastFinalAt = input.atMs;
          if (speechEndedAt === undefined) return NONE;
          const out: TurnDecision[] = [];
          tryCommit(input.atMs, out);
          return out;
        }
        case 'sttEndOfTurn': {
          if (!options.sttEndOfTurn) return NONE;
          const text = input.text?.trim() || currentText();
          if (!text) return NONE;
          if (lastFinalAt === undefined) lastFinalAt = input.atMs;
          const out: TurnDecision[] = [];
          commit(text, out);
          return out;
        }
        case 'tick': {
          if (awaitingFinalSince === undefined || input.atMs - awaitingFinalSince < options.finalWaitMs) return NONE;
          const text = currentText();
          const out: TurnDecision[] = [];
          if (text) {
            commit(text, out);
            lateFinalOf = text;
          } else resetTurn(); // Sound without words (a cough, a door): no turn.
          return out;
        }
      }
    },
    nextDeadline: () => (awaitingFinalSince === undefined ? undefined : awaitingFinalSince + options.finalWaitMs),
    reset() {
      speaking = false;
      voicedRunMs = 0;
      resetTurn();
    },
  };
}

/** Every word of `part` appears in `whole`, in order (a late final repeats the committed words or fewer). */
function containsWords(whole: string, part: string): boolean {
  const w = normalisedWords(whole);
  let i = 0;
  for (const word of normalisedWords(part)) {
    while (i < w.length && w[i] !== word) i++;
    if (i++ >= w.length) return false;
  }
  return true;
}
