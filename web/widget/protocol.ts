import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { AssistantTalkRequestSchema, AssistantTalkResponseSchema, AudioEncoding, StreamMode, type AssistantTalkResponse } from '../../shared/talk/gen/talk_api_pb';

/** talk_api on the wire for the widget: one AssistantTalkRequest per binary WebSocket frame up, one response down. */

export type TalkRequest = MessageInitShape<typeof AssistantTalkRequestSchema>['request'];
export type TalkResponse = AssistantTalkResponse['response'];

export function encodeRequest(request: TalkRequest): Uint8Array {
  return toBinary(AssistantTalkRequestSchema, create(AssistantTalkRequestSchema, { request }));
}

/** A server frame, or undefined when it is not a talk response (skipped, as the server does with ours). */
export function decodeResponse(frame: ArrayBuffer | Uint8Array): TalkResponse | undefined {
  try {
    return fromBinary(AssistantTalkResponseSchema, frame instanceof Uint8Array ? frame : new Uint8Array(frame)).response;
  } catch {
    return undefined;
  }
}

export interface InitializationOptions {
  readonly assistantId?: string;
  /** Output rate the widget asks for (16 or 24 kHz); the playback worklet resamples to the context rate. */
  readonly outputRateHz: number;
  readonly resumeToken?: string;
}

/** The first frame on every connection: a new call, or (with a resume token) a re-attach to the running one. */
export function initializationRequest(options: InitializationOptions): TalkRequest {
  return {
    case: 'initialization',
    value: {
      ...(options.assistantId ? { assistant: { id: options.assistantId } } : {}),
      // Call variables travel in the session POST (the context holds them), not here.
      streamMode: StreamMode.BOTH,
      inputAudio: { sampleRate: 16_000, encoding: AudioEncoding.LINEAR16, channels: 1 },
      outputAudio: { sampleRate: options.outputRateHz, encoding: AudioEncoding.LINEAR16, channels: 1 },
      ...(options.resumeToken ? { resumeToken: options.resumeToken } : {}),
    },
  };
}
