import { z } from 'zod';
import { EXOTEL_CHUNK } from '../../shared/telephony/exotel';
import { createCallerQueue } from './caller';
import { createPlayback } from './playback';
import { dialFailure, DialError, openCarrierSocket, redact, startFrameClock, type SimulatedCall } from './simulated-call';

/**
 * Exotel's Voicebot applet taking an inbound call (telephony reference §3): asks the applet's dynamic URL for
 * the stream URL (a GET with Exotel's call parameters and HTTP Basic credentials, since Exotel signs nothing),
 * connects there, sends `connected` and `start` (`media_format` 16-bit PCM at the URL's `sample-rate`), then
 * the caller's audio as base64 PCM in 100 ms `media` messages. What the node sends plays one 20 ms slice per
 * 20 ms; a `mark` is echoed when playback reaches it; a `clear` drops the queued audio and its marks. Outbound
 * chunks that break Exotel's size rules (a multiple of 320 bytes, 3.2–100 KB) are counted. Hanging up sends
 * `stop` (reason `callended`).
 */
export interface ExotelDialOptions {
  readonly url: string;
  readonly assistant: string;
  /** The exotel credential's webhookUsername/webhookPassword (by default its apiKey/apiToken). */
  readonly username: string;
  readonly password: string;
}

const StreamUrlAnswer = z.object({ url: z.string().regex(/^wss?:\/\//, 'a ws:// or wss:// URL') });
const Outbound = z.union([
  z.object({ event: z.literal('media'), stream_sid: z.string(), media: z.object({ payload: z.string() }) }),
  z.object({ event: z.literal('mark'), stream_sid: z.string(), mark: z.object({ name: z.string() }) }),
  z.object({ event: z.literal('clear'), stream_sid: z.string() }),
]);

export async function dialExotel(options: ExotelDialOptions): Promise<SimulatedCall> {
  const base = options.url.replace(/\/+$/, '');
  const callSid = crypto.randomUUID().replace(/-/g, '');
  const query = new URLSearchParams({ CallSid: callSid, CallFrom: '09876543210', CallTo: '08047491899', Direction: 'incoming' });
  const response = await fetch(`${base}/v1/talk/exotel/call/${encodeURIComponent(options.assistant)}?${query}`, {
    headers: { authorization: `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}` },
  });
  if (response.status !== 200) throw await dialFailure('the Exotel dynamic URL', response);
  const answer = StreamUrlAnswer.safeParse(await response.json().catch(() => undefined));
  if (!answer.success) throw new DialError(`the dynamic URL did not answer {"url": "wss://…"}: ${z.prettifyError(answer.error)}`);
  const streamUrl = answer.data.url;
  const rate = Number(new URL(streamUrl).searchParams.get('sample-rate') ?? '8000');
  if (![8000, 16000, 24000].includes(rate)) throw new DialError(`Exotel streams at 8000, 16000 or 24000 Hz; ${redact(streamUrl)} asks for ${rate}`);

  const ws = await openCarrierSocket(streamUrl);
  const streamSid = `MZ${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const counters = { marksEchoed: 0, chunkViolations: 0 };
  let sequence = 0;
  let chunk = 0;
  let closed = false;
  let callerHungUp = false;
  const send = (message: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event: message.event, sequence_number: String(++sequence), stream_sid: streamSid, ...message }));
  };
  const playback = createPlayback<string>({
    onMarkReached: (name) => {
      counters.marksEchoed++;
      send({ event: 'mark', mark: { name } });
    },
  });
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('close', () => (closed = true));
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    let parsed: unknown;
    try {
      parsed = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const message = Outbound.safeParse(parsed);
    if (!message.success || message.data.stream_sid !== streamSid) return;
    const m = message.data;
    if (m.event === 'media') {
      const bytes = Buffer.from(m.media.payload, 'base64');
      if (bytes.length % EXOTEL_CHUNK.multipleOf !== 0 || bytes.length < EXOTEL_CHUNK.minBytes || bytes.length > EXOTEL_CHUNK.maxBytes) counters.chunkViolations++;
      const pcm = new Int16Array(bytes.length >> 1);
      for (let i = 0; i < pcm.length; i++) pcm[i] = bytes.readInt16LE(i * 2);
      playback.queueAudio(pcm, rate / 50);
    } else if (m.event === 'mark') {
      playback.queueMark(m.mark.name);
    } else {
      // Whether Exotel echoes the marks a clear drops is not documented: dropped here.
      playback.clear();
    }
  });

  ws.send(JSON.stringify({ event: 'connected' }));
  send({
    event: 'start',
    start: {
      stream_sid: streamSid,
      call_sid: callSid,
      account_sid: 'simulated-exotel-account',
      from: '09876543210',
      to: '08047491899',
      custom_parameters: {},
      media_format: { encoding: 'audio/x-raw', sample_rate: String(rate), bit_rate: '16' },
    },
  });

  // Playback runs on the 20 ms clock; the caller's audio goes out in 100 ms messages.
  const caller = createCallerQueue(rate / 10);
  const stopPlayer = startFrameClock(() => {
    if (!closed) playback.tick();
  });
  const stopTalker = startFrameClock(() => {
    if (closed) return;
    const pcm = caller.next();
    chunk++;
    send({ event: 'media', media: { chunk: String(chunk), timestamp: String(chunk * 100), payload: Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).toString('base64') } });
  }, 100);
  const stopClocks = () => {
    stopPlayer();
    stopTalker();
  };
  void closedPromise.then(stopClocks);

  return {
    carrier: 'exotel',
    sampleRateHz: rate,
    say: (pcm) => void caller.say(pcm),
    heardPcm: () => playback.heardPcm(),
    counters: () => ({ framesPlayed: playback.stats.framesPlayed, clears: playback.stats.clears, marksEchoed: counters.marksEchoed, chunkViolations: counters.chunkViolations }),
    async hangUp() {
      callerHungUp = true;
      send({ event: 'stop', stop: { call_sid: callSid, account_sid: 'simulated-exotel-account', reason: 'callended' } });
      stopClocks();
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise,
    endedByNode: () => closed && !callerHungUp,
  };
}
