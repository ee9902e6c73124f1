import WebSocket from 'ws';

/**
 * Plays Exotel's side of a Voicebot applet (bidirectional stream), written from the telephony reference (§3),
 * not from our codec. Exotel is the client: `{"event":"connected"}`, then `start` (snake_case; `media_format`
 * `audio/x-raw`, 16-bit PCM at the stream URL's `sample-rate`), then caller audio as base64 PCM16 in ~100 ms
 * `media` messages, every 100 ms; numeric values are strings and every message after `connected` carries
 * `sequence_number` and `stream_sid`. What the server sends is played like Exotel plays it: queued, one
 * 20 ms slice per 20 ms; a `mark` is echoed when playback reaches it; a `clear` drops the queued audio (and
 * the marks in it: whether Exotel echoes those is not documented, so this peer does not, the harder case).
 * Every `media` payload the server sends is checked against Exotel's chunk rules (multiple of 320 bytes,
 * 3 200 ≤ bytes ≤ 100 000): a violation is counted. The caller hanging up sends `stop` (reason `callended`).
 */
export interface ExotelPeerOptions {
  /** The URL the dynamic endpoint answered (`wss://…/ctx/{id}?sample-rate=8000`). */
  readonly url: string;
  readonly callSid?: string;
  readonly customParameters?: Readonly<Record<string, string>>;
}

type Queued = { kind: 'audio'; pcm: Int16Array } | { kind: 'mark'; name: string };

export async function connectExotelPeer(options: ExotelPeerOptions) {
  const rate = Number(new URL(options.url).searchParams.get('sample-rate') ?? '8000');
  if (![8000, 16000, 24000].includes(rate)) throw new Error(`Exotel streams at 8000, 16000 or 24000 Hz, not ${rate}`);
  const samplesPer20Ms = rate / 50;
  const streamSid = `MZ${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const callSid = options.callSid ?? crypto.randomUUID().replace(/-/g, '');
  const ws = new WebSocket(options.url);
  const stats = { chunksReceived: 0, chunkViolations: [] as number[], clears: 0, marksReceived: 0, marksEchoed: 0, slicesPlayed: 0, closeCode: 0, closeReason: '', badMessages: 0 };
  const queue: Queued[] = [];
  const heard: { atMs: number; pcm: Int16Array }[] = [];
  let callerPcm = new Int16Array(0);
  let sequence = 0;
  let chunk = 0;
  let closed = false;
  const startedAt = performance.now();
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));

  const send = (message: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event: message.event, sequence_number: String(++sequence), stream_sid: streamSid, ...message }));
  };

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    let message: { event?: unknown; stream_sid?: unknown; media?: { payload?: unknown }; mark?: { name?: unknown } };
    try {
      message = isBinary ? {} : JSON.parse(data.toString('utf8'));
    } catch {
      stats.badMessages++;
      return;
    }
    if (message.stream_sid !== streamSid) {
      stats.badMessages++;
      return;
    }
    if (message.event === 'media' && typeof message.media?.payload === 'string') {
      const bytes = Buffer.from(message.media.payload, 'base64');
      stats.chunksReceived++;
      if (bytes.length % 320 !== 0 || bytes.length < 3200 || bytes.length > 100_000) stats.chunkViolations.push(bytes.length);
      const pcm = new Int16Array(bytes.length >> 1);
      for (let i = 0; i < pcm.length; i++) pcm[i] = bytes.readInt16LE(i * 2);
      for (let at = 0; at < pcm.length; at += samplesPer20Ms) queue.push({ kind: 'audio', pcm: pcm.subarray(at, at + samplesPer20Ms) });
    } else if (message.event === 'mark' && typeof message.mark?.name === 'string') {
      stats.marksReceived++;
      queue.push({ kind: 'mark', name: message.mark.name });
    } else if (message.event === 'clear') {
      stats.clears++;
      queue.splice(0);
    } else {
      stats.badMessages++;
    }
  });
  ws.on('close', (code, reason) => {
    closed = true;
    stats.closeCode = code;
    stats.closeReason = String(reason);
  });

  function echoLeadingMarks(): void {
    for (let head = queue[0]; head?.kind === 'mark'; head = queue[0]) {
      queue.shift();
      stats.marksEchoed++;
      send({ event: 'mark', mark: { name: head.name } });
    }
  }

  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`stream URL answered HTTP ${res.statusCode}`)));
  });
  ws.send(JSON.stringify({ event: 'connected' }));
  send({
    event: 'start',
    start: {
      stream_sid: streamSid,
      call_sid: callSid,
      account_sid: 'exotel-test-account',
      from: '+919876543210',
      to: '+918047491899',
      custom_parameters: options.customParameters ?? {},
      media_format: { encoding: 'audio/x-raw', sample_rate: String(rate), bit_rate: '16' },
    },
  });

  // Playback: one 20 ms slice per 20 ms.
  const player = setInterval(() => {
    if (closed) return;
    echoLeadingMarks();
    const item = queue.shift();
    if (item?.kind === 'audio') {
      stats.slicesPlayed++;
      heard.push({ atMs: performance.now() - startedAt, pcm: item.pcm });
    }
    echoLeadingMarks();
  }, 20);
  // Caller audio: 100 ms per media message, silence when the caller says nothing.
  const samplesPer100Ms = rate / 10;
  const talker = setInterval(() => {
    if (closed) return;
    const pcm = new Int16Array(samplesPer100Ms);
    pcm.set(callerPcm.subarray(0, samplesPer100Ms));
    callerPcm = callerPcm.subarray(Math.min(samplesPer100Ms, callerPcm.length));
    chunk++;
    send({ event: 'media', media: { chunk: String(chunk), timestamp: String(chunk * 100), payload: Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).toString('base64') } });
  }, 100);
  const stopTimers = () => {
    clearInterval(player);
    clearInterval(talker);
  };
  void closedPromise.then(stopTimers);

  return {
    streamSid,
    callSid,
    rate,
    stats,
    /** Caller speech (PCM16 at the stream's rate), queued behind what the caller is still saying. */
    say(pcm: Int16Array): void {
      const joined = new Int16Array(callerPcm.length + pcm.length);
      joined.set(callerPcm);
      joined.set(pcm, callerPcm.length);
      callerPcm = joined;
    },
    pressDigit(digit: string): void {
      send({ event: 'dtmf', dtmf: { digit, duration: '100' } });
    },
    /** Sends a text frame as is (malformed-frame tests). */
    sendRaw(text: string): void {
      if (ws.readyState === ws.OPEN) ws.send(text);
    },
    heardPcm(): Int16Array {
      const out = new Int16Array(heard.reduce((n, h) => n + h.pcm.length, 0));
      let at = 0;
      for (const h of heard) {
        out.set(h.pcm, at);
        at += h.pcm.length;
      }
      return out;
    },
    /** The caller hangs up: `stop` (reason callended), then Exotel closes. */
    async hangUp(): Promise<void> {
      send({ event: 'stop', stop: { call_sid: callSid, account_sid: 'exotel-test-account', reason: 'callended' } });
      stopTimers();
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise,
  };
}
