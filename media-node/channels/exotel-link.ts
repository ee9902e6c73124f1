import type { CarrierCodec, CarrierLink } from '../../shared/telephony/carrier';
import { createExotelCarrierCodec, createExotelChunker, encodeExotelMedia, silenceByteOf, type ExotelOutgoing } from '../../shared/telephony/exotel';

/**
 * Exotel's media socket for the carrier loop: its codec plus a link that turns the engine's 20 ms frames
 * into chunks Exotel accepts (shared/telephony/exotel.ts `createExotelChunker`). The codec hands raw audio
 * to `send`; marks and clears arrive as ready JSON text. When the engine stops handing audio (the utterance
 * ended, or paused), the partial rest is flushed after `idleFlushMs`, padded with silence, and the marks
 * behind it follow, so the engine's playout tracking sees the end of the utterance.
 */
export interface ExotelLinkOptions {
  /** Quiet time after the last frame before the partial chunk goes out. Default 60 ms (three frames). */
  readonly idleFlushMs?: number;
}

const CLEAR_PREFIX = '{"event":"clear"';

export function connectExotel(link: CarrierLink, options: ExotelLinkOptions = {}): { codec: CarrierCodec; link: CarrierLink; stats: { chunks: number; paddedFlushes: number } } {
  const codec = createExotelCarrierCodec();
  const idleFlushMs = options.idleFlushMs ?? 60;
  const chunker = createExotelChunker({ silenceByte: () => silenceByteOf(codec.streamFormat) });
  const stats = { chunks: 0, paddedFlushes: 0 };
  let idle: ReturnType<typeof setTimeout> | undefined;

  const write = (items: readonly ExotelOutgoing[]) => {
    for (const item of items) {
      if (item.kind === 'text') link.send(item.text);
      else if (codec.streamSid !== undefined) {
        stats.chunks++;
        link.send(encodeExotelMedia(codec.streamSid, item.audio));
      }
    }
  };
  const cancelIdle = () => {
    if (idle !== undefined) clearTimeout(idle);
    idle = undefined;
  };
  const flush = () => {
    cancelIdle();
    if (chunker.pendingBytes > 0) stats.paddedFlushes++;
    write(chunker.flush());
  };

  const chunking: CarrierLink = {
    // The channel decodes through `codec`, which learns the stream sid that frames every chunk we send.
    onMessage: (listener) => link.onMessage(listener),
    onClose(listener) {
      link.onClose((error) => {
        cancelIdle();
        listener(error);
      });
    },
    send(payload) {
      if (typeof payload !== 'string') {
        write(chunker.audio(payload));
        cancelIdle();
        if (chunker.pendingBytes > 0) idle = setTimeout(flush, idleFlushMs);
        return;
      }
      if (payload.startsWith(CLEAR_PREFIX)) {
        // Barge-in: what we still held never reaches Exotel; what it holds is dropped by the clear.
        cancelIdle();
        chunker.clear();
        link.send(payload);
        return;
      }
      write(chunker.text(payload));
    },
    close(code, reason) {
      // A hang-up after a goodbye: the tail of it still goes out before the socket closes.
      if (link.open) flush();
      cancelIdle();
      link.close(code, reason);
    },
    get open() {
      return link.open;
    },
    bufferedAmount: () => link.bufferedAmount() + chunker.pendingBytes,
    pause: () => link.pause(),
    resume: () => link.resume(),
  };
  return { codec, link: chunking, stats };
}
