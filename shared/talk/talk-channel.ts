import { createAudioConverter, type AudioConverter } from '../audio/convert';
import { PIPELINE_FORMAT, type AudioFormat, type AudioFrame } from '../audio/format';
import { createFrameAssembler } from '../audio/frame-assembler';
import type { ResamplerFactory } from '../audio/resampler';
import type { Channel, ChannelHandlers } from '../contracts/channel';
import { ToolCallAction } from './gen/talk_api_pb';
import { encodeResponse, type TalkTransport } from './transport';

/** Audio one UserMessage may carry: a client sending more at once is refused (bounded memory). */
export const MAX_USER_AUDIO_MS = 1_000;
/** Outbound bytes waiting in the transport beyond which frames are dropped (the client stopped reading). */
const MAX_BUFFERED_BYTES = 256 * 1024;
/** Inbound audio held before the engine starts listening (greeting set-up); older frames go first. */
const MAX_EARLY_FRAMES = 100;

export interface TalkChannelOptions {
  readonly id: string;
  /** What the client sends and what it wants to hear (from its Initialization). */
  readonly inputFormat: AudioFormat;
  readonly outputFormat: AudioFormat;
  readonly resamplers: ResamplerFactory;
  /** Whether audio goes out at all (stream mode TEXT: no). */
  readonly sendAudio: () => boolean;
  /** The id of the assistant message the next frame belongs to (set by the session from the engine's events). */
  readonly messageId: () => string;
  /** The engine hung up (end_call, timeouts): the session says goodbye on the stream and closes it. */
  readonly onHangup: (reason: string) => void;
}

/**
 * A talk stream (browser WebSocket or gRPC) as the engine's Channel. The transport can change during the
 * call: a dropped client re-attaches with its resume token and the same channel carries on over the new
 * socket; while none is attached, outbound audio is dropped (the engine's playout clock runs on, so the
 * client resumes at the live position instead of a backlog).
 *
 * Playout confirmation works like carrier marks: after frames the channel sends PlaybackMark{id}, and the
 * client's PlaybackComplete{id} comes back through `playbackComplete`.
 */
export function createTalkChannel(options: TalkChannelOptions) {
  const inbound: AudioConverter = createAudioConverter(options.inputFormat, PIPELINE_FORMAT, options.resamplers);
  const frames = createFrameAssembler(PIPELINE_FORMAT, { maxBufferedMs: MAX_USER_AUDIO_MS + 40 });
  const maxUserBytes = Math.ceil((options.inputFormat.sampleRateHz * MAX_USER_AUDIO_MS) / 1000) * (options.inputFormat.encoding === 'pcm16' ? 2 : 1);
  let transport: TalkTransport | undefined;
  let handlers: ChannelHandlers | undefined;
  let closed = false;
  const early: AudioFrame[] = [];
  const stats = { framesIn: 0, framesOut: 0, droppedOut: 0, droppedDetached: 0, droppedEarly: 0 };

  const deliver = (frame: AudioFrame) => {
    stats.framesIn++;
    if (handlers) return handlers.onAudio(frame);
    if (early.length >= MAX_EARLY_FRAMES) {
      early.shift();
      stats.droppedEarly++;
    }
    early.push(frame);
  };

  function send(frame: Uint8Array): void {
    transport?.send(frame);
  }

  const channel: Channel = {
    id: options.id,
    outputFormat: options.outputFormat,
    capabilities: { marks: true, transfer: true },
    start(h) {
      handlers = h;
      if (closed) return h.onClose('client-disconnect');
      for (const frame of early.splice(0)) h.onAudio(frame);
    },
    play(frame) {
      if (!options.sendAudio()) return;
      if (!transport) {
        stats.droppedDetached++;
        return;
      }
      if (transport.bufferedAmount() > MAX_BUFFERED_BYTES) {
        stats.droppedOut++;
        return;
      }
      stats.framesOut++;
      send(encodeResponse({ case: 'assistant', value: { id: options.messageId(), audio: frame.data } }));
    },
    clear() {
      send(encodeResponse({ case: 'playbackFlush', value: { id: options.messageId() } }));
    },
    mark(name) {
      // Text-only clients play nothing: the mark counts as played at once (else the heard position would stall).
      if (options.sendAudio()) send(encodeResponse({ case: 'playbackMark', value: { id: name } }));
      // Deferred so the playout's send loop is not re-entered.
      else void Promise.resolve().then(() => handlers?.onMark(name));
    },
    async hangup(reason) {
      options.onHangup(reason);
    },
    async transfer(target) {
      // A browser cannot be bridged by us: the client is told where to go and acts on it.
      if (!transport) throw new Error('the client is not connected; it cannot be transferred');
      send(encodeResponse({ case: 'toolCall', value: { id: `transfer-${options.messageId()}`, name: 'transfer_call', action: ToolCallAction.TRANSFER_CONVERSATION, args: { target } } }));
    },
  };

  return {
    channel,
    stats,
    get attached() {
      return transport !== undefined;
    },
    attach(next: TalkTransport): void {
      transport = next;
    },
    detach(): void {
      transport = undefined;
    },
    /**
     * Microphone audio from the client, in its input format. Returns an error message when the chunk is
     * refused (too large); an odd PCM16 byte is carried by the converter, not lost.
     */
    userAudio(bytes: Uint8Array): string | undefined {
      if (closed) return undefined;
      if (bytes.byteLength > maxUserBytes) return `a user audio message may carry at most ${MAX_USER_AUDIO_MS} ms (${maxUserBytes} bytes), got ${bytes.byteLength} bytes`;
      const overflow = frames.push(inbound.convert(bytes), deliver);
      return overflow?.message;
    },
    playbackComplete(id: string): void {
      handlers?.onMark(id);
    },
    /** The call is over for the client (it disconnected for good, or the resume window lapsed). */
    close(reason: string): void {
      if (closed) return;
      closed = true;
      inbound.destroy();
      handlers?.onClose(reason);
    },
  };
}

export type TalkChannel = ReturnType<typeof createTalkChannel>;
