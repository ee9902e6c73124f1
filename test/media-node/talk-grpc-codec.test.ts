import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addTalkService,
  createTalkClient,
  grpcServiceFromDesc,
  talkServiceDefinition,
  type TalkClient,
} from '../../media-node/grpc/talk-service';
import {
  AssistantTalkRequestSchema,
  AssistantTalkResponseSchema,
  TalkService,
  type AssistantTalkRequest,
  type AssistantTalkResponse,
} from '../../shared/talk/gen/talk_api_pb';

// talk_api.TalkService/AssistantTalk on a real grpc-js server (loopback), through the protobuf-es codec.

const FRAME_BYTES = 640; // 20 ms of PCM16 at 16 kHz

/** Frame `i`: bytes that differ per frame and per position, so a reordered or truncated frame shows. */
function audioFrame(i: number): Uint8Array {
  const frame = new Uint8Array(FRAME_BYTES);
  for (let j = 0; j < FRAME_BYTES; j++) frame[j] = (i * 7 + j) & 0xff;
  return frame;
}

const audioRequest = (i: number) =>
  create(AssistantTalkRequestSchema, { request: { case: 'message', value: { id: `u${i}`, content: { case: 'audio', value: audioFrame(i) } } } });

/** The echo: each user message comes back as an assistant message with the same id and content. */
function echo(request: AssistantTalkRequest): AssistantTalkResponse {
  if (request.request.case !== 'message') {
    return create(AssistantTalkResponseSchema, { response: { case: 'error', value: { code: 'UNEXPECTED', message: request.request.case ?? 'empty' } } });
  }
  const { id, content } = request.request.value;
  return create(AssistantTalkResponseSchema, {
    response: {
      case: 'assistant',
      value: content.case === 'audio' ? { id, audio: content.value } : { id, text: content.value ?? '', completed: true },
    },
  });
}

/** Sends `requests` on one stream and collects every response until the server ends it. */
function roundTrip(client: TalkClient, requests: readonly AssistantTalkRequest[]): Promise<AssistantTalkResponse[]> {
  return new Promise((resolve, reject) => {
    const responses: AssistantTalkResponse[] = [];
    const call = client.AssistantTalk();
    call.on('data', (response: AssistantTalkResponse) => responses.push(response));
    call.on('error', reject);
    call.on('end', () => resolve(responses));
    for (const request of requests) call.write(request);
    call.end();
  });
}

/** Polls until `condition` holds; throws after `timeoutMs`. */
async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('talk_api.TalkService over grpc-js', () => {
  let server: grpc.Server;
  let client: TalkClient;
  let address: string;
  /** What the server saw on each stream, for the malformed-request case. */
  const serverStreams: { messages: number; errors: string[]; cancelled: boolean }[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    addTalkService(server, {
      AssistantTalk(call) {
        const seen = { messages: 0, errors: [] as string[], cancelled: false };
        serverStreams.push(seen);
        call.on('data', (request: AssistantTalkRequest) => {
          seen.messages++;
          call.write(echo(request));
        });
        call.on('error', (error: Error) => seen.errors.push(error.message));
        call.on('cancelled', () => (seen.cancelled = true));
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    address = `127.0.0.1:${port}`;
    client = createTalkClient(address);
  });

  afterAll(async () => {
    client?.close();
    await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
  });

  it('derives the method path, streaming flags and names from the descriptor', () => {
    const method = talkServiceDefinition.AssistantTalk!;
    expect(method.path).toBe('/talk_api.TalkService/AssistantTalk');
    expect(method.requestStream).toBe(true);
    expect(method.responseStream).toBe(true);
    expect(method.originalName).toBe('assistantTalk');
    expect(Object.keys(grpcServiceFromDesc(TalkService))).toEqual(['AssistantTalk']);
  });

  it('serializes to a Buffer sharing the encoded bytes, and decodes what it serialized', () => {
    const method = talkServiceDefinition.AssistantTalk!;
    const wire = method.requestSerialize(audioRequest(3));
    expect(Buffer.isBuffer(wire)).toBe(true);
    const decoded = method.requestDeserialize(wire) as AssistantTalkRequest;
    expect(decoded.request.case).toBe('message');
    const content = decoded.request.case === 'message' ? decoded.request.value.content : undefined;
    expect(content?.case).toBe('audio');
    expect(Buffer.from(content!.value as Uint8Array).equals(Buffer.from(audioFrame(3)))).toBe(true);
  });

  it('round-trips 500 audio frames of 640 bytes in order on one stream', async () => {
    const count = 500;
    const responses = await roundTrip(client, Array.from({ length: count }, (_, i) => audioRequest(i)));
    expect(responses).toHaveLength(count);
    responses.forEach((response, i) => {
      expect(response.response.case).toBe('assistant');
      const message = response.response.case === 'assistant' ? response.response.value : undefined;
      expect(message?.id).toBe(`u${i}`);
      expect(message?.audio.byteLength).toBe(FRAME_BYTES);
      // Buffer.equals: a byte-wise compare, fast enough for 500 × 640 bytes.
      expect(Buffer.from(message!.audio).equals(Buffer.from(audioFrame(i))), `frame ${i}`).toBe(true);
    });
  });

  it('carries a text message', async () => {
    const request = create(AssistantTalkRequestSchema, { request: { case: 'message', value: { id: 't1', content: { case: 'text', value: 'Grüße, wie spät ist es? 🕒' } } } });
    const [response, ...rest] = await roundTrip(client, [request]);
    expect(rest).toEqual([]);
    expect(response?.response).toEqual({
      case: 'assistant',
      value: expect.objectContaining({ id: 't1', text: 'Grüße, wie spät ist es? 🕒', completed: true, audio: new Uint8Array() }),
    });
  });

  it('answers bytes that are not an AssistantTalkRequest with INTERNAL on that call only; the server keeps serving', async () => {
    // A client that sends raw bytes on the same method path, as a buggy or hostile peer would.
    const rawDefinition = {
      AssistantTalk: {
        ...talkServiceDefinition.AssistantTalk!,
        requestSerialize: (bytes: Buffer) => bytes,
        responseDeserialize: (bytes: Buffer) => bytes,
      },
    } satisfies grpc.ServiceDefinition;
    const RawClient = grpc.makeGenericClientConstructor(rawDefinition, 'TalkService');
    const raw = new RawClient(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      AssistantTalk(): grpc.ClientDuplexStream<Buffer, Buffer>;
    };
    const streamsBefore = serverStreams.length;
    try {
      // 0x0f: field 1 with wire type 7, which does not exist; protobuf-es throws "illegal tag".
      const outcome = await new Promise<{ error?: grpc.ServiceError; data: number }>((resolve) => {
        let data = 0;
        const call = raw.AssistantTalk();
        call.on('data', () => data++);
        call.on('error', (error: grpc.ServiceError) => resolve({ error, data }));
        call.on('end', () => resolve({ data }));
        call.write(Buffer.from([0x0f, 0x01, 0x02]));
      });
      expect(outcome.data).toBe(0);
      expect(outcome.error?.code).toBe(grpc.status.INTERNAL);
      expect(outcome.error?.details).toMatch(/Error deserializing request/);
    } finally {
      raw.close();
    }

    // The handler ran for the stream but never saw a message: grpc-js cancelled the stream instead of emitting
    // 'error' (so a handler without an 'error' listener cannot take the process down).
    const seen = serverStreams.slice(streamsBefore);
    await waitUntil(() => seen[0]?.cancelled === true, 2_000);
    expect(seen).toEqual([{ messages: 0, errors: [], cancelled: true }]);

    // The same server still answers a well-formed call.
    const [response] = await roundTrip(client, [audioRequest(42)]);
    const message = response?.response.case === 'assistant' ? response.response.value : undefined;
    expect(message?.id).toBe('u42');
  });
});
