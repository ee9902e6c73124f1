import { createServer, type Server, type Socket } from 'node:net';
import type { CarrierLink } from '../../shared/telephony/carrier';
import {
  AUDIOSOCKET_KIND,
  AUDIOSOCKET_RATES,
  createAudioSocketCodec,
  createAudioSocketSplitter,
  decodeAudioSocketFrame,
  encodeAudioSocketHangup,
  slinFormat,
  type AudioSocketSplitter,
} from '../../shared/telephony/audiosocket';
import { createAudioSocketLink } from './audiosocket-link';
import type { CarrierMedia } from './carriers';

/**
 * AudioSocket calls belong to the `asterisk` provider (contexts made by `POST /v1/talk/asterisk/call/...`,
 * shared with chan_websocket), but arrive over TCP, not at the WebSocket path table. The default format is
 * the AudioSocket() application's (slin 8 kHz); each connection uses the rate Asterisk actually sends.
 */
export const AUDIOSOCKET_MEDIA: CarrierMedia = {
  provider: 'asterisk',
  codec: () => createAudioSocketCodec(8000),
  outputFormat: slinFormat(8000),
  endsWithMedia: true,
};

export interface AudioSocketServerOptions {
  readonly port: number;
  readonly host: string;
  /** The node's carrier call loop (claim once, start, bookkeeping): media-node/server.ts `runCarrierMedia`. */
  run(media: CarrierMedia, contextId: string, link: CarrierLink): Promise<void>;
  /** A frame that broke the protocol before or outside a call (counted as a malformed frame). */
  onProtocolError?(code: string, message: string): void;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  /** How long Asterisk may take to send its UUID frame. */
  readonly uuidTimeoutMs?: number;
  /** How long the call waits for the first audio frame to learn the rate; past it, slin 8 kHz. */
  readonly formatWaitMs?: number;
}

const UUID_TIMEOUT_MS = 5000;
/** Asterisk sends a frame every 20 ms once the channel carries audio; an unanswered channel may send none for a while. */
const FORMAT_WAIT_MS = 500;
const DEFAULT_RATE_HZ = 8000;
/** Frames read while waiting for the first audio frame (DTMF, say); beyond it reading stops until the call starts. */
const MAX_HANDSHAKE_FRAMES = 64;
/** And at most this many bytes of them (64 frames may declare 16 KiB each). */
const MAX_HANDSHAKE_BYTES = 64 * 1024;
/** Connections still in their handshake (no claimed call yet); more are refused at once, so a flood cannot hold memory. */
const MAX_PENDING_HANDSHAKES = 256;

/**
 * The AudioSocket TCP listener (`AUDIOSOCKET_PORT`, default 4573). Per connection: read the UUID frame (the
 * call-context id), wait briefly for the first audio frame (its type says the rate: AudioSocket carries no
 * other format announcement), then hand the connection to the carrier call loop as a paced CarrierLink. A
 * connection that does not start with a UUID, or whose context is unknown or already claimed, gets the
 * hang-up frame and is closed.
 */
export async function startAudioSocketServer(options: AudioSocketServerOptions) {
  const log = options.log ?? (() => undefined);
  const sockets = new Set<Socket>();
  let handshaking = 0;
  const server: Server = createServer({ noDelay: true }, (socket) => {
    if (handshaking >= MAX_PENDING_HANDSHAKES) {
      log('warn', 'AudioSocket connection refused: too many connections in their handshake', { remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (error) => log('debug', 'AudioSocket connection error', { error: error.message }));
    accept(socket).catch((error: unknown) => {
      log('error', 'AudioSocket session failed', { error: String(error) });
      hangUpRaw(socket);
    });
  });

  async function accept(socket: Socket): Promise<void> {
    const splitter = createAudioSocketSplitter();
    handshaking++;
    let handshake: Awaited<ReturnType<typeof readHandshake>>;
    try {
      handshake = await readHandshake(socket, splitter, options.uuidTimeoutMs ?? UUID_TIMEOUT_MS, options.formatWaitMs ?? FORMAT_WAIT_MS);
    } finally {
      handshaking--;
    }
    if ('refusal' in handshake) {
      if (handshake.protocolError) options.onProtocolError?.(handshake.protocolError.code, handshake.protocolError.message);
      log('warn', 'AudioSocket connection refused', { reason: handshake.refusal, remote: socket.remoteAddress });
      hangUpRaw(socket);
      return;
    }
    const { contextId, frames, sampleRateHz } = handshake;
    if (!handshake.sawAudio) log('info', 'no audio within the format wait: the call uses slin 8 kHz', { contextId });
    const paced = createAudioSocketLink(socket, {
      splitter,
      initialFrames: frames,
      onFramingError: (error) => {
        options.onProtocolError?.(error.code, error.message);
        log('warn', 'AudioSocket stream cannot be framed: hanging up', { contextId, error: error.message });
      },
    });
    const codec = createAudioSocketCodec(sampleRateHz);
    // AudioSocket has no clear: a barge-in can only drop what the link still holds for pacing.
    const media: CarrierMedia = {
      ...AUDIOSOCKET_MEDIA,
      outputFormat: slinFormat(sampleRateHz),
      codec: () => ({
        ...codec,
        encodeClear: () => {
          paced.dropHeld();
          return undefined;
        },
      }),
    };
    await options.run(media, contextId, paced.link);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log('error', 'AudioSocket listener error', { error: error.message }));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  log('info', 'AudioSocket listening', { port, host: options.host });

  return {
    port,
    /** Open connections (calls and handshakes). */
    get connections() {
      return sockets.size;
    },
    /** Stop listening; connections still open get the hang-up frame, and are cut after `graceMs`. */
    async close(graceMs = 1000): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) hangUpRaw(socket, graceMs);
      await closed;
    },
  };
}

export type AudioSocketServer = Awaited<ReturnType<typeof startAudioSocketServer>>;

type Handshake =
  | { contextId: string; frames: Uint8Array[]; sampleRateHz: number; sawAudio: boolean }
  | { refusal: string; protocolError?: { code: string; message: string } };

/**
 * Reads up to the first audio frame: the UUID must come first; the frames read are kept for the call in
 * order (the UUID frame becomes the call's start). Bounded in time (the UUID wait, then the format wait)
 * and in memory (the splitter's one-frame bound, at most MAX_HANDSHAKE_FRAMES frames).
 */
function readHandshake(socket: Socket, splitter: AudioSocketSplitter, uuidTimeoutMs: number, formatWaitMs: number): Promise<Handshake> {
  return new Promise<Handshake>((resolve) => {
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let contextId: string | undefined;
    let timer = setTimeout(() => finish({ refusal: `no UUID frame within ${uuidTimeoutMs} ms` }), uuidTimeoutMs);

    function finish(result: Handshake): void {
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(result);
    }
    function withDefaultRate(): Handshake {
      return { contextId: contextId!, frames, sampleRateHz: DEFAULT_RATE_HZ, sawAudio: false };
    }
    function onClose(): void {
      finish({ refusal: contextId ? 'closed before the call started' : 'closed before sending its UUID' });
    }
    function onData(chunk: Buffer): void {
      const result = splitter.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      for (const frame of result.frames) {
        if (contextId === undefined) {
          const message = decodeAudioSocketFrame(frame);
          if (message.type !== 'uuid') {
            const problem = message.type === 'protocolError' ? message.message : `the first frame is ${message.type}, not the UUID`;
            return finish({ refusal: problem, protocolError: { code: message.type === 'protocolError' ? message.code : 'invalid-message', message: problem } });
          }
          contextId = message.uuid;
          frames.push(frame);
          clearTimeout(timer);
          timer = setTimeout(() => finish(withDefaultRate()), formatWaitMs);
          continue;
        }
        frames.push(frame);
        bytes += frame.byteLength;
        const rate = AUDIOSOCKET_RATES.get(frame[0]!);
        // The rest of this read is kept too: it may hold the caller's hang-up.
        const keepRest = () => frames.push(...result.frames.slice(result.frames.indexOf(frame) + 1));
        if (rate !== undefined) {
          keepRest();
          return finish({ contextId, frames, sampleRateHz: rate, sawAudio: true });
        }
        if (frame[0] === AUDIOSOCKET_KIND.hangup) return finish(withDefaultRate()); // the call loop sees the hang-up
        if (frames.length >= MAX_HANDSHAKE_FRAMES || bytes >= MAX_HANDSHAKE_BYTES) {
          keepRest();
          return finish(withDefaultRate());
        }
      }
      if (!result.ok) finish({ refusal: result.error.message, protocolError: { code: result.error.code, message: result.error.message } });
    }
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** The hang-up frame, then the end of the connection (cut if the peer does not close). */
function hangUpRaw(socket: Socket, graceMs = 2000): void {
  if (socket.destroyed) return;
  if (socket.writable) socket.end(encodeAudioSocketHangup());
  const cut = setTimeout(() => socket.destroy(), graceMs);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
}
