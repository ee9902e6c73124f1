import type { CallEvent, CallObserver, TurnMetrics } from '../contracts/observer';
import { DisconnectionType, InterruptionType, StreamMode, ToolCallAction } from './gen/talk_api_pb';
import type { TalkResponseInit } from './transport';

export interface TalkEventsDeps {
  /** To the client connected now (dropped while none is). */
  send(response: TalkResponseInit): void;
  streamMode(): StreamMode;
  /** Milliseconds since the session started (the `time_ms` of messages). */
  timeMs(): number;
}

/**
 * The engine's call events as talk_api messages: captions both ways, assistant text deltas, interruptions
 * with the matching playback controls, tool directives, per-turn metrics, and the disconnection.
 * Ids: assistant turns are `a{turnId}`, the caller's utterances `u{n}`.
 */
export function createTalkEvents(deps: TalkEventsDeps) {
  let assistantId = 'a0';
  let userTurn = 1;
  /** A caption went out under the current user id. */
  let captioned = false;
  const wantsText = () => deps.streamMode() !== StreamMode.AUDIO;

  const observer: CallObserver = {
    onEvent(event: CallEvent) {
      switch (event.type) {
        case 'transcript':
          captioned = true;
          deps.send({ case: 'user', value: { id: `u${userTurn}`, text: event.text, completed: event.final, timeMs: deps.timeMs() } });
          return;
        case 'userMessage':
          // Typed and DTMF turns have no transcript of their own: the caption is the turn itself.
          if (event.source !== 'speech') deps.send({ case: 'user', value: { id: `u${userTurn}`, text: event.text, completed: true, timeMs: deps.timeMs() } });
          userTurn++;
          captioned = false;
          return;
        case 'assistantText':
          assistantId = `a${event.turnId}`;
          if (wantsText()) deps.send({ case: 'assistant', value: { id: assistantId, text: event.text } });
          return;
        case 'assistantMessage':
          deps.send({ case: 'assistant', value: { id: `a${event.turnId}`, text: event.text, completed: true, interrupted: event.interrupted } });
          return;
        case 'interruption': {
          const id = `a${event.turnId}`;
          if (event.phase === 'paused') {
            deps.send({ case: 'interruption', value: { id, type: InterruptionType.VAD, timeMs: deps.timeMs() } });
            deps.send({ case: 'playbackPause', value: { id } });
          } else if (event.phase === 'resumed') {
            deps.send({ case: 'playbackContinue', value: { id } });
          } else {
            deps.send({ case: 'interruption', value: { id, type: InterruptionType.WORD, timeMs: deps.timeMs() } });
            deps.send({ case: 'playbackFlush', value: { id } });
          }
          return;
        }
        case 'toolCall':
          if (event.name === 'end_call') {
            deps.send({ case: 'toolCall', value: { id: event.id, name: event.name, action: ToolCallAction.END_CONVERSATION, args: {} } });
          } else {
            deps.send({ case: 'event', value: { name: 'tool.called', data: { id: event.id, name: event.name }, timeMs: deps.timeMs() } });
          }
          return;
        case 'turnMetrics':
          deps.send({ case: 'metric', value: { id: `a${event.metrics.turnId}`, values: metricValues(event.metrics) } });
          return;
        case 'userSpeechStarted':
          // Captions that made no turn (a backchannel) keep their id; the next utterance gets its own.
          if (captioned) userTurn++;
          captioned = false;
          deps.send({ case: 'event', value: { name: 'user.speech_started', data: {}, timeMs: deps.timeMs() } });
          return;
        case 'userSpeechEnded':
          deps.send({ case: 'event', value: { name: 'user.speech_ended', data: {}, timeMs: deps.timeMs() } });
          return;
        case 'providerError':
          deps.send({
            case: 'event',
            value: { name: 'provider.error', data: { stage: event.stage, provider: event.provider, code: event.error.code, action: event.action }, timeMs: deps.timeMs() },
          });
          return;
        case 'callEnded':
          deps.send({ case: 'disconnection', value: { type: disconnectionType(event.reason), reason: event.reason } });
          return;
        default:
          return;
      }
    },
  };

  return {
    observer,
    /** The assistant message the next audio frame belongs to. */
    assistantMessageId: () => assistantId,
  };
}

function disconnectionType(reason: string): DisconnectionType {
  switch (reason) {
    case 'client-disconnect':
    case 'caller-hangup':
      return DisconnectionType.USER;
    case 'end-call':
    case 'transferred':
      return DisconnectionType.TOOL;
    case 'idle-timeout':
      return DisconnectionType.IDLE_TIMEOUT;
    case 'max-duration':
      return DisconnectionType.MAX_DURATION;
    default:
      return DisconnectionType.ERROR;
  }
}

/** The turn's timeline as named values (only the stages that happened). */
function metricValues(m: Readonly<TurnMetrics>): Array<{ name: string; value: number }> {
  const values: Array<{ name: string; value: number }> = [];
  const add = (name: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) values.push({ name, value });
  };
  add('voice_to_voice_ms', m.voiceToVoiceMs);
  add('stt_final_ms', m.sttFinal !== undefined && m.userSpeechEnd !== undefined ? m.sttFinal - m.userSpeechEnd : undefined);
  add('llm_first_token_ms', m.llmFirstToken !== undefined && m.llmRequest !== undefined ? m.llmFirstToken - m.llmRequest : undefined);
  add('tts_first_audio_ms', m.ttsFirstAudio !== undefined && m.ttsRequest !== undefined ? m.ttsFirstAudio - m.ttsRequest : undefined);
  add('input_tokens', m.inputTokens);
  add('output_tokens', m.outputTokens);
  add('interrupted', m.interrupted ? 1 : 0);
  return values;
}
