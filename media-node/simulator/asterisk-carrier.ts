import { z } from 'zod';
import { createCallerQueue } from './caller';
import { createPlayback } from './playback';
import { dialFailure, DialError, openCarrierSocket, startFrameClock, type SimulatedCall } from './simulated-call';

/**
 * Asterisk's chan_websocket taking an inbound call (telephony reference §5): the dialplan's CURL() posts
 * `/v1/talk/asterisk/call/:assistantId` with the project's API key, then `Dial(WebSocket/…/c(slin16)f(json))`
 * connects to the answered URL and sends `MEDIA_START`, then the caller's slin16 as one BINARY frame per 20 ms.
 * What the node sends is cut into `optimal_frame_size` frames (a remainder is dropped unless
 * START_MEDIA_BUFFERING carries it over; STOP_MEDIA_BUFFERING pads it) and played one per 20 ms; MARK_MEDIA is
 * answered with MEDIA_MARK_PROCESSED when playback reaches it; FLUSH_MEDIA drops the queue; MEDIA_XOFF goes out
 * at 900 queued frames and MEDIA_XON below 800; HANGUP ends the call. The caller hanging up closes the socket.
 */
export interface AsteriskDialOptions {
  readonly url: string;
  readonly assistant: string;
  /** A secret project key (`vr_sk_…`), as the dialplan's CURLOPT(httpheader) carries it. */
  readonly apiKey: string;
}

const RATE_HZ = 16000;
const FRAME_BYTES = 640; // slin16, 20 ms
const QUEUE_MAX = 1000;
const XOFF_LEVEL = 900;
const XON_LEVEL = 800;

const ContextAnswer = z.object({ contextId: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'a UUID'), conversationId: z.string().min(1), webSocketUrl: z.string().regex(/^wss?:\/\//, 'a ws:// or wss:// URL') });
export type AsteriskContext = z.output<typeof ContextAnswer>;
const Command = z.object({ command: z.string(), correlation_id: z.string().optional() });

/** The dialplan's `CURL()`: a call context for the assistant (asked as JSON, to learn the URL and conversation too). */
export async function requestAsteriskContext(options: AsteriskDialOptions): Promise<AsteriskContext> {
  const base = options.url.replace(/\/+$/, '');
  const response = await fetch(`${base}/v1/talk/asterisk/call/${encodeURIComponent(options.assistant)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${options.apiKey}`, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ from: '5551234', to: '100' }).toString(),
  });
  if (response.status !== 201) throw await dialFailure('POST /v1/talk/asterisk/call', response);
  const answer = ContextAnswer.safeParse(await response.json().catch(() => undefined));
  if (!answer.success) throw new DialError(`POST /v1/talk/asterisk/call did not answer a call context: ${z.prettifyError(answer.error)}`);
  return answer.data;
}

export async function dialAsterisk(options: AsteriskDialOptions): Promise<SimulatedCall> {
  const context = await requestAsteriskContext(options);
  const ws = await openCarrierSocket(context.webSocketUrl);
  const channelId = `${Math.floor(Date.now() / 1000)}.${Math.floor(Math.random() * 1000)}`;
  const counters = { marksProcessed: 0, droppedRemainderBytes: 0, xoffs: 0, hangupCommands: 0 };
  let buffering = false;
  let leftover = new Uint8Array(0);
  let xoff = false;
  let closed = false;
  let callerHungUp = false;
  const event = (name: string, fields: Record<string, string | number> = {}) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event: name, channel_id: channelId, ...fields }));
  };
  const playback = createPlayback<string>({
    maxQueuedFrames: QUEUE_MAX,
    onMarkReached: (id) => {
      counters.marksProcessed++;
      event('MEDIA_MARK_PROCESSED', { correlation_id: id });
    },
  });
  const queueFrames = (bytes: Uint8Array) => {
    const pcm = new Int16Array(bytes.length >> 1);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < pcm.length; i++) pcm[i] = view.getInt16(i * 2, true);
    playback.queueAudio(pcm, FRAME_BYTES / 2);
    if (!xoff && playback.queuedFrames() >= XOFF_LEVEL) {
      xoff = true;
      counters.xoffs++;
      event('MEDIA_XOFF');
    }
  };

  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('close', () => (closed = true));
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      let bytes: Uint8Array = data;
      if (buffering && leftover.length > 0) bytes = Buffer.concat([leftover, data]);
      const whole = bytes.length - (bytes.length % FRAME_BYTES);
      if (whole > 0) queueFrames(bytes.subarray(0, whole));
      if (whole < bytes.length) {
        if (buffering) leftover = bytes.slice(whole);
        else counters.droppedRemainderBytes += bytes.length - whole;
      } else leftover = new Uint8Array(0);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const command = Command.safeParse(parsed);
    if (!command.success) return;
    switch (command.data.command) {
      case 'MARK_MEDIA':
        playback.queueMark(command.data.correlation_id ?? '');
        return;
      case 'FLUSH_MEDIA':
        // chan_websocket drops queued media and its markers silently, and ends buffering.
        playback.clear();
        buffering = false;
        leftover = new Uint8Array(0);
        return;
      case 'START_MEDIA_BUFFERING':
        buffering = true;
        return;
      case 'STOP_MEDIA_BUFFERING':
        buffering = false;
        if (leftover.length > 0) {
          const padded = new Uint8Array(FRAME_BYTES);
          padded.set(leftover);
          queueFrames(padded);
          leftover = new Uint8Array(0);
        }
        event('MEDIA_BUFFERING_COMPLETED', { correlation_id: command.data.correlation_id ?? '' });
        return;
      case 'HANGUP':
        counters.hangupCommands++;
        ws.close(1000);
        return;
      default:
        return;
    }
  });

  ws.send(
    JSON.stringify({
      event: 'MEDIA_START',
      connection_id: crypto.randomUUID(),
      channel: `WebSocket/voice-ai-${channelId}`,
      channel_id: channelId,
      format: 'slin16',
      optimal_frame_size: FRAME_BYTES,
      ptime: 20,
      channel_variables: { CALLERID_NUM: '5551234' },
    }),
  );

  const caller = createCallerQueue(FRAME_BYTES / 2);
  const stopClock = startFrameClock(() => {
    if (closed) return;
    playback.tick();
    if (xoff && playback.queuedFrames() < XON_LEVEL) {
      xoff = false;
      event('MEDIA_XON');
    }
    const pcm = caller.next();
    const frame = Buffer.alloc(FRAME_BYTES);
    for (let i = 0; i < pcm.length; i++) frame.writeInt16LE(pcm[i]!, i * 2);
    if (ws.readyState === ws.OPEN) ws.send(frame, { binary: true });
  });
  void closedPromise.then(stopClock);

  return {
    carrier: 'asterisk',
    sampleRateHz: RATE_HZ,
    conversationId: context.conversationId,
    say: (pcm) => void caller.say(pcm),
    heardPcm: () => playback.heardPcm(),
    counters: () => ({ framesPlayed: playback.stats.framesPlayed, flushes: playback.stats.clears, marksProcessed: counters.marksProcessed, droppedRemainderBytes: counters.droppedRemainderBytes, xoffs: counters.xoffs }),
    async hangUp() {
      callerHungUp = true;
      stopClock();
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise,
    endedByNode: () => closed && !callerHungUp,
  };
}
