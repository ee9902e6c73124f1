import type { AudioFrame } from '../../audio/format';
import type { SttSession } from '../../contracts/stt';
import type { ProviderSocket, SocketFactory } from '../streaming/socket';
import type { SocketSttSession } from '../streaming/stt-socket';
import { BYTES_PER_MS, MAX_AUDIO_MESSAGE_MS, MIN_AUDIO_MESSAGE_MS } from './stt-wire';

/**
 * AssemblyAI v3 closes the stream (3007) for an audio message shorter than 50 ms or longer than 1000 ms, but
 * the pipeline writes 20 ms frames and the shared base replays in 100 ms pieces that can be shorter (the end
 * of the replay, the ring's wrap point). Two thin layers keep every message legal without touching the base:
 *
 * - Session side (`chunkSessionAudio`): frames are joined into messages of ≥ 50 ms (60 ms with 20 ms frames,
 *   ≤ 40 ms of added latency) before they enter the base. On finalize and close the held rest is padded with
 *   silence to 50 ms and written first, so ForceEndpoint/Terminate cover everything written. The padding goes
 *   through the base like any audio, so the replay ring and the server's stream time stay the same timeline
 *   (word times remain valid replay positions).
 * - Socket side (`chunkSocketAudio`): a short binary send (a replay piece) is held and merged with what
 *   follows, never padded in the middle of speech. Before a text frame anything held is padded and sent, so
 *   audio is never overtaken by a control message; with the session side draining it before ForceEndpoint and
 *   Terminate this only pads when a KeepAlive follows a replay before any new audio (≤ 50 ms, once).
 */

export const MIN_AUDIO_MESSAGE_BYTES = MIN_AUDIO_MESSAGE_MS * BYTES_PER_MS;
export const MAX_AUDIO_MESSAGE_BYTES = MAX_AUDIO_MESSAGE_MS * BYTES_PER_MS;

export interface AudioChunker {
  /** Append audio; returns the messages now complete (fresh buffers of min..max bytes), oldest first. */
  push(data: Uint8Array): Uint8Array[];
  /** The held rest (< min bytes) padded with silence to min bytes and forgotten; undefined when none is held. */
  flush(): Uint8Array | undefined;
  readonly heldBytes: number;
}

const EMPTY = new Uint8Array(0);

export function createAudioChunker(minBytes = MIN_AUDIO_MESSAGE_BYTES, maxBytes = MAX_AUDIO_MESSAGE_BYTES): AudioChunker {
  let held: Uint8Array = EMPTY;
  return {
    push(data) {
      let all = data;
      if (held.byteLength) {
        all = new Uint8Array(held.byteLength + data.byteLength);
        all.set(held);
        all.set(data, held.byteLength);
      }
      const out: Uint8Array[] = [];
      let at = 0;
      while (all.byteLength - at >= minBytes) {
        const n = Math.min(maxBytes, all.byteLength - at);
        out.push(all.slice(at, at + n));
        at += n;
      }
      // Copied: the caller's buffer may be reused (replay views are valid only during the call).
      held = at < all.byteLength ? all.slice(at) : EMPTY;
      return out;
    },
    flush() {
      if (!held.byteLength) return undefined;
      const padded = new Uint8Array(Math.max(minBytes, held.byteLength));
      padded.set(held);
      held = EMPTY;
      return padded;
    },
    get heldBytes() {
      return held.byteLength;
    },
  };
}

/** A socket factory whose sockets merge short binary sends (see the header); text frames flush first. */
export function chunkSocketAudio(connect: SocketFactory): SocketFactory {
  return async (request, handlers) => {
    const socket = await connect(request, handlers);
    const chunker = createAudioChunker();
    const chunked: ProviderSocket = {
      send(data) {
        if (typeof data === 'string') {
          const rest = chunker.flush();
          if (rest) socket.send(rest);
          socket.send(data);
          return;
        }
        // A legal message with nothing held goes out as it is (what the base would have sent).
        if (!chunker.heldBytes && data.byteLength >= MIN_AUDIO_MESSAGE_BYTES && data.byteLength <= MAX_AUDIO_MESSAGE_BYTES) {
          socket.send(data);
          return;
        }
        for (const message of chunker.push(data)) socket.send(message);
      },
      get bufferedAmount() {
        return socket.bufferedAmount + chunker.heldBytes;
      },
      get open() {
        return socket.open;
      },
      close: (code, reason) => socket.close(code, reason),
    };
    return chunked;
  };
}

/** A session whose writes reach the base as ≥ 50 ms messages; finalize and close write the padded rest first. */
export function chunkSessionAudio(session: SttSession): SttSession & { readonly stats?: SocketSttSession['stats'] } {
  const chunker = createAudioChunker();
  let format: AudioFrame['format'] | undefined;
  const flush = (): void => {
    const rest = chunker.flush();
    if (rest && format) session.write({ format, data: rest });
  };
  return {
    write(frame) {
      format = frame.format;
      for (const data of chunker.push(frame.data)) session.write({ format: frame.format, data });
    },
    finalize() {
      flush();
      session.finalize();
    },
    close() {
      flush();
      return session.close();
    },
    get stats() {
      return (session as Partial<SocketSttSession>).stats;
    },
  };
}
