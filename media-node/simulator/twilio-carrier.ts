import { z } from 'zod';
import { mulawDecode, mulawEncode } from '../../shared/audio/g711';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { createCallerQueue } from './caller';
import { createPlayback } from './playback';
import { dialFailure, DialError, openCarrierSocket, startFrameClock, type SimulatedCall } from './simulated-call';

/**
 * Plays Twilio's side of a Media Streams call against a media URL: sends `connected`, `start`, then the
 * caller's μ-law audio in real time (20 ms per message, silence between utterances); plays back what the
 * server sends like Twilio does (one 20 ms frame per 20 ms, marks echoed when playback reaches them, a
 * `clear` drops the queue and echoes every pending mark at once); records what the caller heard.
 */
export interface TwilioCarrierOptions {
  readonly mediaUrl: string;
  readonly callSid?: string;
  readonly accountSid?: string;
  readonly parameters?: Record<string, string>;
}

const FRAME_SAMPLES = 160;

/** What the node may send Twilio (only the fields the carrier acts on). */
const Outbound = z.union([
  z.object({ event: z.literal('media'), media: z.object({ payload: z.string().min(1) }) }),
  z.object({ event: z.literal('mark'), mark: z.object({ name: z.string() }) }),
  z.object({ event: z.literal('clear') }),
]);

export async function connectTwilioCarrier(options: TwilioCarrierOptions) {
  const streamSid = `MZ${crypto.randomUUID().replace(/-/g, '')}`;
  const callSid = options.callSid ?? `CA${crypto.randomUUID().replace(/-/g, '')}`;
  const accountSid = options.accountSid ?? `AC${'0'.repeat(32)}`;
  /** firstMediaMs: from the WebSocket open to the first `media` message received (-1 until then). */
  const stats = { clears: 0, marksEchoed: 0, framesReceived: 0, framesPlayed: 0, closeCode: 0, closeReason: '', firstMediaMs: -1 };
  const caller = createCallerQueue(FRAME_SAMPLES);
  let sequence = 0;
  let chunk = 0;
  let closed = false;
  const ws = await openCarrierSocket(options.mediaUrl);
  const openedAt = performance.now();

  const sendJson = (message: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ sequenceNumber: String(++sequence), ...message }));
  };
  const echoMark = (name: string) => {
    stats.marksEchoed++;
    sendJson({ event: 'mark', streamSid, mark: { name } });
  };
  const playback = createPlayback<string>({ onMarkReached: echoMark });
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('message', (data) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(data));
    } catch {
      return;
    }
    const message = Outbound.safeParse(parsed);
    if (!message.success) return;
    const m = message.data;
    if (m.event === 'media') {
      if (stats.framesReceived === 0) stats.firstMediaMs = performance.now() - openedAt;
      stats.framesReceived++;
      const ulaw = new Uint8Array(Buffer.from(m.media.payload, 'base64'));
      const pcm = new Int16Array(ulaw.length);
      mulawDecode(ulaw, pcm);
      playback.queueAudio(pcm, FRAME_SAMPLES);
    } else if (m.event === 'mark') {
      playback.queueMark(m.mark.name);
    } else {
      stats.clears++;
      // Twilio drops the queued audio and echoes every pending mark.
      for (const name of playback.clear()) echoMark(name);
    }
  });
  ws.on('close', (code, reason) => {
    closed = true;
    stats.closeCode = code;
    stats.closeReason = String(reason);
  });

  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  sendJson({
    event: 'start',
    streamSid,
    start: { accountSid, streamSid, callSid, tracks: ['inbound'], customParameters: options.parameters ?? {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } },
  });

  // One 20 ms tick: play one outbound frame (and the marks around it), send one caller frame.
  const stopClock = startFrameClock(() => {
    if (closed) return;
    playback.tick();
    stats.framesPlayed = playback.stats.framesPlayed;
    const ulaw = new Uint8Array(FRAME_SAMPLES);
    mulawEncode(caller.next(), ulaw, FRAME_SAMPLES);
    chunk++;
    sendJson({ event: 'media', streamSid, media: { track: 'inbound', chunk: String(chunk), timestamp: String(chunk * 20), payload: Buffer.from(ulaw).toString('base64') } });
  });

  return {
    streamSid,
    callSid,
    stats,
    heard: playback.heard,
    /** Caller speech as PCM16 8 kHz: queued behind anything already queued. Returns its duration in ms. */
    say(pcm8k: Int16Array): number {
      caller.say(pcm8k);
      return (pcm8k.length / 8000) * 1000;
    },
    pressDigit(digit: string): void {
      sendJson({ event: 'dtmf', streamSid, dtmf: { track: 'inbound_track', digit } });
    },
    /** Everything played so far as one PCM16 8 kHz buffer (or only frames played in [fromMs, toMs)). */
    heardPcm: playback.heardPcm,
    elapsedMs: playback.elapsedMs,
    /** The caller hangs up: `stop`, then close. */
    async hangUp(): Promise<void> {
      sendJson({ event: 'stop', streamSid, stop: { accountSid, callSid } });
      stopClock();
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise.then(stopClock),
  };
}

export interface TwilioDialOptions {
  /** Where the node listens (http://host:port). */
  readonly url: string;
  /** The node's PUBLIC_BASE_URL when it differs from `url`: Twilio signs the public URL. */
  readonly publicUrl?: string;
  readonly assistant: string;
  /** The project's twilio credential. */
  readonly accountSid: string;
  readonly authToken: string;
}

/** Twilio taking an inbound call: signs and posts the Voice webhook, follows the TwiML `<Stream>`, and plays the stream. */
export async function dialTwilio(options: TwilioDialOptions): Promise<SimulatedCall> {
  const base = options.url.replace(/\/+$/, '');
  const signedBase = (options.publicUrl ?? base).replace(/\/+$/, '');
  const path = `/v1/talk/twilio/call/${encodeURIComponent(options.assistant)}`;
  const callSid = `CA${crypto.randomUUID().replace(/-/g, '')}`;
  const params = { AccountSid: options.accountSid, CallSid: callSid, From: '+15550100', To: '+15550199', CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01' };
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': await signTwilioRequest({ authToken: options.authToken, url: `${signedBase}${path}`, params }) },
    body: new URLSearchParams(params).toString(),
  });
  if (response.status !== 200) throw await dialFailure('the Twilio voice webhook', response);
  const twiml = await response.text();
  const streamUrl = /<Stream url="([^"]+)"/.exec(twiml)?.[1];
  if (!streamUrl) throw new DialError(`the voice webhook answered TwiML without a <Stream>:\n${twiml.slice(0, 400)}`);
  // The conversation id travels as a stream parameter in the TwiML.
  const conversationId = /name="conversationId" value="([^"]+)"/.exec(twiml)?.[1];
  const carrier = await connectTwilioCarrier({ mediaUrl: streamUrl, callSid, accountSid: options.accountSid });
  let callerHungUp = false;
  return {
    carrier: 'twilio',
    sampleRateHz: 8000,
    ...(conversationId ? { conversationId } : {}),
    say: (pcm) => void carrier.say(pcm),
    heardPcm: () => carrier.heardPcm(),
    counters: () => ({ framesPlayed: carrier.stats.framesPlayed, clears: carrier.stats.clears, marksEchoed: carrier.stats.marksEchoed }),
    hangUp: () => {
      callerHungUp = true;
      return carrier.hangUp();
    },
    closed: carrier.closed,
    endedByNode: () => carrier.stats.closeCode !== 0 && !callerHungUp,
  };
}
