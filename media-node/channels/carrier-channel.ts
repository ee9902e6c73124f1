import { createAudioConverter, type AudioConverter } from '../../shared/audio/convert';
import { PIPELINE_FORMAT, type AudioFormat, type AudioFrame } from '../../shared/audio/format';
import { createFrameAssembler } from '../../shared/audio/frame-assembler';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import type { Channel, ChannelHandlers } from '../../shared/contracts/channel';
import type { CarrierCodec, CarrierEvent, CarrierLink } from '../../shared/telephony/carrier';

/** Carrier events held until the engine starts the channel. */
const MAX_EARLY_EVENTS = 100;

export interface CarrierChannelOptions {
  readonly id: string;
  readonly codec: CarrierCodec;
  /** The carrier's transport (media-node/channels/ws-link.ts for WebSockets). */
  readonly link: CarrierLink;
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
  const { codec, link } = options;
  // The formats are the codec's until the start message says otherwise (Exotel, Asterisk announce theirs).
  let inputFormat: AudioFormat = codec.inputFormat;
  let outputFormat: AudioFormat = codec.outputFormat;
  let inbound: AudioConverter | undefined;
  const frames = createFrameAssembler(PIPELINE_FORMAT);
  /** The carrier asked us to hold our audio (Asterisk MEDIA_XOFF): frames are dropped, counted, until it says go on. */
  let flowPaused = false;
  const maxBuffered = options.maxBufferedBytes ?? 256 * 1024;
  let handlers: ChannelHandlers | undefined;
  let streamId: string | undefined;
  let closed = false;
  let closeReason = 'carrier-closed';
  const early: CarrierEvent[] = [];
  let resolveStart!: (event: Extract<CarrierEvent, { type: 'start' }>) => void;
  const started = new Promise<Extract<CarrierEvent, { type: 'start' }>>((r) => (resolveStart = r));
  const stats = { framesIn: 0, framesOut: 0, droppedOut: 0, droppedEarly: 0, droppedFlow: 0, protocolErrors: 0 };

  const deliverAudio = (frame: AudioFrame) => {
    stats.framesIn++;
    handlers?.onAudio(frame);
  };

  function dispatch(event: CarrierEvent): void {
    // The call is over for this channel (a stop, a close): later frames are ignored, never decoded into audio.
    if (closed) return;
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
        inbound ??= createAudioConverter(inputFormat, PIPELINE_FORMAT, options.resamplers);
        frames.push(inbound.convert(event.audio), deliverAudio);
        return;
      case 'dtmf':
        handlers.onDtmf(event.digit);
        return;
      case 'mark':
        handlers.onMark(event.name);
        return;
      case 'stop':
        finish(event.reason ?? 'caller-hangup');
        return;
      default:
        return;
    }
  }

  function finish(reason: string): void {
    if (closed) return;
    closed = true;
    closeReason = reason;
    inbound?.destroy();
    handlers?.onClose(reason);
  }

  link.onMessage((message) => {
    try {
      receive(message);
    } catch (error) {
      // A frame must never take the process down: whatever it broke is counted like a malformed frame.
      stats.protocolErrors++;
      options.onProtocolError?.('frame-failed', error instanceof Error ? error.message : String(error));
    }
  });

  function receive(message: string | Uint8Array): void {
    const event = codec.decode(message);
    if (event.type === 'protocolError') {
      stats.protocolErrors++;
      options.onProtocolError?.(event.code, event.message);
      return;
    }
    if (event.type === 'start') {
      if (streamId !== undefined) return; // a repeated start changes nothing mid-call
      streamId = event.streamId;
      if (event.format) {
        inputFormat = event.format.input;
        outputFormat = event.format.output;
      }
      resolveStart(event);
      return;
    }
    if (event.type === 'flow') {
      flowPaused = event.paused;
      return;
    }
    dispatch(event);
  }
  link.onClose((error) => finish(error ? 'carrier-error' : 'carrier-closed'));

  function send(payload: string | Uint8Array | undefined): void {
    if (payload === undefined || closed || !link.open) return;
    link.send(payload);
  }

  const channel: Channel = {
    id: options.id,
    // Read by the engine when the call starts, after the start message fixed it.
    get outputFormat() {
      return outputFormat;
    },
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
      if (flowPaused) {
        stats.droppedFlow++;
        return;
      }
      // The engine keeps the lead small; a socket this far behind means the far end stopped reading.
      if (link.bufferedAmount() > maxBuffered) {
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
      // Closing the media stream ends a Twilio <Connect><Stream> call; Asterisk wants its HANGUP command first.
      if (streamId && codec.encodeHangup) send(codec.encodeHangup(streamId));
      link.close(1000, 'hangup');
    },
  };

  return {
    channel,
    /** The audio formats in use (the codec's, or what the start message announced). */
    get formats() {
      return { input: inputFormat, output: outputFormat };
    },
    /** Resolves with the carrier's start message (stream id, call id, custom parameters). */
    started,
    stats,
  };
}
