import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { pcm16FromBytes } from '../../shared/talk/audio-bytes';
import {
  AssistantTalkRequestSchema,
  AssistantTalkResponseSchema,
  AudioConfigSchema,
  AudioEncoding,
  InitializationSchema,
  TalkService,
  type AssistantTalkResponse,
} from '../../shared/talk/gen/talk_api_pb';
import { decodeWords, splitWords, synthesizeWords } from './tones';

export type RequestInit = MessageInitShape<typeof AssistantTalkRequestSchema>['request'];
type ResponseCase = NonNullable<AssistantTalkResponse['response']['case']>;
type ResponseOf<C extends ResponseCase> = Extract<AssistantTalkResponse['response'], { case: C }>['value'];

const RATE_HZ = 16_000;
const FRAME_SAMPLES = RATE_HZ / 50;

/**
 * A talk_api client as a browser widget behaves, over any wire (WebSocket or gRPC): a microphone sending a
 * 20 ms PCM16 16 kHz frame every 20 ms (silence between utterances, tone-coded words when it "speaks"), and
 * a speaker playing the assistant's audio in real time, one frame per tick: PlaybackMark is answered with
 * PlaybackComplete once playback reaches it, PlaybackPause holds playback, PlaybackContinue resumes it, and
 * PlaybackFlush drops what is queued (answering the marks in it, as nothing will play them). What the user
 * heard is decoded from the frames actually played.
 */
export function createTalkPeer(send: (request: RequestInit) => void) {
  const received: { atMs: number; response: AssistantTalkResponse }[] = [];
  const queue: ({ kind: 'audio'; pcm: Int16Array } | { kind: 'mark'; id: string })[] = [];
  const heard: { atMs: number; pcm: Int16Array }[] = [];
  const mic: Int16Array[] = [];
  const startedAt = performance.now();
  const stats = { flushes: 0, pauses: 0, marksAnswered: 0, framesReceived: 0, framesPlayed: 0 };
  let paused = false;
  let live = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const silence = new Int16Array(FRAME_SAMPLES);
  const now = () => performance.now() - startedAt;

  const answerMark = (id: string) => {
    stats.marksAnswered++;
    send({ case: 'playbackComplete', value: { id } });
  };
  const answerLeadingMarks = () => {
    for (let head = queue[0]; head?.kind === 'mark'; head = queue[0]) {
      queue.shift();
      answerMark(head.id);
    }
  };

  function tick(): void {
    if (!paused) {
      answerLeadingMarks();
      const item = queue.shift();
      if (item?.kind === 'audio') {
        stats.framesPlayed++;
        heard.push({ atMs: now(), pcm: item.pcm });
      }
      answerLeadingMarks();
    }
    const frame = mic.shift() ?? silence;
    send({ case: 'message', value: { content: { case: 'audio', value: new Uint8Array(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength)) } } });
  }

  return {
    received,
    stats,
    /** One server message (decoded). */
    receive(response: AssistantTalkResponse): void {
      received.push({ atMs: now(), response });
      const r = response.response;
      switch (r.case) {
        case 'initialization':
          live = true;
          timer ??= setInterval(tick, 20);
          return;
        case 'assistant':
          if (r.value.audio.byteLength > 0) {
            stats.framesReceived++;
            queue.push({ kind: 'audio', pcm: pcm16FromBytes(r.value.audio).slice() });
          }
          return;
        case 'playbackMark':
          queue.push({ kind: 'mark', id: r.value.id });
          return;
        case 'playbackPause':
          stats.pauses++;
          paused = true;
          return;
        case 'playbackContinue':
          paused = false;
          return;
        case 'playbackFlush':
          stats.flushes++;
          paused = false;
          for (const item of queue.splice(0)) if (item.kind === 'mark') answerMark(item.id);
          return;
        default:
          return;
      }
    },
    /** Initialization (PCM16 16 kHz both ways unless `fields` say otherwise). */
    initialize(fields: MessageInitShape<typeof InitializationSchema> = {}): void {
      const init = create(InitializationSchema, fields);
      init.inputAudio ??= create(AudioConfigSchema, { sampleRate: RATE_HZ, encoding: AudioEncoding.LINEAR16, channels: 1 });
      init.outputAudio ??= create(AudioConfigSchema, { sampleRate: RATE_HZ, encoding: AudioEncoding.LINEAR16, channels: 1 });
      send({ case: 'initialization', value: init });
    },
    /** The user says tone-coded words (queued behind anything still being said). Returns its length in ms. */
    say(text: string): number {
      const { pcm } = synthesizeWords(splitWords(text), RATE_HZ);
      for (let i = 0; i < pcm.length; i += FRAME_SAMPLES) {
        const frame = new Int16Array(FRAME_SAMPLES);
        frame.set(pcm.subarray(i, i + FRAME_SAMPLES));
        mic.push(frame);
      }
      return (pcm.length / RATE_HZ) * 1000;
    },
    type(text: string): void {
      send({ case: 'message', value: { content: { case: 'text', value: text } } });
    },
    hangUp(reason = 'user hung up'): void {
      send({ case: 'disconnection', value: { reason } });
    },
    /** Words heard (from frames played in [fromMs, toMs) of this client's clock). */
    heardWords(fromMs = -Infinity, toMs = Infinity): string[] {
      const frames = heard.filter((h) => h.atMs >= fromMs && h.atMs < toMs);
      const pcm = new Int16Array(frames.reduce((n, f) => n + f.pcm.length, 0));
      let at = 0;
      for (const f of frames) {
        pcm.set(f.pcm, at);
        at += f.pcm.length;
      }
      return decodeWords(pcm, RATE_HZ);
    },
    /** Every message of one kind, in order. */
    all<C extends ResponseCase>(kind: C): ResponseOf<C>[] {
      return received.filter((m) => m.response.response.case === kind).map((m) => m.response.response.value as ResponseOf<C>);
    },
    elapsedMs: now,
    get live() {
      return live;
    },
    /** The microphone and the speaker stop (the connection is gone). */
    stop(): void {
      clearInterval(timer);
      timer = undefined;
    },
  };
}

export type TalkPeer = ReturnType<typeof createTalkPeer>;

/** A talk client over a WebSocket (the browser's wire): binary protobuf frames both ways. */
export async function connectWebTalk(url: string) {
  const ws = new WebSocket(url);
  ws.binaryType = 'nodebuffer';
  const peer = createTalkPeer((request) => {
    if (ws.readyState === ws.OPEN) ws.send(toBinary(AssistantTalkRequestSchema, create(AssistantTalkRequestSchema, { request })));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => {
      peer.stop();
      resolve({ code, reason: String(reason) });
    }),
  );
  ws.on('message', (data, isBinary) => {
    if (isBinary) peer.receive(fromBinary(AssistantTalkResponseSchema, data as Buffer));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`talk URL answered HTTP ${res.statusCode}`)));
  });
  return { ws, peer, closed };
}

/**
 * A talk client over gRPC `AssistantTalk` (an SDK's wire), on any grpc-js client of the node (e.g. the typed
 * one from media-node/grpc/talk-service.ts). Requests go out as bytes the peer encodes, so `writeRaw` can
 * also send bytes that are no AssistantTalkRequest at all.
 */
export function connectGrpcTalk(client: grpc.Client, metadata: Record<string, string>) {
  const meta = new grpc.Metadata();
  for (const [name, value] of Object.entries(metadata)) meta.set(name, value);
  const stream = client.makeBidiStreamRequest<Uint8Array, AssistantTalkResponse>(
    `/${TalkService.typeName}/AssistantTalk`,
    (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    (bytes) => fromBinary(AssistantTalkResponseSchema, bytes),
    meta,
  );
  const writeRaw = (bytes: Uint8Array) => {
    if (!stream.writableEnded && !stream.destroyed) stream.write(bytes);
  };
  const peer = createTalkPeer((request) => writeRaw(toBinary(AssistantTalkRequestSchema, create(AssistantTalkRequestSchema, { request }))));
  stream.on('data', (response: AssistantTalkResponse) => peer.receive(response));
  // A non-OK status also arrives as 'error'; the status event carries it either way.
  stream.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) =>
    stream.once('status', (s: grpc.StatusObject) => {
      peer.stop();
      resolve(s);
    }),
  );
  return { stream, peer, status, writeRaw };
}
