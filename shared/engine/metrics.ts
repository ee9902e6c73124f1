import type { AssistantTurnKind, TurnMetrics } from '../contracts/observer';

export function newTurnMetrics(callId: string, turnId: number, kind: AssistantTurnKind): TurnMetrics {
  return { callId, turnId, kind, interrupted: false, inputTokens: 0, outputTokens: 0, providers: {} };
}

/** Internal marks that feed the overhead figures but are not part of the persisted timeline. */
export interface OverheadMarks {
  endOfTurnAt?: number;
  firstPieceAt?: number;
}

/** Derive voice-to-voice latency and the runtime's own overhead per stage once the turn is over. */
export function completeTurnMetrics(m: TurnMetrics, marks: OverheadMarks): TurnMetrics {
  if (m.firstAudioOut !== undefined && m.userSpeechEnd !== undefined) m.voiceToVoiceMs = m.firstAudioOut - m.userSpeechEnd;
  if (
    marks.endOfTurnAt !== undefined &&
    m.llmRequest !== undefined &&
    marks.firstPieceAt !== undefined &&
    m.ttsRequest !== undefined &&
    m.ttsFirstAudio !== undefined &&
    m.firstAudioOut !== undefined
  ) {
    m.overheadMs = {
      endOfTurnToLlm: Math.max(0, m.llmRequest - marks.endOfTurnAt),
      tokenToTts: Math.max(0, m.ttsRequest - marks.firstPieceAt),
      audioToChannel: Math.max(0, m.firstAudioOut - m.ttsFirstAudio),
    };
  }
  return m;
}
