import { fromBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../shared/contracts/errors';
import type { CallEvent, TurnMetrics } from '../../shared/contracts/observer';
import {
  AssistantTalkResponseSchema,
  DisconnectionType,
  InterruptionType,
  StreamMode,
  ToolCallAction,
  type AssistantTalkResponse,
} from '../../shared/talk/gen/talk_api_pb';
import { createTalkEvents } from '../../shared/talk/talk-events';
import { encodeResponse } from '../../shared/talk/transport';

/** The events module with its messages decoded as the client reads them off the wire. */
function setup(initialMode = StreamMode.BOTH) {
  const sent: AssistantTalkResponse['response'][] = [];
  let mode = initialMode;
  let timeMs = 0;
  const events = createTalkEvents({
    send: (response) => sent.push(fromBinary(AssistantTalkResponseSchema, encodeResponse(response)).response),
    streamMode: () => mode,
    timeMs: () => timeMs,
  });
  return {
    events,
    sent,
    emit: (event: CallEvent) => events.observer.onEvent(event),
    /** Messages sent by `event` alone. */
    on(event: CallEvent) {
      const from = sent.length;
      events.observer.onEvent(event);
      return sent.slice(from);
    },
    setMode: (next: StreamMode) => void (mode = next),
    setTime: (ms: number) => void (timeMs = ms),
  };
}

const metrics = (patch: Partial<TurnMetrics>): TurnMetrics => ({
  callId: 'c',
  turnId: 4,
  kind: 'reply',
  interrupted: false,
  inputTokens: 0,
  outputTokens: 0,
  providers: {},
  ...patch,
});

describe('talk events: captions', () => {
  it('sends the caller transcript as interim, then final, under one utterance id stamped with the session time', () => {
    const t = setup();
    t.setTime(1234);
    expect(t.on({ type: 'transcript', text: 'what is', final: false, atMs: 9 })).toEqual([
      { case: 'user', value: expect.objectContaining({ id: 'u1', text: 'what is', completed: false, timeMs: 1234 }) },
    ]);
    expect(t.on({ type: 'transcript', text: 'what is the weather', final: true, atMs: 9 })).toEqual([
      { case: 'user', value: expect.objectContaining({ id: 'u1', text: 'what is the weather', completed: true }) },
    ]);
  });

  it('a spoken user turn sends nothing of its own but moves the next caption to a new id', () => {
    const t = setup();
    t.emit({ type: 'transcript', text: 'hello', final: true, atMs: 0 });
    expect(t.on({ type: 'userMessage', text: 'hello', source: 'speech', atMs: 0 })).toEqual([]);
    const next = t.on({ type: 'transcript', text: 'again', final: false, atMs: 0 });
    expect(next[0]?.case === 'user' && next[0].value.id).toBe('u2');
  });

  it('captions that made no turn (a backchannel) keep their id; the next utterance gets a new one', () => {
    const t = setup();
    t.emit({ type: 'userSpeechStarted', atMs: 0 });
    t.emit({ type: 'transcript', text: 'uh huh', final: true, atMs: 0 });
    t.emit({ type: 'userSpeechStarted', atMs: 0 });
    const next = t.on({ type: 'transcript', text: 'stop please', final: false, atMs: 0 });
    expect(next[0]?.case === 'user' && next[0].value.id).toBe('u2');
    // A speech start with no caption since does not skip ids.
    t.emit({ type: 'userMessage', text: 'stop please', source: 'speech', atMs: 0 });
    t.emit({ type: 'userSpeechStarted', atMs: 0 });
    const after = t.on({ type: 'transcript', text: 'thanks', final: true, atMs: 0 });
    expect(after[0]?.case === 'user' && after[0].value.id).toBe('u3');
  });

  it('typed and DTMF turns are their own final caption', () => {
    const t = setup();
    expect(t.on({ type: 'userMessage', text: 'book a table', source: 'text', atMs: 0 })).toEqual([
      { case: 'user', value: expect.objectContaining({ id: 'u1', text: 'book a table', completed: true }) },
    ]);
    expect(t.on({ type: 'userMessage', text: 'the caller pressed 42', source: 'dtmf', atMs: 0 })).toEqual([
      { case: 'user', value: expect.objectContaining({ id: 'u2', text: 'the caller pressed 42', completed: true }) },
    ]);
  });
});

describe('talk events: assistant messages', () => {
  it('sends text deltas under the turn id and makes it the id of the audio that follows', () => {
    const t = setup();
    expect(t.events.assistantMessageId()).toBe('a0');
    expect(t.on({ type: 'assistantText', turnId: 3, text: 'Hello there. ', atMs: 0 })).toEqual([
      { case: 'assistant', value: expect.objectContaining({ id: 'a3', text: 'Hello there. ', completed: false }) },
    ]);
    expect(t.events.assistantMessageId()).toBe('a3');
  });

  it('AUDIO mode sends no text deltas, but audio still gets the turn id; TEXT mode sends them', () => {
    const t = setup(StreamMode.AUDIO);
    expect(t.on({ type: 'assistantText', turnId: 7, text: 'Hi. ', atMs: 0 })).toEqual([]);
    expect(t.events.assistantMessageId()).toBe('a7');
    t.setMode(StreamMode.TEXT);
    expect(t.on({ type: 'assistantText', turnId: 7, text: 'Bye. ', atMs: 0 })).toHaveLength(1);
  });

  it('closes a turn with what the caller heard, flagged when it was cut', () => {
    const t = setup();
    expect(t.on({ type: 'assistantMessage', turnId: 5, text: 'it is sunny', generatedText: 'it is sunny and warm', interrupted: true, atMs: 0 })).toEqual([
      { case: 'assistant', value: expect.objectContaining({ id: 'a5', text: 'it is sunny', completed: true, interrupted: true }) },
    ]);
    // The completed message goes out in every mode: it is the history entry, not a delta.
    const audioOnly = setup(StreamMode.AUDIO);
    expect(audioOnly.on({ type: 'assistantMessage', turnId: 5, text: 'ok', generatedText: 'ok', interrupted: false, atMs: 0 })).toHaveLength(1);
  });
});

describe('talk events: interruptions', () => {
  it('pause → VAD interruption + playback pause; resume → playback continue; confirm → WORD interruption + flush', () => {
    const t = setup();
    t.setTime(50);
    expect(t.on({ type: 'interruption', phase: 'paused', turnId: 2, atMs: 0 })).toEqual([
      { case: 'interruption', value: expect.objectContaining({ id: 'a2', type: InterruptionType.VAD, timeMs: 50 }) },
      { case: 'playbackPause', value: expect.objectContaining({ id: 'a2' }) },
    ]);
    expect(t.on({ type: 'interruption', phase: 'resumed', turnId: 2, atMs: 0 })).toEqual([{ case: 'playbackContinue', value: expect.objectContaining({ id: 'a2' }) }]);
    expect(t.on({ type: 'interruption', phase: 'confirmed', turnId: 2, atMs: 0 })).toEqual([
      { case: 'interruption', value: expect.objectContaining({ id: 'a2', type: InterruptionType.WORD }) },
      { case: 'playbackFlush', value: expect.objectContaining({ id: 'a2' }) },
    ]);
  });
});

describe('talk events: tools, metrics, events', () => {
  it('end_call is an END_CONVERSATION directive; other tools are an event naming the tool without its arguments or result', () => {
    const t = setup();
    expect(t.on({ type: 'toolCall', id: 't1', name: 'end_call', arguments: '{}', result: 'ok', atMs: 0 })).toEqual([
      { case: 'toolCall', value: expect.objectContaining({ id: 't1', name: 'end_call', action: ToolCallAction.END_CONVERSATION, args: {} }) },
    ]);
    const lookup = t.on({ type: 'toolCall', id: 't2', name: 'lookup_order', arguments: '{"card":"4111"}', result: 'secret', atMs: 0 });
    expect(lookup).toEqual([{ case: 'event', value: expect.objectContaining({ name: 'tool.called', data: { id: 't2', name: 'lookup_order' } }) }]);
  });

  it('turn metrics become named values of the stages that happened', () => {
    const t = setup();
    const full = t.on({
      type: 'turnMetrics',
      metrics: metrics({ userSpeechEnd: 100, sttFinal: 160, llmRequest: 200, llmFirstToken: 450, ttsRequest: 460, ttsFirstAudio: 560, voiceToVoiceMs: 480, inputTokens: 30, outputTokens: 12, interrupted: true }),
    });
    expect(full).toHaveLength(1);
    const metric = full[0]!;
    expect(metric.case).toBe('metric');
    if (metric.case !== 'metric') return;
    expect(metric.value.id).toBe('a4');
    expect(metric.value.values.map((v) => [v.name, v.value])).toEqual([
      ['voice_to_voice_ms', 480],
      ['stt_final_ms', 60],
      ['llm_first_token_ms', 250],
      ['tts_first_audio_ms', 100],
      ['input_tokens', 30],
      ['output_tokens', 12],
      ['interrupted', 1],
    ]);
    // A greeting: no user speech, no LLM.
    const greeting = t.on({ type: 'turnMetrics', metrics: metrics({ kind: 'greeting', ttsRequest: 0, ttsFirstAudio: 90 }) });
    expect(greeting[0]?.case === 'metric' && greeting[0].value.values.map((v) => v.name)).toEqual(['tts_first_audio_ms', 'input_tokens', 'output_tokens', 'interrupted']);
  });

  it('speech start/end and provider errors are events; the error message (which may quote provider text) is not sent', () => {
    const t = setup();
    t.setTime(7);
    expect(t.on({ type: 'userSpeechStarted', atMs: 0 })).toEqual([{ case: 'event', value: expect.objectContaining({ name: 'user.speech_started', timeMs: 7 }) }]);
    expect(t.on({ type: 'userSpeechEnded', atMs: 0 })).toEqual([{ case: 'event', value: expect.objectContaining({ name: 'user.speech_ended' }) }]);
    const error = new ProviderError('DEEPGRAM_AUTH', 'key sk-live-123 rejected', false, 'auth');
    const sent = t.on({ type: 'providerError', stage: 'stt', provider: 'deepgram', error, action: 'fallback' });
    expect(sent).toEqual([
      { case: 'event', value: expect.objectContaining({ name: 'provider.error', data: { stage: 'stt', provider: 'deepgram', code: 'DEEPGRAM_AUTH', action: 'fallback' } }) },
    ]);
    expect(JSON.stringify(sent)).not.toContain('sk-live');
  });

  it('sends nothing for the engine-internal events', () => {
    const t = setup();
    t.emit({ type: 'callStarted', callId: 'c', atMs: 0 });
    t.emit({ type: 'idleReprompt', count: 1, atMs: 0 });
    t.emit({ type: 'dtmf', digits: '12', atMs: 0 });
    t.emit({ type: 'inboundOverflow', droppedFrames: 3, atMs: 0 });
    expect(t.sent).toEqual([]);
  });
});

describe('talk events: disconnection', () => {
  it.each([
    ['client-disconnect', DisconnectionType.USER],
    ['caller-hangup', DisconnectionType.USER],
    ['end-call', DisconnectionType.TOOL],
    ['transferred', DisconnectionType.TOOL],
    ['idle-timeout', DisconnectionType.IDLE_TIMEOUT],
    ['max-duration', DisconnectionType.MAX_DURATION],
    ['resume-window-lapsed', DisconnectionType.ERROR],
    ['tts-unavailable', DisconnectionType.ERROR],
  ])('call ended with %s → %s', (reason, type) => {
    const t = setup();
    expect(t.on({ type: 'callEnded', callId: 'c', reason, atMs: 0 })).toEqual([{ case: 'disconnection', value: expect.objectContaining({ type, reason }) }]);
  });
});
