import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import WebSocket from 'ws';
import { AssistantTalkRequestSchema, AssistantTalkResponseSchema, type AssistantTalkResponse } from '../../shared/talk/gen/talk_api_pb';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';

/**
 * A browser-like talk_api client for tests, in Node over `ws`: a microphone that streams 20 ms PCM16 16 kHz
 * frames in real time (silence unless words are being said), and a speaker that plays the assistant's audio
 * in real time, answers PlaybackMark with PlaybackComplete once the audio before the mark has played, pauses
 * on PlaybackPause, resumes on PlaybackContinue and drops what it holds on PlaybackFlush. "Heard" is decoded
 * from the audio the speaker actually played.
 */

const RATE_HZ = 16_000;
const FRAME_SAMPLES = 320;
const FRAME_MS = 20;
const TICK_MS = 10;

type RequestInit = MessageInitShape<typeof AssistantTalkRequestSchema>['request'];
export type Received = { readonly at: number; readonly message: AssistantTalkResponse['response'] };

export interface TalkClient {
  readonly received: Received[];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly isClosed: boolean;
  send(request: RequestInit): void;
  /** Bytes exactly as given (malformed frames, text frames). */
  sendRaw(data: Uint8Array | string): void;
  /** Say tone words through the microphone; resolves when the last word has been sent (plus silence). */
  say(text: string, trailingSilenceMs?: number): Promise<void>;
  heardWords(): string[];
  /** Every response of a case, in order. */
  all<C extends NonNullable<AssistantTalkResponse['response']['case']>>(kind: C): Extract<AssistantTalkResponse['response'], { case: C }>['value'][];
  /** Wait until `predicate` holds (checked every 25 ms); false after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean>;
  /** Drop the TCP connection without a Close frame (a lost network). */
  terminate(): void;
  close(code?: number, reason?: string): void;
}

export async function connectTalkClient(url: string, options: { microphone?: boolean } = {}): Promise<TalkClient> {
  const ws = new WebSocket(url);
  ws.binaryType = 'nodebuffer';
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const received: Received[] = [];
  let isClosed = false;
  /** When the initialization went out: the microphone streams from then on. */
  let micStartedAt: number | undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => {
      isClosed = true;
      stop();
      resolve({ code, reason: reason.toString('utf8') });
    }),
  );
  ws.on('error', () => undefined);

  const send = (request: RequestInit) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(toBinary(AssistantTalkRequestSchema, create(AssistantTalkRequestSchema, { request })));
    // The microphone starts with the stream: audio before the initialization is a protocol error.
    if (request?.case === 'initialization' && micStartedAt === undefined) micStartedAt = Date.now();
  };

  // ---- speaker ----
  type Queued = { kind: 'audio'; pcm: Int16Array } | { kind: 'mark'; id: string };
  const queue: Queued[] = [];
  let queueOffset = 0;
  let paused = false;
  const played: Int16Array[] = [];
  let lastTick = Date.now();
  let playBudget = 0;

  function play(): void {
    const now = Date.now();
    const elapsedMs = now - lastTick;
    lastTick = now;
    if (paused) return;
    playBudget = Math.min(playBudget + (elapsedMs * RATE_HZ) / 1000, RATE_HZ);
    while (queue.length > 0) {
      const head = queue[0]!;
      if (head.kind === 'mark') {
        queue.shift();
        send({ case: 'playbackComplete', value: { id: head.id } });
        continue;
      }
      if (playBudget < 1) break;
      const take = Math.min(Math.floor(playBudget), head.pcm.length - queueOffset);
      played.push(head.pcm.slice(queueOffset, queueOffset + take));
      queueOffset += take;
      playBudget -= take;
      if (queueOffset >= head.pcm.length) {
        queue.shift();
        queueOffset = 0;
      }
    }
    // Nothing to play: the speaker idles (no budget builds up while silent).
    if (queue.length === 0) playBudget = 0;
  }

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    const response = fromBinary(AssistantTalkResponseSchema, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const message = response.response;
    received.push({ at: Date.now(), message });
    switch (message.case) {
      case 'assistant':
        if (message.value.audio.byteLength > 0) {
          const bytes = new Uint8Array(message.value.audio);
          queue.push({ kind: 'audio', pcm: new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1) });
        }
        break;
      case 'playbackMark':
        queue.push({ kind: 'mark', id: message.value.id });
        break;
      case 'playbackPause':
        play();
        paused = true;
        break;
      case 'playbackContinue':
        lastTick = Date.now();
        paused = false;
        break;
      case 'playbackFlush':
        play();
        // Unplayed audio is dropped; marks go with it (they were never reached).
        queue.length = 0;
        queueOffset = 0;
        paused = false;
        break;
      default:
        break;
    }
  });

  // ---- microphone ----
  let speech: Int16Array | undefined;
  let speechOffset = 0;
  let speechDone: (() => void) | undefined;
  let silenceLeft = 0;
  let framesSent = 0;
  const microphone = options.microphone ?? true;

  function listen(): void {
    if (!microphone || micStartedAt === undefined) return;
    const due = Math.floor((Date.now() - micStartedAt) / FRAME_MS);
    while (framesSent < due) {
      framesSent++;
      const frame = new Int16Array(FRAME_SAMPLES);
      if (speech) {
        frame.set(speech.subarray(speechOffset, speechOffset + FRAME_SAMPLES));
        speechOffset += FRAME_SAMPLES;
        if (speechOffset >= speech.length) {
          speech = undefined;
          speechOffset = 0;
        }
      } else if (silenceLeft > 0) {
        silenceLeft -= FRAME_MS;
        if (silenceLeft <= 0) {
          speechDone?.();
          speechDone = undefined;
        }
      }
      send({ case: 'message', value: { content: { case: 'audio', value: new Uint8Array(frame.buffer) } } });
    }
  }

  const timer = setInterval(() => {
    play();
    listen();
  }, TICK_MS);
  function stop(): void {
    clearInterval(timer);
    speechDone?.();
  }

  const client: TalkClient = {
    received,
    closed,
    get isClosed() {
      return isClosed;
    },
    send,
    sendRaw(data) {
      if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: typeof data !== 'string' });
    },
    say(text, trailingSilenceMs = 800) {
      return new Promise<void>((resolve) => {
        speechDone?.();
        speech = synthesizeWords(splitWords(text), RATE_HZ).pcm;
        speechOffset = 0;
        silenceLeft = trailingSilenceMs;
        speechDone = resolve;
      });
    },
    heardWords() {
      const total = played.reduce((n, p) => n + p.length, 0);
      const pcm = new Int16Array(total);
      let offset = 0;
      for (const piece of played) {
        pcm.set(piece, offset);
        offset += piece.length;
      }
      return decodeWords(pcm, RATE_HZ);
    },
    all(kind) {
      return received.filter((r) => r.message.case === kind).map((r) => r.message.value) as never;
    },
    async waitFor(predicate, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (predicate()) return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return predicate();
    },
    terminate() {
      stop();
      ws.terminate();
    },
    close(code = 1000, reason = '') {
      stop();
      ws.close(code, reason);
    },
  };
  return client;
}
