import { createHash, createHmac } from 'node:crypto';
import WebSocket from 'ws';

/**
 * Plays Vonage's side of a Voice API WebSocket call, written from the telephony reference (§2.1–§2.4), not
 * from our codec: Vonage is the client; its first frame is the text `websocket:connected` with the NCCO's
 * content-type and headers flattened to the top level; then one binary L16 frame (20 ms: 640 bytes at
 * 16 kHz, 320 at 8 kHz) every 20 ms, with DTMF as interleaved text events. What the server sends is played
 * like Vonage does: one 20 ms frame per 20 ms; `{"action":"notify"}` is echoed as `websocket:notify` with
 * the same payload when playback reaches it; `{"action":"clear"}` drops the queue and is acknowledged with
 * `websocket:cleared`. Whether Vonage echoes notifies that a clear discarded is not documented: this peer
 * drops them (the harder case for the server). A binary frame that is not exactly one 20 ms frame is counted
 * as a violation. Vonage sends no stop message: the caller hanging up closes the socket.
 */
export interface VonagePeerOptions {
  /** The NCCO endpoint's `uri`. */
  readonly uri: string;
  /** The NCCO endpoint's `content-type`, e.g. `audio/l16;rate=16000`. */
  readonly contentType: string;
  /** The NCCO endpoint's `headers`. */
  readonly headers?: Readonly<Record<string, unknown>>;
}

type Queued = { kind: 'audio'; pcm: Int16Array } | { kind: 'notify'; payload: unknown };

export async function connectVonagePeer(options: VonagePeerOptions) {
  const rate = Number(/rate=(\d+)/.exec(options.contentType)?.[1] ?? Number.NaN);
  if (rate !== 8000 && rate !== 16000) throw new Error(`the peer plays L16 at 8000 or 16000 Hz, not ${options.contentType}`);
  const frameBytes = (rate / 50) * 2;
  const ws = new WebSocket(options.uri);
  const stats = { clears: 0, notifiesEchoed: 0, framesReceived: 0, framesPlayed: 0, badFrames: 0, badFrameSizes: [] as number[], textReceived: 0, closeCode: 0, closeReason: '' };
  const queue: Queued[] = [];
  const heard: { atMs: number; pcm: Int16Array }[] = [];
  const callerFrames: Uint8Array[] = [];
  /** Every text message the server sent, parsed. */
  const controls: Record<string, unknown>[] = [];
  const startedAt = performance.now();
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      stats.framesReceived++;
      if (data.byteLength !== frameBytes) {
        stats.badFrames++;
        if (stats.badFrameSizes.length < 10) stats.badFrameSizes.push(data.byteLength);
      }
      const pcm = new Int16Array(data.byteLength >> 1);
      for (let i = 0; i < pcm.length; i++) pcm[i] = data.readInt16LE(i * 2);
      queue.push({ kind: 'audio', pcm });
      return;
    }
    stats.textReceived++;
    let message: { action?: unknown; payload?: unknown };
    try {
      message = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    controls.push(message as Record<string, unknown>);
    if (message.action === 'notify') queue.push({ kind: 'notify', payload: message.payload });
    else if (message.action === 'clear') {
      stats.clears++;
      queue.splice(0);
      sendText({ event: 'websocket:cleared' });
    }
  });
  ws.on('close', (code, reason) => {
    closed = true;
    stats.closeCode = code;
    stats.closeReason = String(reason);
  });

  function sendText(message: Record<string, unknown>): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }

  function echoLeadingNotifies(): void {
    for (let head = queue[0]; head?.kind === 'notify'; head = queue[0]) {
      queue.shift();
      stats.notifiesEchoed++;
      sendText({ event: 'websocket:notify', payload: head.payload });
    }
  }

  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`media URI answered HTTP ${res.statusCode}`)));
  });
  ws.send(JSON.stringify({ event: 'websocket:connected', 'content-type': options.contentType, ...options.headers }));

  const silence = new Uint8Array(frameBytes);
  const timer = setInterval(() => {
    if (closed) return;
    echoLeadingNotifies();
    const item = queue.shift();
    if (item?.kind === 'audio') {
      stats.framesPlayed++;
      heard.push({ atMs: performance.now() - startedAt, pcm: item.pcm });
    }
    echoLeadingNotifies();
    if (ws.readyState === ws.OPEN) ws.send(callerFrames.shift() ?? silence, { binary: true });
  }, 20);

  return {
    sampleRateHz: rate,
    frameBytes,
    stats,
    controls,
    /** Caller speech as PCM16 at the call's rate, queued as 20 ms frames (the last one padded). Returns its duration in ms. */
    say(pcm: Int16Array): number {
      const samples = frameBytes / 2;
      for (let i = 0; i < pcm.length; i += samples) {
        const frame = new Uint8Array(frameBytes);
        const view = new DataView(frame.buffer);
        const slice = pcm.subarray(i, i + samples);
        for (let j = 0; j < slice.length; j++) view.setInt16(j * 2, slice[j]!, true);
        callerFrames.push(frame);
      }
      return (pcm.length / rate) * 1000;
    },
    /** A key press: the documented shape (`digit` at the top level) or the nested one some integrations read. */
    pressDigit(digit: string, shape: 'flat' | 'nested' = 'flat'): void {
      sendText(shape === 'flat' ? { event: 'websocket:dtmf', digit, duration: 260 } : { event: 'websocket:dtmf', dtmf: { digit, duration: 260 } });
    },
    /** Anything, as is (malformed frames). */
    sendRaw(payload: string | Uint8Array): void {
      if (ws.readyState === ws.OPEN) ws.send(payload, { binary: typeof payload !== 'string' });
    },
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
    /** The caller hangs up: Vonage closes the WebSocket. */
    async hangUp(): Promise<void> {
      clearInterval(timer);
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise.then(() => clearInterval(timer)),
  };
}

export type VonagePeer = Awaited<ReturnType<typeof connectVonagePeer>>;

const base64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/**
 * `Authorization: Bearer <JWT>` as Vonage signs a webhook (§2.4): HS256 with the signature secret over
 * `iat`, `jti`, `iss`, `api_key`, `application_id` and, when a body is given, `payload_hash` (hex SHA-256 of it).
 */
export function vonageWebhookAuthorization(input: { signatureSecret: string; body?: string; iatMs?: number; claims?: Record<string, unknown>; alg?: string }): string {
  const claims = {
    iat: Math.floor((input.iatMs ?? Date.now()) / 1000),
    jti: crypto.randomUUID(),
    iss: 'Vonage',
    ...(input.body !== undefined ? { payload_hash: createHash('sha256').update(input.body).digest('hex') } : {}),
    ...input.claims,
  };
  const signingInput = `${base64url(JSON.stringify({ alg: input.alg ?? 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  const signature = createHmac('sha256', input.signatureSecret).update(signingInput).digest('base64url');
  return `Bearer ${signingInput}.${signature}`;
}
