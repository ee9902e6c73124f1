import { connect } from 'node:net';
import { createAudioSocketSplitter, decodeAudioSocketFrame, encodeAudioSocketAudio, encodeAudioSocketHangup } from '../../shared/telephony/audiosocket';
import { isProtocolError } from '../../shared/telephony/protocol-error';
import { requestAsteriskContext, type AsteriskDialOptions } from './asterisk-carrier';
import { createCallerQueue } from './caller';
import { createPlayback } from './playback';
import { DialError, startFrameClock, type SimulatedCall } from './simulated-call';

/**
 * Asterisk's AudioSocket taking an inbound call (telephony reference §4): the dialplan's CURL() posts
 * `/v1/talk/asterisk/call/:assistantId` for a context id, then `AudioSocket(${id},host:port)` opens TCP to the
 * node, sends the UUID frame and one slin 8 kHz frame (type 0x10) per 20 ms. Frames from the node are
 * reassembled whatever the TCP reads and checked as Asterisk's reader does (only hang-up and non-empty audio
 * are allowed: anything else is counted as a violation); audio plays at once, as Asterisk does not re-time it.
 * There is no clear or mark. The caller hanging up sends the hang-up frame and closes.
 */
export interface AudioSocketDialOptions extends AsteriskDialOptions {
  /** The node's AUDIOSOCKET_PORT (default 4573); the host is the one of `url`. */
  readonly audioSocketPort?: number;
}

const RATE_HZ = 8000;
const FRAME_SAMPLES = 160;
export const DEFAULT_AUDIOSOCKET_PORT = 4573;

/** The 16 bytes of a canonical UUID string, in RFC 4122 order (as Asterisk's uuid_parse reads it). */
function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export async function dialAudioSocket(options: AudioSocketDialOptions): Promise<SimulatedCall> {
  const context = await requestAsteriskContext(options);
  const host = new URL(options.url).hostname.replace(/^\[|\]$/g, '');
  const port = options.audioSocketPort ?? DEFAULT_AUDIOSOCKET_PORT;
  const socket = connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', (error) => reject(new DialError(`cannot reach AudioSocket at ${host}:${port} (${error.message}): is AUDIOSOCKET_PORT ${port} on the node?`)));
  });
  const counters = { hangupsReceived: 0, violations: 0, maxQueuedFrames: 0 };
  let closed = false;
  let callerHungUp = false;
  const playback = createPlayback<never>({ onMarkReached: () => undefined });
  const splitter = createAudioSocketSplitter();
  const closedPromise = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined); // a reset after the hang-up: the close that follows says enough
  socket.on('close', () => (closed = true));
  socket.on('data', (chunk: Buffer) => {
    const split = splitter.push(new Uint8Array(chunk));
    for (const frame of split.frames) {
      const message = decodeAudioSocketFrame(frame);
      if (isProtocolError(message)) counters.violations++;
      else if (message.type === 'hangup') {
        counters.hangupsReceived++;
        socket.end();
      } else if (message.type === 'audio' && message.sampleRateHz === RATE_HZ && message.pcm.length > 0) {
        const pcm = new Int16Array(message.pcm.length >> 1);
        const view = new DataView(message.pcm.buffer, message.pcm.byteOffset, message.pcm.byteLength);
        for (let i = 0; i < pcm.length; i++) pcm[i] = view.getInt16(i * 2, true);
        playback.queueAudio(pcm, FRAME_SAMPLES);
        counters.maxQueuedFrames = Math.max(counters.maxQueuedFrames, playback.queuedFrames());
      } else counters.violations++; // Asterisk accepts only hang-up and non-empty audio at the call's rate
    }
    if (!split.ok) {
      counters.violations++;
      socket.destroy();
    }
  });

  const uuid = uuidBytes(context.contextId);
  socket.write(Uint8Array.from([0x01, 0x00, 0x10, ...uuid]));
  const caller = createCallerQueue(FRAME_SAMPLES);
  const stopClock = startFrameClock(() => {
    if (closed) return;
    playback.tick();
    const pcm = caller.next();
    const frame = encodeAudioSocketAudio(RATE_HZ, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    if (frame && socket.writable) socket.write(frame);
  });
  void closedPromise.then(stopClock);

  return {
    carrier: 'audiosocket',
    sampleRateHz: RATE_HZ,
    conversationId: context.conversationId,
    say: (pcm) => void caller.say(pcm),
    heardPcm: () => playback.heardPcm(),
    counters: () => ({ framesPlayed: playback.stats.framesPlayed, hangupsReceived: counters.hangupsReceived, violations: counters.violations, maxQueuedFrames: counters.maxQueuedFrames }),
    async hangUp() {
      callerHungUp = true;
      stopClock();
      if (socket.writable) socket.end(encodeAudioSocketHangup());
      await closedPromise;
    },
    closed: closedPromise,
    endedByNode: () => closed && !callerHungUp,
  };
}
