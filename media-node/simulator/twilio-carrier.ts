import WebSocket from 'ws';
import { mulawDecode, mulawEncode } from '../../shared/audio/g711';

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

type Queued = { kind: 'audio'; ulaw: Uint8Array } | { kind: 'mark'; name: string };

export async function connectTwilioCarrier(options: TwilioCarrierOptions) {
  const streamSid = `MZ${crypto.randomUUID().replace(/-/g, '')}`;
  const callSid = options.callSid ?? `CA${crypto.randomUUID().replace(/-/g, '')}`;
  const accountSid = options.accountSid ?? `AC${'0'.repeat(32)}`;
  const ws = new WebSocket(options.mediaUrl);
  /** firstMediaMs: from the WebSocket open to the first `media` message received (-1 until then). */
  const stats = { clears: 0, marksEchoed: 0, framesReceived: 0, framesPlayed: 0, closeCode: 0, closeReason: '', firstMediaMs: -1 };
  let openedAt = 0;
  const outQueue: Queued[] = [];
  /** PCM16 8 kHz of everything played to the caller, with the time each 20 ms frame played. */
  const heard: { atMs: number; pcm: Int16Array }[] = [];
  const callerAudio: Uint8Array[] = [];
  let sequence = 0;
  let chunk = 0;
  let closed = false;
  const startedAt = performance.now();
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));

  const sendJson = (message: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ sequenceNumber: String(++sequence), ...message }));
  };

  ws.on('message', (data) => {
    let message: { event?: string; media?: { payload?: string }; mark?: { name?: string } };
    try {
      message = JSON.parse(String(data));
    } catch {
      return;
    }
    if (message.event === 'media' && message.media?.payload) {
      if (stats.framesReceived === 0) stats.firstMediaMs = performance.now() - openedAt;
      stats.framesReceived++;
      outQueue.push({ kind: 'audio', ulaw: new Uint8Array(Buffer.from(message.media.payload, 'base64')) });
    } else if (message.event === 'mark' && message.mark?.name !== undefined) {
      outQueue.push({ kind: 'mark', name: message.mark.name });
    } else if (message.event === 'clear') {
      stats.clears++;
      // Twilio drops the queued audio and echoes every pending mark.
      for (const item of outQueue.splice(0)) if (item.kind === 'mark') echoMark(item.name);
    }
  });
  ws.on('close', (code, reason) => {
    closed = true;
    stats.closeCode = code;
    stats.closeReason = String(reason);
  });

  /** Marks right at the head of the playback queue have been reached. */
  function echoLeadingMarks(): void {
    for (let head = outQueue[0]; head?.kind === 'mark'; head = outQueue[0]) {
      outQueue.shift();
      echoMark(head.name);
    }
  }

  function echoMark(name: string): void {
    stats.marksEchoed++;
    sendJson({ event: 'mark', streamSid, mark: { name } });
  }

  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      openedAt = performance.now();
      resolve();
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`media URL answered HTTP ${res.statusCode}`)));
  });
  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  sendJson({
    event: 'start',
    streamSid,
    start: { accountSid, streamSid, callSid, tracks: ['inbound'], customParameters: options.parameters ?? {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } },
  });

  // One 20 ms tick: play one outbound frame (and the marks behind it), send one caller frame.
  const silence = new Uint8Array(160).fill(0xff);
  const timer = setInterval(() => {
    if (closed) return;
    echoLeadingMarks();
    const item = outQueue.shift();
    if (item?.kind === 'audio') {
      stats.framesPlayed++;
      const pcm = new Int16Array(item.ulaw.length);
      mulawDecode(item.ulaw, pcm);
      heard.push({ atMs: performance.now() - startedAt, pcm });
    }
    echoLeadingMarks();
    const frame = callerAudio.shift() ?? silence;
    chunk++;
    sendJson({ event: 'media', streamSid, media: { track: 'inbound', chunk: String(chunk), timestamp: String(chunk * 20), payload: Buffer.from(frame).toString('base64') } });
  }, 20);

  return {
    streamSid,
    callSid,
    stats,
    heard,
    /** Caller speech as PCM16 8 kHz: queued behind anything already queued. Returns its duration in ms. */
    say(pcm8k: Int16Array): number {
      for (let i = 0; i < pcm8k.length; i += 160) {
        const ulaw = new Uint8Array(160).fill(0xff);
        const slice = pcm8k.subarray(i, i + 160);
        mulawEncode(slice, ulaw, slice.length);
        callerAudio.push(ulaw);
      }
      return (pcm8k.length / 8000) * 1000;
    },
    pressDigit(digit: string): void {
      sendJson({ event: 'dtmf', streamSid, dtmf: { track: 'inbound_track', digit } });
    },
    /** Everything played so far as one PCM16 8 kHz buffer (or only frames played in [fromMs, toMs)). */
    heardPcm(fromMs = -Infinity, toMs = Infinity): Int16Array {
      const frames = heard.filter((h) => h.atMs >= fromMs && h.atMs < toMs);
      const out = new Int16Array(frames.reduce((n, f) => n + f.pcm.length, 0));
      let at = 0;
      for (const f of frames) {
        out.set(f.pcm, at);
        at += f.pcm.length;
      }
      return out;
    },
    elapsedMs: () => performance.now() - startedAt,
    /** The caller hangs up: `stop`, then close. */
    async hangUp(): Promise<void> {
      sendJson({ event: 'stop', streamSid, stop: { accountSid, callSid } });
      clearInterval(timer);
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise.then(() => clearInterval(timer)),
  };
}
