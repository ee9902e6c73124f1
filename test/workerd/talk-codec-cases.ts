// The talk_api messages the codec smoke test encodes inside workerd and checks from Node (imported by both sides).
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  AssistantTalkRequestSchema,
  AssistantTalkResponseSchema,
  AudioEncoding,
  DisconnectionType,
  InterruptionType,
  StreamMode,
  ToolCallAction,
  type AssistantTalkRequest,
  type AssistantTalkResponse,
} from '../../shared/talk/gen/talk_api_pb';

/** 320 PCM16 samples (20 ms at 16 kHz), negative ones included, so a byte-order or offset slip shows. */
export function codecAudioSamples(): Int16Array {
  return Int16Array.from({ length: 320 }, (_, i) => ((i * 997) % 65_536) - 32_768);
}

const audioBytes = () => new Uint8Array(codecAudioSamples().buffer);

export function codecRequests(): AssistantTalkRequest[] {
  return [
    create(AssistantTalkRequestSchema, {
      request: {
        case: 'initialization',
        value: {
          assistant: { id: '7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a', version: 3 },
          variables: { name: 'Ada', city: 'Zürich' },
          streamMode: StreamMode.BOTH,
          inputAudio: { sampleRate: 16_000, encoding: AudioEncoding.LINEAR16, channels: 1 },
          outputAudio: { sampleRate: 8_000, encoding: AudioEncoding.MULAW },
          resumeToken: 'rt_0123456789',
        },
      },
    }),
    // A one-character id puts the audio at an odd offset in the frame (shared/talk/audio-bytes.ts).
    create(AssistantTalkRequestSchema, { request: { case: 'message', value: { id: 'a', content: { case: 'audio', value: audioBytes() } } } }),
  ];
}

/** One response per case of the `response` oneof (the Node side checks the list is complete). */
export function codecResponses(): AssistantTalkResponse[] {
  const cases: MessageInitShape<typeof AssistantTalkResponseSchema>['response'][] = [
    {
      case: 'initialization',
      value: {
        contextId: 'ctx-1',
        conversationId: 'conv-1',
        assistant: { id: 'asst-1', version: 2 },
        resumeToken: 'rt_next',
        resumeWindowMs: 30_000,
        resumed: true,
        streamMode: StreamMode.AUDIO,
        inputAudio: { sampleRate: 48_000 },
        outputAudio: { sampleRate: 24_000, encoding: AudioEncoding.LINEAR16 },
      },
    },
    { case: 'interruption', value: { id: 'm1', type: InterruptionType.WORD, timeMs: 1234.5 } },
    { case: 'user', value: { id: 'u1', text: 'wie spät ist es', completed: true, timeMs: 987.25 } },
    { case: 'assistant', value: { id: 'm1', text: 'Es ist drei Uhr.', audio: audioBytes(), completed: true, interrupted: true } },
    { case: 'toolCall', value: { id: 't1', name: 'transfer', action: ToolCallAction.TRANSFER_CONVERSATION, args: { to: '+14155550123' } } },
    { case: 'playbackPause', value: { id: 'm1' } },
    { case: 'playbackContinue', value: { id: 'm2' } },
    { case: 'playbackFlush', value: { id: 'm3' } },
    { case: 'playbackMark', value: { id: 'mark-9' } },
    { case: 'metric', value: { id: 'm1', values: [{ name: 'llm_first_token_ms', value: 321.5 }, { name: 'tts_first_audio_ms', value: 0.25 }] } },
    { case: 'event', value: { name: 'vad.speech_started', data: { energy: '0.8' }, timeMs: 42 } },
    { case: 'disconnection', value: { type: DisconnectionType.MAX_DURATION, reason: 'the call reached its 30 minute limit' } },
    { case: 'error', value: { code: 'STT_UNAVAILABLE', message: 'speech recognition is down', fatal: true } },
  ];
  return cases.map((response) => create(AssistantTalkResponseSchema, { response }));
}
