import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type DescService, type Message, type MessageShape } from '@bufbuild/protobuf';
import { TalkService, type AssistantTalkRequest, type AssistantTalkResponse } from '../../shared/talk/gen/talk_api_pb';

/**
 * `talk_api.TalkService` on grpc-js, through the protobuf-es codec generated from protos/talk_api.proto: the
 * same encoder and decoder the WebSocket path and the edge use, so gRPC needs no second codec (no
 * proto-loader / protobufjs at run time).
 *
 * A request that does not decode (fromBinary throws) never reaches the handler: grpc-js calls the deserializer
 * inside its own try/catch and ends that one call with status INTERNAL ("Error deserializing request"); the
 * server and its other calls carry on (test/media-node/talk-grpc-codec.test.ts). INTERNAL is also what grpc-go
 * and grpc-java answer for a request that does not unmarshal, so clients see the usual gRPC behaviour.
 */

/** grpc-js copies out of what a serializer returns with Buffer methods, so it must be a Buffer: wrap, don't copy. */
function serializer<Desc extends DescMessage>(schema: Desc): (message: MessageShape<Desc>) => Buffer {
  return (message) => {
    const bytes = toBinary(schema, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/**
 * Decoded `bytes` fields (audio) are views into grpc-js's message buffer, not copies: cheap, but their
 * byteOffset may be odd (shared/talk/audio-bytes.ts reads PCM16 out of them).
 */
function deserializer<Desc extends DescMessage>(schema: Desc): (bytes: Buffer) => MessageShape<Desc> {
  return (bytes) => fromBinary(schema, bytes);
}

/** A grpc-js service definition for any protobuf-es service descriptor (path `/{package}.{Service}/{Method}`). */
export function grpcServiceFromDesc(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    const kind = method.methodKind;
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: kind === 'client_streaming' || kind === 'bidi_streaming',
      responseStream: kind === 'server_streaming' || kind === 'bidi_streaming',
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.localName,
    };
  }
  return definition;
}

/** `talk_api.TalkService`: `AssistantTalk`, one bidirectional stream per call. */
export const talkServiceDefinition = grpcServiceFromDesc(TalkService);

export const TALK_SERVICE_NAME = TalkService.typeName;

/** What a server implements for the service. */
export interface TalkServiceHandlers extends grpc.UntypedServiceImplementation {
  AssistantTalk: grpc.handleBidiStreamingCall<AssistantTalkRequest, AssistantTalkResponse>;
}

export function addTalkService(server: grpc.Server, handlers: TalkServiceHandlers): void {
  server.addService(talkServiceDefinition, handlers);
}

/** A typed client (SDK-style callers, tests): grpc-js's generic client over the same definition. */
export interface TalkClient extends grpc.Client {
  AssistantTalk(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<AssistantTalkRequest, AssistantTalkResponse>;
}

const TalkClientConstructor = grpc.makeGenericClientConstructor(talkServiceDefinition, 'TalkService');

export function createTalkClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options?: grpc.ClientOptions,
): TalkClient {
  return new TalkClientConstructor(address, credentials, options) as unknown as TalkClient;
}
