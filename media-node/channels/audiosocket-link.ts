import type { Socket } from 'node:net';
import { systemClock, type Clock, type TimerHandle } from '../../shared/contracts/clock';
import type { CarrierLink } from '../../shared/telephony/carrier';
import { audioSocketFrameMs, encodeAudioSocketHangup, type AudioSocketSplitter } from '../../shared/telephony/audiosocket';
import type { ProtocolError } from '../../shared/telephony/protocol-error';

export interface AudioSocketLinkOptions {
  /** The connection's splitter, with whatever it already holds of a frame (the handshake read through it). */
  readonly splitter: AudioSocketSplitter;
  /** Frames read before the link took over (the UUID, the first audio), delivered first, in order. */
  readonly initialFrames?: readonly Uint8Array[];
  /** Audio written ahead of real time at most (Asterisk plays what it gets at once; nothing written can be recalled). */
  readonly maxAheadMs?: number;
  /** Audio held for pacing at most; beyond it new frames are dropped and counted. */
  readonly maxHeldMs?: number;
  /** The stream can no longer be framed: the link hangs up after reporting it. */
  onFramingError?(error: ProtocolError): void;
  readonly clock?: Clock;
  /** How long a hung-up connection may take to close before it is cut. */
  readonly closeGraceMs?: number;
}

/**
 * An AudioSocket TCP connection as a CarrierLink: one message = one whole TLV frame (header included).
 *
 * Outbound audio is paced here, not only by the engine: Asterisk writes what it receives to the channel at
 * once and has no clear, so audio is written in real time at most `maxAheadMs` (two frames) ahead and the
 * rest is held, where a barge-in can still drop it (`dropHeld`). Closing writes the hang-up frame
 * (`00 00 00`), then ends the connection.
 */
export function createAudioSocketLink(socket: Socket, options: AudioSocketLinkOptions) {
  const clock = options.clock ?? systemClock;
  const maxAheadMs = options.maxAheadMs ?? 40;
  // The engine's lead is at most 1 s (assistant `output.leadMs`); twice that before frames are dropped.
  const maxHeldMs = options.maxHeldMs ?? 2000;
  const pending: Uint8Array[] = [...(options.initialFrames ?? [])];
  const messageListeners: ((message: Uint8Array) => void)[] = [];
  const closeListeners: ((error: boolean) => void)[] = [];
  let paused = false;
  let ended = false;
  let closedNotified = false;
  let transportError = false;
  /** Audio frames waiting for their time, and how long they play in total. */
  const held: { frame: Uint8Array; ms: number }[] = [];
  let heldMs = 0;
  let heldBytes = 0;
  /** Clock time until which Asterisk has audio from us. */
  let aheadUntil = 0;
  let timer: TimerHandle | undefined;
  const stats = { framesWritten: 0, framesDroppedOnClear: 0, framesDroppedFull: 0 };

  /** Deliver what was read, while someone listens and reading is not paused; otherwise stop reading. */
  function flow(): void {
    while (!paused && messageListeners.length > 0 && pending.length > 0) {
      const frame = pending.shift()!;
      for (const listener of messageListeners) listener(frame);
    }
    if (ended) return;
    if (!paused && messageListeners.length > 0) socket.resume();
    else socket.pause();
  }

  socket.on('data', (chunk: Buffer) => {
    // After our hang-up nothing more is read (the peer must not fill memory while the socket winds down).
    if (ended) return;
    const result = options.splitter.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    pending.push(...result.frames);
    if (!result.ok) {
      options.onFramingError?.(result.error);
      flow();
      hangUp();
      return;
    }
    flow();
  });
  socket.on('error', () => {
    transportError = true;
  });
  /** How the connection ended, once it has (a listener added later still hears it). */
  let closedWith: boolean | undefined;
  socket.on('close', (hadError) => {
    ended = true;
    stopPacing();
    closedWith = hadError || transportError;
    if (closedNotified) return;
    closedNotified = true;
    for (const listener of closeListeners) listener(closedWith);
  });

  function pump(): void {
    timer = undefined;
    if (ended) return;
    const now = clock.now();
    if (aheadUntil < now) aheadUntil = now;
    // Write while the frame still ends within the lead: at most `maxAheadMs` of audio sits in Asterisk.
    while (held.length > 0 && aheadUntil + held[0]!.ms - now <= maxAheadMs + 0.5) {
      const { frame, ms } = held.shift()!;
      heldMs -= ms;
      heldBytes -= frame.length;
      aheadUntil += ms;
      stats.framesWritten++;
      socket.write(frame);
    }
    if (held.length > 0) timer = clock.setTimeout(pump, Math.max(1, aheadUntil + held[0]!.ms - maxAheadMs - now));
  }

  function stopPacing(): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    held.length = 0;
    heldMs = 0;
    heldBytes = 0;
  }

  function hangUp(): void {
    if (ended || socket.destroyed) return;
    ended = true;
    // Audio not yet written is dropped: the call is over.
    stopPacing();
    if (socket.writable) {
      socket.end(encodeAudioSocketHangup());
      // Asterisk closes at once on a hang-up; one that does not is cut.
      const cut = setTimeout(() => socket.destroy(), options.closeGraceMs ?? 2000);
      cut.unref();
      socket.once('close', () => clearTimeout(cut));
    } else {
      socket.destroy();
    }
  }

  const link: CarrierLink = {
    onMessage(listener) {
      messageListeners.push(listener as (message: Uint8Array) => void);
      flow();
    },
    onClose(listener) {
      closeListeners.push(listener);
      // The connection ended before this listener came (while the call was being claimed, or before the link
      // existed): its close event is not coming again, so the listener hears it now.
      if (closedWith !== undefined) {
        const how = closedWith;
        queueMicrotask(() => listener(how));
      } else if (socket.destroyed && !closedNotified) {
        closedNotified = true;
        ended = true;
        queueMicrotask(() => listener(transportError));
      }
    },
    send(payload) {
      if (ended || typeof payload === 'string' || payload.length === 0) return;
      const ms = audioSocketFrameMs(payload);
      if (ms === 0) {
        // Not audio (nothing else is sent today): it goes out at once, behind the audio already written.
        socket.write(payload);
        return;
      }
      if (heldMs + ms > maxHeldMs) {
        stats.framesDroppedFull++;
        return;
      }
      held.push({ frame: payload, ms });
      heldMs += ms;
      heldBytes += payload.length;
      if (timer === undefined) pump();
    },
    close() {
      hangUp();
    },
    get open() {
      return !ended && !socket.destroyed && socket.writable;
    },
    bufferedAmount: () => socket.writableLength + heldBytes,
    pause() {
      paused = true;
      flow();
    },
    resume() {
      paused = false;
      flow();
    },
  };

  return {
    link,
    /** Barge-in: the audio not yet written is dropped (what Asterisk has, at most `maxAheadMs`, still plays). */
    dropHeld(): void {
      stats.framesDroppedOnClear += held.length;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      held.length = 0;
      heldMs = 0;
      heldBytes = 0;
    },
    /** Audio held for pacing, in ms. */
    get heldMs() {
      return heldMs;
    },
    stats,
  };
}

export type AudioSocketLink = ReturnType<typeof createAudioSocketLink>;
