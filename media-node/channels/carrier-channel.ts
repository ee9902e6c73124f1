import type { WebSocket } from 'ws';
import { createAudioConverter } from '../../shared/audio/convert';
import { PIPELINE_FORMAT, type AudioFrame } from '../../shared/audio/format';
import { createFrameAssembler } from '../../shared/audio/frame-assembler';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import type { Channel, ChannelHandlers } from '../../shared/contracts/channel';
import type { CarrierCodec, CarrierEvent } from '../../shared/telephony/carrier';

/** Carrier events held until the engine starts the channel. */
const MAX_EARLY_EVENTS = 100;

export interface CarrierChannelOptions {
  readonly id: string;
  readonly codec: CarrierCodec;
  readonly socket: WebSocket;
  readonly resamplers: ResamplerFactory;
  /** A malformed inbound message: counted and logged by the caller, never fatal. */
  onProtocolError?(code: string, message: string): void;
  /** Outbound bytes waiting in the socket beyond which frames are dropped (the far end stopped reading). */
  readonly maxBufferedBytes?: number;
}

/**
 * A carrier's media WebSocket as a Channel. Caller audio is converted once to the pipeline format (PCM16
 * 16 kHz, 20 ms frames); outbound frames arrive already in the carrier's format and paced by the engine,
 * so this only encodes and sends. Events that arrive before `start()` (the carrier's `start` message comes
 * first, then media) wait in a short queue.
 */
export function createCarrierChannel(options: CarrierChannelOptions) {
  const { codec, socket } = options;
  const inbound = createAudioConverter(codec.inputFormat, PIPELINE_FORMAT, options.resamplers);
  const frames = createFrameAssembler(PIPELINE_FORMAT);
  const maxBuffered = options.maxBufferedBytes ?? 256 * 1024;
  let handlers: ChannelHandlers | undefined;
  let streamId: string | undefined;
  let closed = false;
  let closeReason = 'carrier-closed';
  const early: CarrierEvent[] = [];
  let resolveStart!: (event: Extract<CarrierEvent, { type: 'start' }>) => void;
  const started = new Promise<Extract<CarrierEvent, { type: 'start' }>>((r) => (resolveStart = r));
  const stats = { framesIn: 0, framesOut: 0, droppedOut: 0, droppedEarly: 0, protocolErrors: 0 };

  const deliverAudio = (frame: AudioFrame) => {
    stats.framesIn++;
    handlers?.onAudio(frame);
  };

  function dispatch(event: CarrierEvent): void {
    if (!handlers) {
      // Bounded (2 s of audio): beyond it the oldest caller audio goes, counted, so a slow start cannot grow memory.
      if (early.length >= MAX_EARLY_EVENTS) {
        early.shift();
        stats.droppedEarly++;
      }
      early.push(event);
      return;
    }
    switch (event.type) {
      case 'media':
        frames.push(inbound.convert(event.audio), deliverAudio);
        return;
      case 'dtmf':
        handlers.onDtmf(event.digit);
        return;
      case 'mark':
        handlers.onMark(event.name);
        return;
      case 'stop':
        finish('caller-hangup');
        return;
      default:
        return;
    }
  }

  function finish(reason: string): void {
    if (closed) return;
    closed = true;
    closeReason = reason;
    inbound.destroy();
    handlers?.onClose(reason);
  }

  socket.on('message', (data, isBinary) => {
    const message = isBinary ? new Uint8Array(data as Buffer) : (data as Buffer).toString('utf8');
    const event = codec.decode(message);
    if (event.type === 'protocolError') {
      stats.protocolErrors++;
      options.onProtocolError?.(event.code, event.message);
      return;
    }
    if (event.type === 'start') {
      streamId = event.streamId;
      resolveStart(event);
      return;
    }
    dispatch(event);
  });
  socket.on('close', () => finish('carrier-closed'));
  socket.on('error', () => finish('carrier-error'));

  function send(payload: string | Uint8Array | undefined): void {
    if (payload === undefined || closed || socket.readyState !== socket.OPEN) return;
    socket.send(payload);
  }

  const channel: Channel = {
    id: options.id,
    outputFormat: codec.outputFormat,
    capabilities: { marks: codec.capabilities.marks, transfer: false },
    start(h) {
      handlers = h;
      if (closed) {
        // The carrier hung up while the call was starting: the call ends at once (not never).
        const hungUp = early.splice(0).some((event) => event.type === 'stop');
        h.onClose(hungUp ? 'caller-hangup' : closeReason);
        return;
      }
      for (const event of early.splice(0)) dispatch(event);
    },
    play(frame) {
      if (!streamId) return;
      // The engine keeps the lead small; a socket this far behind means the far end stopped reading.
      if (socket.bufferedAmount > maxBuffered) {
        stats.droppedOut++;
        return;
      }
      stats.framesOut++;
      send(codec.encodeMedia(streamId, frame.data));
    },
    clear() {
      if (streamId) send(codec.encodeClear(streamId));
    },
    mark(name) {
      if (streamId) send(codec.encodeMark(streamId, name));
    },
    async hangup() {
      // Closing the media stream ends a Twilio <Connect><Stream> call.
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(1000, 'hangup');
    },
  };

  return {
    channel,
    /** Resolves with the carrier's start message (stream id, call id, custom parameters). */
    started,
    stats,
  };
}
