import * as grpc from '@grpc/grpc-js';
import { MEDIA_CLOSE_CODES } from '../../shared/store/call-contexts';
import { encodeResponse, TALK_CLOSE_CODES, type TalkTransport } from '../../shared/talk/transport';
import { talkServiceDefinition } from '../grpc/talk-service';

/**
 * `AssistantTalk` as the node serves it: the same method (path, streaming kinds) as the typed definition in
 * media-node/grpc/talk-service.ts, but carrying raw frames both ways. The talk session already encodes every
 * response (the WebSocket path sends those bytes as they are), and it decodes requests itself (a malformed
 * one is answered with Error{fatal:false} and the call goes on, as on the WebSocket): decoding here and
 * re-encoding there would do the work twice and turn a bad frame into a dead stream.
 */
const method = talkServiceDefinition.AssistantTalk!;
export const rawTalkServiceDefinition: grpc.ServiceDefinition = {
  AssistantTalk: {
    ...method,
    // grpc-js hands over a Buffer: already a Uint8Array, passed on without a copy.
    requestDeserialize: (bytes: Buffer): Uint8Array => bytes,
    // grpc-js copies out of the result with Buffer methods: wrap the encoded frame, don't copy it.
    responseSerialize: (frame: Uint8Array): Buffer => Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength),
  } as grpc.MethodDefinition<unknown, unknown>,
};

export type RawTalkCall = grpc.ServerDuplexStream<Uint8Array, Uint8Array>;

/** The gRPC status a talk close code ends the stream with (ARCHITECTURE.md close codes; transport.ts). */
export function statusOfCloseCode(code: number): grpc.status {
  switch (code) {
    case TALK_CLOSE_CODES.normal:
      return grpc.status.OK;
    case MEDIA_CLOSE_CODES.badResumeToken:
      return grpc.status.UNAUTHENTICATED;
    case MEDIA_CLOSE_CODES.unknownContext:
      return grpc.status.NOT_FOUND;
    case MEDIA_CLOSE_CODES.alreadyClaimed:
      return grpc.status.ALREADY_EXISTS;
    case MEDIA_CLOSE_CODES.expired:
      return grpc.status.FAILED_PRECONDITION;
    case TALK_CLOSE_CODES.badInitialization:
    case TALK_CLOSE_CODES.protocolError:
      return grpc.status.INVALID_ARGUMENT;
    case TALK_CLOSE_CODES.serverError:
      return grpc.status.INTERNAL;
    default:
      return grpc.status.UNKNOWN;
  }
}

/**
 * What `bufferedAmount` reports while grpc-js's write queue is over its mark: more than any channel tolerates,
 * so audio is dropped (the client stopped reading) until the stream drains; control messages still queue.
 */
export const BLOCKED_BUFFERED_BYTES = 16 * 1024 * 1024;

/**
 * A gRPC stream as a TalkTransport: `send` writes an encoded frame, `close(code)` ends the stream with the
 * status mapped from the close code (reason as details), and back-pressure is the bytes handed to grpc-js
 * and not yet written to the HTTP/2 stream, or BLOCKED_BUFFERED_BYTES after `write()` said stop.
 */
export function grpcTalkTransport(call: RawTalkCall) {
  let ended = false;
  let blocked = false;
  let pendingBytes = 0;
  const writable = () => !ended && !call.cancelled && !call.writableEnded && !call.destroyed;

  const transport: TalkTransport = {
    send(frame) {
      if (!writable()) return;
      const size = frame.byteLength;
      pendingBytes += size;
      const ok = call.write(frame, () => {
        pendingBytes -= size;
      });
      if (!ok && !blocked) {
        blocked = true;
        call.once('drain', () => {
          blocked = false;
        });
      }
    },
    close(code, reason) {
      if (!writable()) {
        ended = true;
        return;
      }
      ended = true;
      const status = statusOfCloseCode(code);
      if (status === grpc.status.OK) call.end();
      // grpc-js ends a server stream with the status of an emitted error, after the messages written before it.
      else call.emit('error', { code: status, details: reason || `closed (${code})` } satisfies Partial<grpc.StatusObject>);
    },
    bufferedAmount: () => (blocked ? Math.max(pendingBytes, BLOCKED_BUFFERED_BYTES) : pendingBytes),
  };
  return transport;
}

/** End a stream that never reached a session (auth, binding): an Error message, then the status. */
export function refuseGrpcCall(call: RawTalkCall, status: grpc.status, errorCode: string, message: string): void {
  if (call.cancelled || call.writableEnded || call.destroyed) return;
  call.write(encodeResponse({ case: 'error', value: { code: errorCode, message, fatal: true } }));
  call.emit('error', { code: status, details: `${errorCode}: ${message}` } satisfies Partial<grpc.StatusObject>);
}
