import { alawDecode, alawEncode, mulawDecode, mulawEncode } from '../../audio/g711';

/**
 * An RTP playout buffer for one inbound stream (reference §7.3). Pure and timer-free: the RTP link pushes
 * every received audio packet and pops one frame per 20 ms tick of its monotonic clock.
 *
 * Packets are indexed by extended (32-bit-like) sequence numbers, so the 16-bit wrap is invisible. Playback of
 * a talkspurt starts after `delayFrames` ticks, where the delay follows the RFC 3550 interarrival jitter
 * (≈ 3·J + one frame, clamped). Within a call the delay grows when the buffer runs dry (the missing packet is
 * waited for rather than skipped) and shrinks when it stays deeper than needed (one frame dropped per window).
 * A gap is concealed by repeating the last frame, attenuated when the encoding is known, then left silent.
 */

export interface JitterBufferOptions {
  /** Samples (and, for G.711, bytes) per packet: 160 = 20 ms at 8 kHz. */
  readonly frameSamples?: number;
  readonly clockRateHz?: number;
  /** Playout delay bounds, in frames (the default 2..10 is 40..200 ms). */
  readonly minDelayFrames?: number;
  readonly maxDelayFrames?: number;
  /** Frames the buffer can hold (the reorder window): 50 = 1 s. */
  readonly capacityFrames?: number;
  /** Missing frames concealed in a row before the output goes silent. */
  readonly concealFrames?: number;
  /** Enables attenuated concealment (decode, scale, encode); without it the last frame repeats as it is. */
  readonly encoding?: 'mulaw' | 'alaw';
  /** A packet whose timestamp disagrees with its arrival time by more than this restarts the buffer. */
  readonly resetJumpMs?: number;
  /** Ticks over which the buffer depth is watched before the delay is shrunk by one frame. */
  readonly adaptWindowFrames?: number;
}

export interface JitterPacket {
  /** u16 RTP sequence number. */
  readonly sequence: number;
  /** u32 RTP timestamp. */
  readonly timestamp: number;
  readonly ssrc: number;
  readonly marker: boolean;
  readonly payload: Uint8Array;
}

/**
 * `late`: after its playout time, or out of the window (a discontinuity the next packet may confirm);
 * `reset`: the stream restarted with this packet (new SSRC, or a confirmed timestamp/sequence jump).
 */
export type JitterPushResult = 'late' | 'duplicate' | 'accepted' | 'reset';

/** One output frame. Reused: valid until the next pop or push (copy it to keep it). */
export interface JitterFrame {
  readonly payload: Uint8Array;
  readonly concealed: boolean;
}

export interface JitterBufferStats {
  /** Packets pushed. */
  received: number;
  /** Arrived after their playout time (or far outside the window). */
  late: number;
  duplicates: number;
  /** Sequence numbers whose playout time passed without their packet. */
  lost: number;
  /** Frames of concealment produced. */
  concealed: number;
  /** Buffered frames dropped to keep the delay bounded (a burst after a stall, a buffer deeper than needed). */
  discarded: number;
  /** Restarts: SSRC change, timestamp jump, sequence jump. */
  resets: number;
  /** The current target playout delay. */
  delayFrames: number;
  /** The RFC 3550 interarrival jitter estimate. */
  jitterMs: number;
}

export interface JitterBuffer {
  /** One received packet; `arrivalMs` from a monotonic clock. The payload is copied. */
  push(packet: JitterPacket, arrivalMs: number): JitterPushResult;
  /** Once per frame tick: the next frame, a concealment frame, or undefined (not started, or silence). */
  pop(): JitterFrame | undefined;
  readonly stats: Readonly<JitterBufferStats>;
  /** Forget buffered audio, the stream and the jitter estimate (counters are kept: they are per call). */
  reset(): void;
}

/** Extended sequence numbers start here, so a packet reordered before the first one stays positive. */
const EXT_BASE = 1 << 20;
/** Per concealed frame in a row: about -3 dB. */
const CONCEAL_GAIN = 0.7;

export function createJitterBuffer(options: JitterBufferOptions = {}): JitterBuffer {
  const frameSamples = options.frameSamples ?? 160;
  const clockRateHz = options.clockRateHz ?? 8000;
  const frameMs = (frameSamples * 1000) / clockRateHz;
  const minDelay = Math.max(1, options.minDelayFrames ?? 2);
  const maxDelay = Math.max(minDelay, options.maxDelayFrames ?? 10);
  const capacity = Math.max(maxDelay + 2, options.capacityFrames ?? 50);
  const concealFrames = Math.max(0, options.concealFrames ?? 3);
  const resetJumpUnits = ((options.resetJumpMs ?? 2000) * clockRateHz) / 1000;
  const adaptWindow = Math.max(1, options.adaptWindowFrames ?? 50);

  // The slot pool: `capacity` buffers of one frame, carved from one allocation; a slot grows only for a bigger packet.
  const pool = new Uint8Array(capacity * frameSamples);
  const slots: Uint8Array[] = Array.from({ length: capacity }, (_, i) => pool.subarray(i * frameSamples, (i + 1) * frameSamples));
  /** A view of each slot at its packet's length, remade only when the length changes. */
  const views: Uint8Array[] = slots.slice();
  /** The extended sequence number each slot holds; -1: empty. */
  const exts = new Float64Array(capacity).fill(-1);

  // Concealment: the last frame played, and scratch space to attenuate it.
  let lastFrame = new Uint8Array(frameSamples);
  let lastLength = 0;
  let concealOut = new Uint8Array(frameSamples);
  let pcm = new Int16Array(frameSamples);
  const decode = options.encoding === 'alaw' ? alawDecode : options.encoding === 'mulaw' ? mulawDecode : undefined;
  const encode = options.encoding === 'alaw' ? alawEncode : mulawEncode;

  const frame: { payload: Uint8Array; concealed: boolean } = { payload: lastFrame, concealed: false };
  const stats: JitterBufferStats = { received: 0, late: 0, duplicates: 0, lost: 0, concealed: 0, discarded: 0, resets: 0, delayFrames: minDelay, jitterMs: 0 };

  let ssrc: number | undefined;
  /** Highest extended sequence number stored since the stream (re)started. */
  let maxExt = -1;
  /** Playing: the next frame to play. Buffering: the lowest frame waiting. Idle: where playback stopped. */
  let nextExt = -1;
  /** The last frame played or passed over; anything at or below it is late. -1: none since the start. */
  let passedExt = -1;
  let mode: 'idle' | 'buffering' | 'playing' = 'idle';
  let waitTicks = 0;
  let concealRun = 0;
  let lastTimestamp = 0;
  let lastArrivalMs = 0;
  /** RFC 3550 A.8 J, in timestamp units. */
  let jitterUnits = 0;
  let windowTicks = 0;
  let windowMinDepth = Infinity;
  /** The sequence number that would confirm the discontinuity the previous packet showed. */
  let probeSequence = -1;

  function targetDelay(): number {
    const jitterMs = (jitterUnits * 1000) / clockRateHz;
    const frames = Math.ceil((3 * jitterMs) / frameMs) + 1;
    return Math.min(maxDelay, Math.max(minDelay, frames));
  }

  function clearSlots(): void {
    exts.fill(-1);
  }

  function forgetStream(): void {
    clearSlots();
    ssrc = undefined;
    maxExt = -1;
    nextExt = -1;
    passedExt = -1;
    mode = 'idle';
    waitTicks = 0;
    concealRun = 0;
    probeSequence = -1;
  }

  function store(ext: number, payload: Uint8Array): void {
    const index = ext % capacity;
    let slot = slots[index]!;
    if (payload.length > slot.length) {
      slot = new Uint8Array(payload.length);
      slots[index] = slot;
      views[index] = slot;
    }
    slot.set(payload);
    if (views[index]!.length !== payload.length) views[index] = slot.subarray(0, payload.length);
    exts[index] = ext;
    if (ext > maxExt) maxExt = ext;
  }

  /** The first packet of a stream (or after a restart): playback begins after the playout delay. */
  function begin(packet: JitterPacket, arrivalMs: number): void {
    forgetStream();
    ssrc = packet.ssrc;
    const ext = EXT_BASE + packet.sequence;
    lastTimestamp = packet.timestamp;
    lastArrivalMs = arrivalMs;
    startBuffering(ext);
    store(ext, packet.payload);
  }

  function startBuffering(ext: number): void {
    mode = 'buffering';
    nextExt = ext;
    waitTicks = 0;
    stats.delayFrames = targetDelay();
  }

  function restart(packet: JitterPacket, arrivalMs: number): 'reset' {
    stats.resets++;
    begin(packet, arrivalMs);
    return 'reset';
  }

  /** Passes over the frame at the front: dropped (counted) if it was buffered, lost if it never came. */
  function discardFront(): void {
    const index = nextExt % capacity;
    if (exts[index] === nextExt) {
      exts[index] = -1;
      stats.discarded++;
    } else {
      stats.lost++;
    }
    passedExt = nextExt;
    nextExt++;
  }

  function conceal(): JitterFrame | undefined {
    if (concealRun >= concealFrames || lastLength === 0) return undefined;
    concealRun++;
    stats.concealed++;
    if (!decode) {
      frame.payload = lastLength === lastFrame.length ? lastFrame : lastFrame.subarray(0, lastLength);
    } else {
      decode(lastFrame, pcm, lastLength);
      const gain = CONCEAL_GAIN ** concealRun;
      for (let i = 0; i < lastLength; i++) pcm[i] = Math.round(pcm[i]! * gain);
      encode(pcm, concealOut, lastLength);
      frame.payload = lastLength === concealOut.length ? concealOut : concealOut.subarray(0, lastLength);
    }
    frame.concealed = true;
    return frame;
  }

  function play(index: number): JitterFrame {
    const payload = views[index]!;
    exts[index] = -1;
    passedExt = nextExt;
    nextExt++;
    concealRun = 0;
    if (payload.length > lastFrame.length) {
      lastFrame = new Uint8Array(payload.length);
      concealOut = new Uint8Array(payload.length);
      pcm = new Int16Array(payload.length);
    }
    lastFrame.set(payload);
    lastLength = payload.length;
    frame.payload = payload;
    frame.concealed = false;
    return frame;
  }

  /** Keeps the delay near its target: a burst is cut at once, a steady excess loses one frame per window. */
  function adapt(): void {
    const depth = maxExt - nextExt + 1;
    if (depth > maxDelay + 1) {
      stats.delayFrames = targetDelay();
      while (maxExt - nextExt + 1 > stats.delayFrames + 1) discardFront();
      windowTicks = 0;
      windowMinDepth = Infinity;
      return;
    }
    if (depth < windowMinDepth) windowMinDepth = depth;
    if (++windowTicks < adaptWindow) return;
    stats.delayFrames = targetDelay();
    // Steady state holds delay + 1 frames before a pop; more than that all window long is needless latency.
    if (windowMinDepth > stats.delayFrames + 1) discardFront();
    windowTicks = 0;
    windowMinDepth = Infinity;
  }

  return {
    stats,
    push(packet, arrivalMs) {
      stats.received++;
      if (ssrc === undefined) {
        begin(packet, arrivalMs);
        return 'accepted';
      }
      if (packet.ssrc !== ssrc) return restart(packet, arrivalMs);
      const delta = ((((packet.sequence - (maxExt % 65536)) & 0xffff) + 32768) & 0xffff) - 32768;
      const ext = maxExt + delta;
      const index = ext % capacity;
      if (exts[index] === ext) {
        stats.duplicates++;
        return 'duplicate';
      }
      // How far the sender's clock and ours disagree since the previous packet (RFC 3550 A.8 D).
      const transitDelta = ((arrivalMs - lastArrivalMs) * clockRateHz) / 1000 - ((packet.timestamp - lastTimestamp) | 0);
      if (Math.abs(transitDelta) > resetJumpUnits || delta > capacity || -delta > capacity) {
        // A discontinuity: one stray packet (a copy from long ago) is dropped; the sender really jumped (a
        // restarted timestamp or sequence, a stall upstream) when the next packet follows this one in order.
        if (packet.sequence === probeSequence) return restart(packet, arrivalMs);
        probeSequence = (packet.sequence + 1) & 0xffff;
        stats.late++;
        return 'late';
      }
      probeSequence = -1;
      jitterUnits += (Math.abs(transitDelta) - jitterUnits) / 16;
      stats.jitterMs = (jitterUnits * 1000) / clockRateHz;
      lastTimestamp = packet.timestamp;
      lastArrivalMs = arrivalMs;
      if (ext <= passedExt || (mode === 'playing' && ext < nextExt)) {
        stats.late++;
        return 'late';
      }
      if (mode === 'idle') startBuffering(ext);
      else if (mode === 'buffering' && ext < nextExt) {
        // Reordered before the first packet of the talkspurt.
        if (maxExt - ext >= capacity) {
          stats.late++;
          return 'late';
        }
        nextExt = ext;
      }
      // Beyond the window: the oldest frames make room (a burst far larger than any playout delay).
      while (ext - nextExt >= capacity) discardFront();
      store(ext, packet.payload);
      return 'accepted';
    },

    pop() {
      if (mode === 'idle') return undefined;
      if (mode === 'buffering') {
        if (++waitTicks <= stats.delayFrames) return undefined;
        // Sequence numbers skipped since playback stopped were lost (none after a silence: senders keep counting).
        if (passedExt >= 0 && nextExt > passedExt + 1) stats.lost += nextExt - passedExt - 1;
        mode = 'playing';
        concealRun = 0;
        windowTicks = 0;
        windowMinDepth = Infinity;
      }
      adapt();
      const index = nextExt % capacity;
      if (exts[index] === nextExt) return play(index);
      if (maxExt > nextExt) {
        // Later packets are here, so this one is lost: conceal it and move on.
        stats.lost++;
        passedExt = nextExt;
        nextExt++;
        return conceal();
      }
      // Nothing buffered: the packet may only be late, so wait for it (the delay grows by a frame), briefly.
      const concealed = conceal();
      if (!concealed) mode = 'idle';
      return concealed;
    },

    reset() {
      forgetStream();
      jitterUnits = 0;
      lastLength = 0;
      stats.jitterMs = 0;
      stats.delayFrames = minDelay;
    },
  };
}
