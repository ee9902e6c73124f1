import type { ReplayRing } from './replay-ring';
import type { SttAudioMessageMs, SttReplayPacing } from './stt-wire';

/** PCM16 16 kHz mono: the only input format of the pipeline. */
export const BYTES_PER_MS = 32;
/** Replay goes out in 100 ms messages (unless the sizing says otherwise): few frames, within every vendor's advice. */
const REPLAY_MESSAGE_MS = 100;
const DEFAULT_BURST_MS = 200;

/**
 * What goes out as audio on the current STT connection, and when (stt-wire.ts documents the rules): the replay
 * of the ring after a (re)connect, paced if the wire asks, then live audio, sized if the wire asks. The ring
 * is the single record of the audio: everything written is appended to it before `write`, so whatever is
 * held or queued here is in it too, and a new connection starts from the ring alone.
 */
export interface AudioOutbox {
  /**
   * A connection took over: the ring's audio goes out first (paced if asked), then new audio. `onDrained`
   * runs once the replay is out (at once when it is not paced), when control messages may follow it.
   */
  start(send: (audio: Uint8Array) => void, onDrained: () => void): void;
  /** The connection is gone: timers stop and nothing is sent. What was held or queued is in the ring. */
  stop(): void;
  /** `data` was just appended to the ring: send it now, hold it, or leave it queued behind the replay. */
  write(data: Uint8Array): void;
  /** Send what is held (padded to the minimum if the wire says so). Nothing to do while the replay is queued. */
  flush(): void;
  /** The replay (and live audio queued behind it) is still going out: control messages must wait for `onDrained`. */
  readonly replaying: boolean;
  /** Audio still queued behind the pacing, ms. */
  readonly queuedMs: number;
  /** Ring position of the first byte not sent on this connection: no final can have answered audio from here on. */
  readonly unsentFrom: number;
  /** Ring position of this connection's stream time 0 (where its replay began). */
  readonly streamStart: number;
}

interface Sizing {
  readonly minBytes: number;
  readonly targetBytes: number;
  readonly maxBytes: number;
  readonly padOnFlush: boolean;
  readonly holdMs: number;
}

const evenBytes = (ms: number): number => Math.max(2, Math.round(ms * (BYTES_PER_MS / 2)) * 2);

function resolveSizing(ms: SttAudioMessageMs): Sizing {
  const minBytes = evenBytes(ms.min);
  const maxBytes = Math.max(minBytes, evenBytes(ms.max ?? Math.max(ms.target ?? ms.min, REPLAY_MESSAGE_MS)));
  const targetBytes = Math.min(maxBytes, Math.max(minBytes, evenBytes(ms.target ?? ms.min)));
  return { minBytes, targetBytes, maxBytes, padOnFlush: ms.padOnFlush ?? false, holdMs: ms.hold ?? (2 * targetBytes) / BYTES_PER_MS };
}

export function createAudioOutbox(ring: ReplayRing, messageMs: SttAudioMessageMs | undefined, pacing: SttReplayPacing | undefined): AudioOutbox {
  const sizing = messageMs ? resolveSizing(messageMs) : undefined;
  const replayBytes = sizing ? Math.min(sizing.maxBytes, Math.max(sizing.minBytes, sizing.targetBytes, REPLAY_MESSAGE_MS * BYTES_PER_MS)) : REPLAY_MESSAGE_MS * BYTES_PER_MS;
  const factor = pacing && pacing.realtimeFactor > 0 ? pacing.realtimeFactor : undefined;
  const burstMs = pacing?.burstMs ?? DEFAULT_BURST_MS;
  // Live audio is gathered here (sized wires only): one buffer for the session, copied out once per message.
  const held = sizing ? new Uint8Array(sizing.maxBytes) : undefined;

  let send: ((audio: Uint8Array) => void) | undefined;
  let onDrained: () => void = () => {};
  let heldBytes = 0;
  /** Ring position of the next byte of the replay; undefined once it is out and audio flows live. */
  let queuedFrom: number | undefined;
  let streamStart = 0;
  let startedAt = 0;
  let sentBytes = 0;
  let lastAudioAt = 0;
  let pumpTimer: ReturnType<typeof setTimeout> | undefined;
  let holdTimer: ReturnType<typeof setTimeout> | undefined;

  const emit = (audio: Uint8Array): void => {
    sentBytes += audio.byteLength;
    send?.(audio);
  };

  const sendHeld = (): void => {
    if (!held || !heldBytes) return;
    const audio = held.slice(0, heldBytes);
    heldBytes = 0;
    emit(audio);
  };

  const onHold = (): void => {
    holdTimer = undefined;
    if (!send || !sizing || !heldBytes || queuedFrom !== undefined) return;
    const idleMs = performance.now() - lastAudioAt;
    if (idleMs < sizing.holdMs) holdTimer = setTimeout(onHold, Math.ceil(sizing.holdMs - idleMs));
    else outbox.flush();
  };

  const armHold = (): void => {
    lastAudioAt = performance.now();
    if (sizing && heldBytes && !holdTimer) holdTimer = setTimeout(onHold, Math.ceil(sizing.holdMs));
  };

  /** Copy `length` ring bytes from `position` into a fresh message and send it. */
  const sendFromRing = (position: number, length: number): void => {
    const audio = new Uint8Array(length);
    ring.copyOut(position, length, audio);
    emit(audio);
  };

  /** The replay's rest (shorter than one replay message) becomes held live audio; the replay is over. */
  const finishReplay = (position: number): void => {
    const rest = ring.end - position;
    queuedFrom = undefined;
    if (held && sizing) {
      heldBytes = ring.copyOut(position, rest, held);
      if (heldBytes >= sizing.targetBytes) sendHeld();
      else armHold();
    } else if (rest > 0) {
      sendFromRing(position, rest);
    }
    onDrained();
  };

  const pump = (): void => {
    pumpTimer = undefined;
    while (send && queuedFrom !== undefined) {
      if (queuedFrom < ring.start) {
        // The ring overflowed while paced: that audio is gone (the ring counts it), and the stream skips it.
        streamStart += ring.start - queuedFrom;
        queuedFrom = ring.start;
      }
      if (ring.end - queuedFrom < replayBytes) return finishReplay(queuedFrom);
      if (factor !== undefined) {
        const dueMs = ((sentBytes + replayBytes) / BYTES_PER_MS - burstMs) / factor - (performance.now() - startedAt);
        if (dueMs > 0) {
          pumpTimer = setTimeout(pump, Math.ceil(dueMs));
          return;
        }
      }
      const from = queuedFrom;
      queuedFrom += replayBytes;
      sendFromRing(from, replayBytes);
    }
  };

  const outbox: AudioOutbox = {
    start(sendAudio, drained) {
      outbox.stop();
      send = sendAudio;
      onDrained = drained;
      startedAt = performance.now();
      sentBytes = 0;
      streamStart = ring.start;
      queuedFrom = ring.start;
      pump();
    },
    stop() {
      send = undefined;
      clearTimeout(pumpTimer);
      clearTimeout(holdTimer);
      pumpTimer = undefined;
      holdTimer = undefined;
      queuedFrom = undefined;
      heldBytes = 0;
    },
    write(data) {
      if (!send || queuedFrom !== undefined) return;
      if (!held || !sizing) return emit(data);
      for (let offset = 0; offset < data.byteLength; ) {
        const n = Math.min(data.byteLength - offset, sizing.maxBytes - heldBytes);
        held.set(data.subarray(offset, offset + n), heldBytes);
        heldBytes += n;
        offset += n;
        if (heldBytes >= sizing.targetBytes) sendHeld();
      }
      armHold();
    },
    flush() {
      if (!send || !held || !sizing || !heldBytes || queuedFrom !== undefined) return;
      if (sizing.padOnFlush && heldBytes < sizing.minBytes) {
        held.fill(0, heldBytes, sizing.minBytes);
        // The silence is stream audio too: in the ring, the vendor's stream time and ring positions stay aligned.
        ring.append(held.subarray(heldBytes, sizing.minBytes));
        heldBytes = sizing.minBytes;
      }
      sendHeld();
    },
    get replaying() {
      return queuedFrom !== undefined;
    },
    get queuedMs() {
      return queuedFrom === undefined ? 0 : (ring.end - queuedFrom) / BYTES_PER_MS;
    },
    get unsentFrom() {
      return queuedFrom ?? ring.end - heldBytes;
    },
    get streamStart() {
      return streamStart;
    },
  };
  return outbox;
}
