import WebSocket from 'ws';
import { mulawDecode, mulawEncode } from '../../shared/audio/g711';

/**
 * A simulated Asterisk chan_websocket channel, written from the telephony reference §5 (not from our codec):
 * it connects like `Dial(WebSocket/<client>/c(<codec>)f(<format>))`, sends MEDIA_START, then the caller's
 * audio as BINARY frames every 20 ms, and plays what the server sends the way chan_websocket does:
 * - BINARY messages are cut into `optimal_frame_size` frames; a remainder is dropped (counted) unless
 *   START_MEDIA_BUFFERING is on, when it waits for the next message; STOP_MEDIA_BUFFERING pads it with silence;
 * - one queued frame plays per 20 ms; MARK_MEDIA queues a marker answered with MEDIA_MARK_PROCESSED when
 *   playback reaches it; FLUSH_MEDIA drops everything queued (markers too, silently) and ends buffering;
 * - MEDIA_XOFF at 900 queued frames, MEDIA_XON below 800, messages over 1000 frames ignored;
 * - commands are parsed only in the configured control format (a JSON command on a plain-text channel is
 *   an unknown command, as in Asterisk); HANGUP closes the socket.
 * Everything played is recorded as PCM16 at the codec's rate, so tests decode what the caller heard.
 */
export type PeerCodec = 'ulaw' | 'slin16';

export interface AsteriskPeerOptions {
  readonly url: string;
  readonly codec: PeerCodec;
  readonly controlFormat: 'json' | 'plain-text';
}

const FRAME_MS = 20;
const QUEUE_MAX = 1000;
const XOFF_LEVEL = 900;
const XON_LEVEL = 800;

type Queued = { kind: 'audio'; bytes: Uint8Array } | { kind: 'mark'; id: string };

export async function connectAsteriskPeer(options: AsteriskPeerOptions) {
  const rateHz = options.codec === 'ulaw' ? 8000 : 16000;
  const frameBytes = options.codec === 'ulaw' ? 160 : 640;
  const json = options.controlFormat === 'json';
  const channelId = `1700000000.${Math.floor(Math.random() * 1000)}`;
  const connectionId = crypto.randomUUID();
  const ws = new WebSocket(options.url);
  const stats = {
    binaryMessages: 0,
    /** Bytes dropped because a message was not a multiple of the frame size (no buffering). */
    droppedRemainderBytes: 0,
    framesPlayed: 0,
    flushes: 0,
    marksProcessed: 0,
    hangupCommands: 0,
    /** Commands Asterisk would not understand (wrong format, unknown name, or over 128 bytes). */
    badCommands: [] as string[],
    commands: [] as string[],
    closeCode: 0,
  };
  const queue: Queued[] = [];
  let queuedFrames = 0;
  let queueFull = false;
  let buffering = false;
  let leftover = new Uint8Array(0);
  const heard: { atMs: number; pcm: Int16Array }[] = [];
  const callerFrames: Uint8Array[] = [];
  const startedAt = performance.now();
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('close', (code) => {
    closed = true;
    stats.closeCode = code;
  });

  const event = (name: string, fields: Record<string, string | number> = {}, plainTail = '') => {
    if (ws.readyState !== ws.OPEN) return;
    if (json) ws.send(JSON.stringify({ event: name, channel_id: channelId, ...fields }));
    else ws.send([name, ...Object.entries(fields).map(([k, v]) => `${k}:${v}`), plainTail].filter(Boolean).join(' '));
  };

  function queueFrame(bytes: Uint8Array): void {
    queue.push({ kind: 'audio', bytes });
    queuedFrames++;
    if (!queueFull && queuedFrames >= XOFF_LEVEL) {
      queueFull = true;
      event('MEDIA_XOFF');
    }
  }

  function onBinary(data: Uint8Array): void {
    stats.binaryMessages++;
    if (queuedFrames >= QUEUE_MAX) return;
    let bytes = data;
    if (buffering && leftover.length > 0) {
      const joined = new Uint8Array(leftover.length + bytes.length);
      joined.set(leftover);
      joined.set(bytes, leftover.length);
      bytes = joined;
      leftover = new Uint8Array(0);
    }
    let at = 0;
    for (; at + frameBytes <= bytes.length; at += frameBytes) queueFrame(bytes.slice(at, at + frameBytes));
    if (at < bytes.length) {
      if (buffering) leftover = bytes.slice(at);
      else stats.droppedRemainderBytes += bytes.length - at;
    }
  }

  function onText(text: string): void {
    if (Buffer.byteLength(text) > 128) {
      stats.badCommands.push(text);
      return;
    }
    let name: string;
    let id: string;
    if (json) {
      let parsed: { command?: unknown; correlation_id?: unknown };
      try {
        parsed = JSON.parse(text);
      } catch {
        stats.badCommands.push(text);
        return;
      }
      name = typeof parsed.command === 'string' ? parsed.command : '';
      id = typeof parsed.correlation_id === 'string' ? parsed.correlation_id : '';
    } else {
      const line = text.trim();
      const space = line.indexOf(' ');
      name = space < 0 ? line : line.slice(0, space);
      id = space < 0 ? '' : line.slice(space + 1).trim();
    }
    stats.commands.push(name);
    switch (name) {
      case 'MARK_MEDIA':
        queue.push({ kind: 'mark', id });
        return;
      case 'FLUSH_MEDIA':
        stats.flushes++;
        queue.length = 0;
        queuedFrames = 0;
        buffering = false;
        leftover = new Uint8Array(0);
        return;
      case 'START_MEDIA_BUFFERING':
        buffering = true;
        return;
      case 'STOP_MEDIA_BUFFERING':
        buffering = false;
        if (leftover.length > 0) {
          const padded = new Uint8Array(frameBytes).fill(options.codec === 'ulaw' ? 0xff : 0);
          padded.set(leftover);
          queueFrame(padded);
          leftover = new Uint8Array(0);
        }
        return;
      case 'HANGUP':
        stats.hangupCommands++;
        ws.close(1000);
        return;
      case 'ANSWER':
      case 'GET_STATUS':
      case 'PAUSE_MEDIA':
      case 'CONTINUE_MEDIA':
      case 'REPORT_QUEUE_DRAINED':
        return;
      default:
        stats.badCommands.push(text);
    }
  }

  ws.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? onBinary(new Uint8Array(data)) : onText(data.toString('utf8'))));

  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`media URL answered HTTP ${res.statusCode}`)));
  });
  const start = {
    connection_id: connectionId,
    channel: `WebSocket/voice-ai-${channelId}`,
    channel_id: channelId,
    format: options.codec,
    optimal_frame_size: frameBytes,
    ptime: FRAME_MS,
  };
  if (json) ws.send(JSON.stringify({ event: 'MEDIA_START', ...start, channel_variables: { CALLERID_NUM: '5551234' } }));
  else ws.send(`MEDIA_START ${Object.entries(start).map(([k, v]) => `${k}:${v}`).join(' ')}`);

  function decode(bytes: Uint8Array): Int16Array {
    if (options.codec === 'ulaw') {
      const pcm = new Int16Array(bytes.length);
      mulawDecode(bytes, pcm);
      return pcm;
    }
    return new Int16Array(bytes.slice().buffer);
  }

  // One 20 ms tick: markers at the head, one frame played, one caller frame sent.
  const silence = options.codec === 'ulaw' ? new Uint8Array(frameBytes).fill(0xff) : new Uint8Array(frameBytes);
  const processMarks = () => {
    for (let head = queue[0]; head?.kind === 'mark'; head = queue[0]) {
      queue.shift();
      stats.marksProcessed++;
      if (json) event('MEDIA_MARK_PROCESSED', { correlation_id: head.id });
      else event('MEDIA_MARK_PROCESSED', {}, head.id);
    }
  };
  const timer = setInterval(() => {
    if (closed) return;
    if (queueFull && queuedFrames < XON_LEVEL) {
      queueFull = false;
      event('MEDIA_XON');
    }
    processMarks();
    const item = queue.shift();
    if (item?.kind === 'audio') {
      queuedFrames--;
      stats.framesPlayed++;
      heard.push({ atMs: performance.now() - startedAt, pcm: decode(item.bytes) });
    }
    processMarks();
    if (ws.readyState === ws.OPEN) ws.send(callerFrames.shift() ?? silence);
  }, FRAME_MS);

  return {
    stats,
    rateHz,
    /** Caller speech (PCM16 at the codec's rate), queued behind what is queued. */
    say(pcm: Int16Array): void {
      const samples = frameBytes / (options.codec === 'ulaw' ? 1 : 2);
      for (let i = 0; i < pcm.length; i += samples) {
        const slice = pcm.subarray(i, i + samples);
        if (options.codec === 'ulaw') {
          const out = new Uint8Array(frameBytes).fill(0xff);
          mulawEncode(slice, out, slice.length);
          callerFrames.push(out);
        } else {
          const out = new Int16Array(samples);
          out.set(slice);
          callerFrames.push(new Uint8Array(out.buffer));
        }
      }
    },
    /** DTMF_END: JSON `{"event":"DTMF_END","channel_id":…,"digit":"5"}`, plain `DTMF_END digit:5 channel_id:…`. */
    pressDigit(digit: string): void {
      event('DTMF_END', json ? { digit } : { digit, channel_id: channelId });
    },
    /** The queue crossed the high-water mark (as if the server sent too much) / drained again. */
    xoff: () => event('MEDIA_XOFF'),
    xon: () => event('MEDIA_XON'),
    /** Anything, as is (malformed-frame tests). */
    sendRaw(message: string | Uint8Array): void {
      ws.send(message);
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
    /** Frames waiting to play (what a FLUSH_MEDIA would drop). */
    queuedFrames: () => queuedFrames,
    /** The caller hangs up: Asterisk closes the WebSocket. */
    async hangUp(): Promise<void> {
      clearInterval(timer);
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise.then(() => clearInterval(timer)),
  };
}
