import { connect, type Socket } from 'node:net';
import { prng as random } from './prng';

/**
 * Plays Asterisk's side of an AudioSocket call (telephony reference §4), written from the reference and not
 * from our codec: every frame is `type:u8 | length:u16 big-endian | payload`. It connects, sends the UUID
 * frame (`01 00 10` + 16 bytes), then one slin frame every 20 ms (the caller's speech or silence) at the
 * frame type of its rate, cut across TCP writes at arbitrary points (mid-payload, mid-header, two frames in
 * one write). What it receives it checks the way Asterisk's reader does (only hang-up and non-empty audio
 * are allowed) and "plays" on arrival, as Asterisk does (it does not re-time what it gets).
 */
export interface AudioSocketPeerOptions {
  readonly port: number;
  readonly host?: string;
  /** The call-context id (a UUID string). */
  readonly uuid: string;
  /** slin rate: 8000 (AudioSocket() app, type 0x10) or 16000 (`Dial(AudioSocket/...c(slin16))`, type 0x12), ... */
  readonly sampleRateHz?: number;
  /** Cut the outgoing byte stream at random points (default true). */
  readonly splitWrites?: boolean;
  /** Seed of the write-cutting pattern (reproducible runs). */
  readonly seed?: number;
  /** Send only the UUID, no audio (refusal tests). */
  readonly silent?: boolean;
}

const TYPE_BY_RATE: Record<number, number> = { 8000: 0x10, 12000: 0x11, 16000: 0x12, 24000: 0x13, 32000: 0x14, 44100: 0x15, 48000: 0x16, 96000: 0x17, 192000: 0x18 };
const RATE_BY_TYPE = new Map(Object.entries(TYPE_BY_RATE).map(([rate, type]) => [type, Number(rate)]));

/** A frame by hand: type, big-endian length, payload. */
export function tlv(type: number, payload: Uint8Array | number[] = []): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  const frame = new Uint8Array(3 + body.length);
  frame[0] = type;
  frame[1] = (body.length >> 8) & 0xff;
  frame[2] = body.length & 0xff;
  frame.set(body, 3);
  return frame;
}

/** The 16 bytes of a UUID string (RFC 4122 order: the hex digits as written). */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export async function connectAudioSocketPeer(options: AudioSocketPeerOptions) {
  const rate = options.sampleRateHz ?? 8000;
  const type = TYPE_BY_RATE[rate];
  if (type === undefined) throw new Error(`no AudioSocket frame type for ${rate} Hz`);
  const samplesPerFrame = rate / 50;
  const rand = random(options.seed ?? 1);
  const split = options.splitWrites ?? true;
  const socket: Socket = connect({ port: options.port, host: options.host ?? '127.0.0.1', noDelay: true });
  const stats = {
    audioFramesSent: 0,
    /** Writes that ended inside a frame's 3-byte header / inside its payload. */
    splitsInHeader: 0,
    splitsInPayload: 0,
    audioFramesReceived: 0,
    hangupsReceived: 0,
    /** Frames Asterisk would refuse: a type other than 0x00/0x10–0x18, empty or odd audio, another rate than ours. */
    violations: [] as string[],
    /** The most audio we had received beyond real time (ms), playing each frame on arrival. */
    maxAheadMs: 0,
    endedByServer: false,
    /** When the first frame of each `say` went out (ms since connect). */
    utterancesSentAtMs: [] as number[],
  };
  /** Every audio frame received, with its arrival time and when it has played out (ms since connect). */
  const heard: { atMs: number; playedUntilMs: number; pcm: Int16Array }[] = [];
  const callerFrames: Int16Array[] = [];
  /** Indexes into the caller's frames where an utterance begins (counted down as frames go out). */
  const utteranceStarts: number[] = [];
  let carry = new Uint8Array(0);
  let inbound = new Uint8Array(0);
  let playedUntil = 0;
  let closed = false;
  const startedAt = performance.now();
  const now = () => performance.now() - startedAt;
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    clearInterval(timer);
  });
  socket.on('end', () => {
    stats.endedByServer = true;
  });

  socket.on('data', (chunk: Buffer) => {
    const joined = new Uint8Array(inbound.length + chunk.length);
    joined.set(inbound);
    joined.set(chunk, inbound.length);
    let at = 0;
    while (joined.length - at >= 3) {
      const length = (joined[at + 1]! << 8) | joined[at + 2]!;
      if (joined.length - at < 3 + length) break;
      received(joined[at]!, joined.slice(at + 3, at + 3 + length));
      at += 3 + length;
    }
    inbound = joined.slice(at);
  });

  function received(frameType: number, payload: Uint8Array): void {
    if (frameType === 0x00) {
      stats.hangupsReceived++;
      return;
    }
    const frameRate = RATE_BY_TYPE.get(frameType);
    if (frameRate === undefined) return void stats.violations.push(`type 0x${frameType.toString(16)}`);
    if (payload.length === 0) return void stats.violations.push('empty audio');
    if (payload.length % 2 !== 0) return void stats.violations.push(`odd audio length ${payload.length}`);
    if (frameRate !== rate) return void stats.violations.push(`audio at ${frameRate} Hz on a ${rate} Hz call`);
    stats.audioFramesReceived++;
    const t = now();
    const ms = (payload.length / 2 / rate) * 1000;
    playedUntil = Math.max(playedUntil, t) + ms;
    stats.maxAheadMs = Math.max(stats.maxAheadMs, playedUntil - t);
    heard.push({ atMs: t, playedUntilMs: playedUntil, pcm: new Int16Array(payload.buffer, payload.byteOffset, payload.length / 2) });
  }

  /** Queue `bytes` for the wire; with splitting on, keep a random tail (sometimes 1–2 header bytes of the last frame) for the next tick. */
  function write(bytes: Uint8Array, lastFrameLength: number): void {
    if (closed || socket.destroyed) return;
    const data = new Uint8Array(carry.length + bytes.length);
    data.set(carry);
    data.set(bytes, carry.length);
    let keep = 0;
    if (split && lastFrameLength > 0) {
      const r = rand();
      if (r < 0.25) {
        keep = lastFrameLength - (1 + Math.floor(rand() * 2)); // only 1 or 2 header bytes of the last frame go now
        stats.splitsInHeader++;
      } else if (r < 0.5) {
        keep = 1 + Math.floor(rand() * (lastFrameLength - 4)); // cut inside the payload
        stats.splitsInPayload++;
      } else if (r < 0.6) {
        keep = lastFrameLength; // the whole frame rides with the next one (two frames in one write)
      }
    }
    const head = data.subarray(0, data.length - keep);
    carry = data.slice(data.length - keep);
    if (head.length === 0) return;
    if (split && head.length > 4 && rand() < 0.3) {
      // Two writes back to back (TCP may or may not merge them).
      const cut = 1 + Math.floor(rand() * (head.length - 1));
      socket.write(head.slice(0, cut));
      socket.write(head.slice(cut));
    } else {
      socket.write(head.slice());
    }
  }

  /** Flush what the splitter kept back, so control frames are not delayed behind a carried tail. */
  function writeNow(frame: Uint8Array): void {
    if (closed || socket.destroyed) return;
    const data = new Uint8Array(carry.length + frame.length);
    data.set(carry);
    data.set(frame, carry.length);
    carry = new Uint8Array(0);
    socket.write(data);
  }

  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  // The UUID goes alone at once, as Asterisk sends it on connect.
  writeNow(tlv(0x01, uuidBytes(options.uuid)));

  const silence = new Int16Array(samplesPerFrame);
  const timer = setInterval(() => {
    if (closed || options.silent) return;
    if (utteranceStarts[0] === 0) {
      utteranceStarts.shift();
      stats.utterancesSentAtMs.push(now());
    }
    for (let i = 0; i < utteranceStarts.length; i++) utteranceStarts[i]!--;
    const pcm = callerFrames.shift() ?? silence;
    const frame = tlv(type, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    stats.audioFramesSent++;
    write(frame, frame.length);
  }, 20);

  return {
    stats,
    heard,
    sampleRateHz: rate,
    /** Caller speech (PCM16 at the call's rate), queued behind anything queued; returns its duration in ms. */
    say(pcm: Int16Array): number {
      utteranceStarts.push(callerFrames.length);
      for (let i = 0; i < pcm.length; i += samplesPerFrame) {
        const frame = new Int16Array(samplesPerFrame);
        frame.set(pcm.subarray(i, i + samplesPerFrame));
        callerFrames.push(frame);
      }
      return (pcm.length / rate) * 1000;
    },
    /** `03 00 01 <digit>` */
    pressDigit(digit: string): void {
      write(tlv(0x03, [digit.charCodeAt(0)]), 3);
    },
    /** Arbitrary bytes into the stream (malformed-frame tests), after what is queued. */
    sendRaw(bytes: Uint8Array): void {
      writeNow(bytes);
    },
    /** Everything received so far as one PCM16 buffer (or only frames that arrived in [fromMs, toMs)). */
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
    elapsedMs: now,
    /** Asterisk hangs up: `00 00 00`, then closes. */
    async hangUp(): Promise<void> {
      clearInterval(timer);
      writeNow(tlv(0x00));
      socket.end();
      await closedPromise;
    },
    /** The connection drops without a hang-up frame (closing the socket is equivalent, §4.1). */
    async drop(): Promise<void> {
      clearInterval(timer);
      socket.end();
      await closedPromise;
    },
    closed: closedPromise,
    get isClosed() {
      return closed;
    },
  };
}

export type AudioSocketPeer = Awaited<ReturnType<typeof connectAudioSocketPeer>>;
