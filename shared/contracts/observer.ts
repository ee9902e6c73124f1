import type { ProviderError } from './errors';

export type Stage = 'stt' | 'llm' | 'tts';

/**
 * The per-turn timeline (clock ms). Voice-to-voice latency = firstAudioOut − userSpeechEnd.
 * Unset marks did not happen in this turn (a greeting has no user speech, a cut turn may have no audio).
 */
export interface TurnMetrics {
  readonly callId: string;
  readonly turnId: number;
  readonly kind: AssistantTurnKind;
  userSpeechEnd?: number;
  sttFinal?: number;
  llmRequest?: number;
  llmFirstToken?: number;
  ttsRequest?: number;
  ttsFirstAudio?: number;
  firstAudioOut?: number;
  voiceToVoiceMs?: number;
  /** Runtime overhead per stage, ms: endOfTurn→llmRequest, firstToken→ttsRequest, ttsFirstAudio→firstAudioOut. */
  overheadMs?: { endOfTurnToLlm: number; tokenToTts: number; audioToChannel: number };
  preemptive?: boolean;
  interrupted: boolean;
  inputTokens: number;
  outputTokens: number;
  providers: { stt?: string; llm?: string; tts?: string };
  /** Knowledge retrieval before the LLM request (shared/engine/retrieval.ts): time it took, ms (capped at the budget). */
  retrievalMs?: number;
  /** Passages given to the LLM. */
  retrievalHits?: number;
  /** The retrieval budget ran out: the turn went on without the passages still outstanding. */
  retrievalTimedOut?: boolean;
}

export type AssistantTurnKind = 'greeting' | 'reply' | 'reprompt' | 'fallback' | 'goodbye';

export type CallEvent =
  | { readonly type: 'callStarted'; readonly callId: string; readonly atMs: number }
  | { readonly type: 'userSpeechStarted'; readonly atMs: number }
  | { readonly type: 'userSpeechEnded'; readonly atMs: number }
  /** What the STT has of the caller's current utterance: `final: false` may still change (captions). */
  | { readonly type: 'transcript'; readonly text: string; readonly final: boolean; readonly atMs: number }
  /** The next piece of an assistant turn's text, as it goes to speech (captions, text streams). */
  | { readonly type: 'assistantText'; readonly turnId: number; readonly text: string; readonly atMs: number }
  | { readonly type: 'userMessage'; readonly text: string; readonly atMs: number; readonly source: 'speech' | 'dtmf' | 'text' }
  /** `text` is what the caller heard (the history entry); `generatedText` all the turn had produced when it ended. */
  | { readonly type: 'assistantMessage'; readonly turnId: number; readonly text: string; readonly generatedText: string; readonly interrupted: boolean; readonly atMs: number }
  | { readonly type: 'interruption'; readonly phase: 'paused' | 'confirmed' | 'resumed'; readonly turnId: number; readonly atMs: number }
  | { readonly type: 'turnMetrics'; readonly metrics: Readonly<TurnMetrics> }
  | { readonly type: 'providerError'; readonly stage: Stage; readonly provider: string; readonly error: ProviderError; readonly action: 'retry' | 'fallback' | 'fallbackMessage' | 'ignored' }
  | { readonly type: 'toolCall'; readonly id: string; readonly name: string; readonly arguments: string; readonly result: string; readonly atMs: number }
  | { readonly type: 'idleReprompt'; readonly count: number; readonly atMs: number }
  | { readonly type: 'dtmf'; readonly digits: string; readonly atMs: number }
  | { readonly type: 'inboundOverflow'; readonly droppedFrames: number; readonly atMs: number }
  | { readonly type: 'callEnded'; readonly callId: string; readonly reason: string; readonly atMs: number };

/** One interface for logs, traces, metrics and persistence sinks; each sink lives outside the engine. */
export interface CallObserver {
  onEvent(event: CallEvent): void;
}

export function combineObservers(...observers: CallObserver[]): CallObserver {
  return {
    onEvent(event) {
      for (const o of observers) {
        try {
          o.onEvent(event);
        } catch {
          // A failing sink must never break the call.
        }
      }
    },
  };
}

export const nullObserver: CallObserver = { onEvent() {} };
