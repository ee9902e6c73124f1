import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { AssistantTalkResponseSchema } from './gen/talk_api_pb';

/**
 * One client connection of a talk session: a WebSocket (media node or Durable Object) or a gRPC stream.
 * Frames are whole encoded AssistantTalkResponse messages; the host does the I/O.
 */
export interface TalkTransport {
  send(frame: Uint8Array): void;
  /** Close the connection (WebSocket close code; gRPC maps it to a status). */
  close(code: number, reason: string): void;
  /** Bytes accepted but not yet written (back-pressure); 0 where the transport cannot tell. */
  bufferedAmount(): number;
}

export type TalkResponseInit = MessageInitShape<typeof AssistantTalkResponseSchema>['response'];

/** Encode one server message: `{ case: 'event', value: {...} }` → binary frame. */
export function encodeResponse(response: TalkResponseInit): Uint8Array {
  return toBinary(AssistantTalkResponseSchema, create(AssistantTalkResponseSchema, { response }));
}

/** Close codes of a talk stream besides the media ones (4401, 4404, 4409, 4410 in shared/store/call-contexts.ts). */
export const TALK_CLOSE_CODES = {
  normal: 1000,
  /** A frame that is not an AssistantTalkRequest, or a first frame that is not an initialization. */
  protocolError: 1008,
  /** The initialization cannot be honoured (bad audio config, another assistant than the context's). */
  badInitialization: 4400,
  serverError: 1011,
} as const;
