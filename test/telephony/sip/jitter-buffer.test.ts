import { describe, expect, it } from 'vitest';
import { mulawDecode, mulawEncode } from '../../../shared/audio/g711';
import { createJitterBuffer, type JitterBuffer, type JitterBufferOptions, type JitterPacket } from '../../../shared/telephony/sip/jitter-buffer';

/** A 160-byte frame that names its sequence number in its first two bytes (the rest is 0xFF, μ-law silence). */
function packet(sequence: number, options: { timestamp?: number; ssrc?: number; marker?: boolean; bytes?: number } = {}): JitterPacket {
  const payload = new Uint8Array(options.bytes ?? 160).fill(0xff);
  payload[0] = sequence & 0xff;
  payload[1] = (sequence >> 8) & 0xff;
  return {
    sequence: sequence & 0xffff,
    timestamp: (options.timestamp ?? 1000 + sequence * 160) >>> 0,
    ssrc: options.ssrc ?? 0x1234,
    marker: options.marker ?? false,
    payload,
  };
}

const idOf = (payload: Uint8Array) => payload[0]! | (payload[1]! << 8);

/** Pops once; '-' for nothing, 'c' for concealment, else the sequence number the frame names. */
function popOne(buffer: JitterBuffer): string {
  const frame = buffer.pop();
  if (!frame) return '-';
  return frame.concealed ? 'c' : String(idOf(frame.payload));
}

/**
 * A timeline: packets arrive at their times, the buffer is popped every 20 ms from `firstTickMs`;
 * returns what each tick produced.
 */
function play(buffer: JitterBuffer, arrivals: readonly { readonly atMs: number; readonly packet: JitterPacket }[], ticks: number, firstTickMs = 10): string[] {
  const out: string[] = [];
  let next = 0;
  const sorted = [...arrivals].sort((a, b) => a.atMs - b.atMs);
  for (let tick = 0; tick < ticks; tick++) {
    const at = firstTickMs + tick * 20;
    while (next < sorted.length && sorted[next]!.atMs <= at) {
      buffer.push(sorted[next]!.packet, sorted[next]!.atMs);
      next++;
    }
    out.push(popOne(buffer));
  }
  return out;
}

/** Packets `from`..`to` arriving on time, one every 20 ms from `startMs`. */
function steady(from: number, to: number, startMs = 0, options: (seq: number) => Parameters<typeof packet>[1] = () => ({})) {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ atMs: startMs + i * 20, packet: packet(from + i, options(from + i)) }));
}

const create = (options: JitterBufferOptions = {}) => createJitterBuffer(options);

describe('jitter buffer: order', () => {
  it('plays an on-time stream in order after the minimum delay (2 frames), nothing concealed', () => {
    const buffer = create();
    const out = play(buffer, steady(1, 20), 25);
    // The first packet arrived before tick 0; ticks 0 and 1 wait, tick 2 plays it.
    expect(out.slice(0, 2)).toEqual(['-', '-']);
    expect(out.slice(2, 22)).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
    expect(buffer.stats).toMatchObject({ received: 20, late: 0, duplicates: 0, lost: 0, discarded: 0, delayFrames: 2 });
    expect(buffer.stats.jitterMs).toBe(0);
  });

  it('reorders packets within the window', () => {
    const buffer = create();
    const order = [1, 3, 2, 5, 4, 6, 8, 7, 9, 10];
    const out = play(buffer, order.map((seq, i) => ({ atMs: i * 20, packet: packet(seq) })), 12);
    expect(out).toEqual(['-', '-', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(buffer.stats.lost).toBe(0);
  });

  it('plays across the 16-bit sequence wrap', () => {
    const buffer = create();
    const seqs = [65533, 65534, 65535, 0, 1, 2];
    const out = play(buffer, seqs.map((seq, i) => ({ atMs: i * 20, packet: packet(seq, { timestamp: 5000 + i * 160 }) })), 8);
    expect(out.filter((x) => /\d/.test(x)).map(Number)).toEqual(seqs);
    expect(buffer.stats.late).toBe(0);
  });

  it('reports a duplicate and plays it once', () => {
    const buffer = create();
    expect(buffer.push(packet(1), 0)).toBe('accepted');
    expect(buffer.push(packet(2), 20)).toBe('accepted');
    expect(buffer.push(packet(2), 21)).toBe('duplicate');
    const out = [popOne(buffer), popOne(buffer), popOne(buffer), popOne(buffer)];
    expect(out).toEqual(['-', '-', '1', '2']);
    expect(buffer.stats.duplicates).toBe(1);
  });

  it('drops a packet that arrives after its playout time as late', () => {
    const buffer = create();
    const out = play(buffer, [...steady(1, 3), ...steady(5, 8, 80)], 8);
    expect(out).toEqual(['-', '-', '1', '2', '3', 'c', '5', '6']);
    // Packet 4 arrives after its tick was concealed.
    expect(buffer.push(packet(4), 175)).toBe('late');
    expect(buffer.stats).toMatchObject({ late: 1, lost: 1, concealed: 1 });
  });

  it('accepts a packet reordered before the first one of a talkspurt', () => {
    const buffer = create();
    buffer.push(packet(11), 0);
    expect(buffer.push(packet(10), 5)).toBe('accepted');
    buffer.push(packet(12), 20);
    const out = [popOne(buffer), popOne(buffer), popOne(buffer), popOne(buffer), popOne(buffer)];
    expect(out).toEqual(['-', '-', '10', '11', '12']);
  });
});

describe('jitter buffer: loss and concealment', () => {
  it('conceals a lost packet by repeating the last frame, attenuated (μ-law decoded, scaled, re-encoded)', () => {
    const buffer = create({ encoding: 'mulaw' });
    const loud = new Int16Array(160).map((_, i) => Math.round(12000 * Math.sin((2 * Math.PI * i) / 20)));
    const frame = new Uint8Array(160);
    mulawEncode(loud, frame);
    const arrivals = [1, 2, 4, 5].map((seq) => ({ atMs: (seq - 1) * 20, packet: { ...packet(seq), payload: frame } }));
    const energies: number[] = [];
    const concealed: boolean[] = [];
    let next = 0;
    for (let tick = 0; tick < 6; tick++) {
      while (next < arrivals.length && arrivals[next]!.atMs <= 10 + tick * 20) buffer.push(arrivals[next]!.packet, arrivals[next++]!.atMs);
      const out = buffer.pop();
      if (!out) continue;
      const pcm = new Int16Array(out.payload.length);
      mulawDecode(out.payload, pcm);
      energies.push(Math.max(...pcm.map(Math.abs)));
      concealed.push(out.concealed);
    }
    expect(concealed).toEqual([false, false, true, false]);
    // The concealment frame is the same waveform, about 3 dB down.
    expect(energies[2]! / energies[0]!).toBeGreaterThan(0.6);
    expect(energies[2]! / energies[0]!).toBeLessThan(0.8);
    expect(buffer.stats).toMatchObject({ lost: 1, concealed: 1 });
  });

  it('repeats the last frame as it is without an encoding', () => {
    const buffer = create();
    const out: Uint8Array[] = [];
    const arrivals = [...steady(1, 3), ...steady(5, 6, 80)];
    let next = 0;
    for (let tick = 0; tick < 7; tick++) {
      while (next < arrivals.length && arrivals[next]!.atMs <= 10 + tick * 20) buffer.push(arrivals[next]!.packet, arrivals[next++]!.atMs);
      const frame = buffer.pop();
      if (frame) out.push(frame.payload.slice());
    }
    expect(out.map(idOf)).toEqual([1, 2, 3, 3, 5]);
  });

  it('conceals at most concealFrames in a row, then stays silent', () => {
    const buffer = create({ concealFrames: 3 });
    // 1-3, then 4-9 lost, then 10-12: packets ahead are buffered, so every gap frame is lost, not waited for.
    // 10-12 arrive early (at 60 ms and on), so the gap frames are known lost when their turn comes.
    const arrivals = [...steady(1, 3), ...steady(10, 12, 60)];
    const out = play(buffer, arrivals, 14);
    expect(out).toEqual(['-', '-', '1', '2', '3', 'c', 'c', 'c', '-', '-', '-', '10', '11', '12']);
    expect(buffer.stats).toMatchObject({ lost: 6, concealed: 3 });
  });

  it('waits for a packet when nothing later is buffered: concealment, then silence, and the stream picks up where it stopped', () => {
    const buffer = create({ concealFrames: 2 });
    const out = play(buffer, [...steady(1, 4), ...steady(5, 8, 400)], 30);
    // After 4: two concealed frames, then nothing until 5 arrives and the playout delay passes again.
    expect(out.slice(0, 8)).toEqual(['-', '-', '1', '2', '3', '4', 'c', 'c']);
    const resumed = out.indexOf('5');
    expect(out.slice(8, resumed).every((x) => x === '-')).toBe(true);
    expect(out.slice(resumed, resumed + 4)).toEqual(['5', '6', '7', '8']);
    // A pause with continuous sequence numbers (silence suppression) loses nothing.
    expect(buffer.stats.lost).toBe(0);
  });
});

describe('jitter buffer: restarts', () => {
  it('restarts on an SSRC change and plays the new stream', () => {
    const buffer = create();
    play(buffer, steady(1, 5), 8);
    expect(buffer.push(packet(900, { ssrc: 0x9999 }), 200)).toBe('reset');
    buffer.push(packet(901, { ssrc: 0x9999 }), 220);
    const out = [popOne(buffer), popOne(buffer), popOne(buffer), popOne(buffer)];
    expect(out).toEqual(['-', '-', '900', '901']);
    expect(buffer.stats.resets).toBe(1);
  });

  it('restarts when the timestamp jumps far from the arrival time and the next packet confirms it', () => {
    const buffer = create();
    play(buffer, steady(1, 5), 8);
    // Same SSRC, next sequence numbers, but the timestamp moved 60 s while 20 ms passed.
    expect(buffer.push(packet(6, { timestamp: 1000 + 6 * 160 + 60 * 8000 }), 120)).toBe('late');
    expect(buffer.push(packet(7, { timestamp: 1000 + 7 * 160 + 60 * 8000 }), 140)).toBe('reset');
    expect(buffer.stats.jitterMs).toBe(0);
    expect([popOne(buffer), popOne(buffer), popOne(buffer)]).toEqual(['-', '-', '7']);
  });

  it('drops one stray packet from long ago without disturbing playback', () => {
    const buffer = create();
    const arrivals = steady(100, 120);
    // A copy of packet 10 (3 s old by its timestamp) turns up in the middle of the stream.
    const out = play(buffer, [...arrivals, { atMs: 205, packet: packet(10) }], 22);
    expect(out.slice(2)).toEqual(Array.from({ length: 20 }, (_, i) => String(100 + i)));
    expect(buffer.stats).toMatchObject({ resets: 0, late: 1, lost: 0 });
  });

  it('does not restart on a timestamp jump that matches a pause (silence suppression)', () => {
    const buffer = create();
    play(buffer, steady(1, 5), 8);
    // 3 s later, the next sequence number, the timestamp 3 s further: a talkspurt after silence.
    expect(buffer.push(packet(6, { timestamp: 1000 + 5 * 160 + 3 * 8000, marker: true }), 80 + 3000)).toBe('accepted');
    expect(buffer.stats.resets).toBe(0);
  });

  it('restarts on a sequence jump beyond the window, once the next packet confirms it', () => {
    const buffer = create();
    play(buffer, steady(1, 3), 5);
    expect(buffer.push(packet(503, { timestamp: 1000 + 4 * 160 }), 60)).toBe('late');
    expect(buffer.push(packet(504, { timestamp: 1000 + 5 * 160 }), 80)).toBe('reset');
  });

  it('treats one far-behind packet as late, and two in order as a sequence restart', () => {
    const buffer = create();
    play(buffer, steady(30000, 30005), 8);
    expect(buffer.push(packet(100, { timestamp: 1000 + 30006 * 160 }), 120)).toBe('late');
    expect(buffer.push(packet(101, { timestamp: 1000 + 30007 * 160 }), 140)).toBe('reset');
  });
});

describe('jitter buffer: adaptive delay', () => {
  it('estimates jitter (RFC 3550) and grows the playout delay with it, within the bounds', () => {
    const buffer = create({ minDelayFrames: 2, maxDelayFrames: 10 });
    // Arrivals alternate 0 / +30 ms late: |D| = 30 ms per packet, J converges to 30 ms.
    for (let seq = 1; seq <= 200; seq++) buffer.push(packet(seq), seq * 20 + (seq % 2) * 30);
    expect(buffer.stats.jitterMs).toBeGreaterThan(25);
    expect(buffer.stats.jitterMs).toBeLessThanOrEqual(30);
    // A new talkspurt takes the delay from the estimate: ceil(3·30/20) + 1 = 6 frames.
    const next = create({ maxDelayFrames: 10 });
    for (let seq = 1; seq <= 200; seq++) next.push(packet(seq), seq * 20 + (seq % 2) * 30);
    for (let i = 0; i < 300; i++) next.pop();
    expect(next.stats.delayFrames).toBe(6);
    const clamped = create({ maxDelayFrames: 4 });
    for (let seq = 1; seq <= 200; seq++) clamped.push(packet(seq), seq * 20 + (seq % 2) * 60);
    for (let i = 0; i < 300; i++) clamped.pop();
    expect(clamped.stats.delayFrames).toBe(4);
  });

  it('with jittery arrivals stops losing packets once the delay has grown to fit the jitter', () => {
    const buffer = create();
    // 0-80 ms of pseudo-random extra delay on every packet: more than the initial 40 ms playout delay.
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const arrivals = Array.from({ length: 1500 }, (_, i) => ({ atMs: i * 20 + random() * 80, packet: packet(i + 1) }));
    const out = play(buffer, arrivals, 1500);
    expect(out.slice(0, 300).filter((x) => x === 'c').length).toBeGreaterThan(0);
    // After the first seconds: every packet plays, in order.
    const later = out.slice(300);
    expect(later.filter((x) => x === 'c' || x === '-')).toEqual([]);
    expect(later.map(Number)).toEqual(later.map((_, i) => Number(later[0]) + i));
    expect(buffer.stats.delayFrames).toBeGreaterThan(2);
    expect(buffer.stats.delayFrames).toBeLessThanOrEqual(10);
  });

  it('cuts a burst after a stall down to the target delay instead of playing it all late', () => {
    const buffer = create({ maxDelayFrames: 10 });
    // 40 packets arrive at once (a stall upstream), then the stream goes on in real time.
    const burst = Array.from({ length: 40 }, (_, i) => ({ atMs: 5, packet: packet(i + 1, { timestamp: 1000 + (i + 1) * 160 }) }));
    const after = steady(41, 80, 20);
    const out = play(buffer, [...burst, ...after], 60);
    expect(buffer.stats.discarded).toBeGreaterThan(25);
    // Once playing, the newest packet is never more than maxDelay + 1 frames ahead of what plays.
    const playedAtTick40 = Number(out[40]);
    expect(41 + 40 - 1 - playedAtTick40).toBeLessThanOrEqual(11);
  });

  it('shrinks a delay that stays deeper than needed by one frame per window', () => {
    const buffer = create({ adaptWindowFrames: 25 });
    // Start: 6 frames queued at once (a one-time burst), then perfectly regular arrivals.
    const arrivals = [...Array.from({ length: 6 }, (_, i) => ({ atMs: 0, packet: packet(i + 1, { timestamp: 1000 + (i + 1) * 160 }) })), ...steady(7, 200, 20)];
    play(buffer, arrivals, 190);
    // 6 + 2 waiting ticks = 8 deep; steady state wants 3: the excess is shed a frame per window.
    expect(buffer.stats.discarded).toBeGreaterThanOrEqual(4);
    expect(buffer.stats.discarded).toBeLessThanOrEqual(6);
  });
});

describe('jitter buffer: hostile input', () => {
  it('survives 20 000 random packets and ticks: never throws, at most one frame per tick, the delay within its bounds', () => {
    const buffer = create({ encoding: 'alaw' });
    let seed = 99;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    let now = 0;
    let pops = 0;
    let produced = 0;
    for (let i = 0; i < 20_000; i++) {
      now += random() * 30;
      const nearby = random() < 0.8;
      const result = buffer.push(
        {
          sequence: nearby ? (i + Math.floor(random() * 40) - 20) & 0xffff : Math.floor(random() * 65536),
          timestamp: nearby ? (i * 160 + Math.floor(random() * 4000)) >>> 0 : Math.floor(random() * 2 ** 32),
          ssrc: random() < 0.995 ? 1 : Math.floor(random() * 4),
          marker: random() < 0.05,
          payload: new Uint8Array(random() < 0.99 ? 160 : Math.floor(random() * 400)),
        },
        now,
      );
      expect(['late', 'duplicate', 'accepted', 'reset']).toContain(result);
      if (random() < 0.7) {
        pops++;
        const frame = buffer.pop();
        if (frame) {
          produced++;
          expect(frame.payload.length).toBeLessThan(400);
        }
      }
    }
    const s = buffer.stats;
    expect(s.received).toBe(20_000);
    expect(produced).toBeLessThanOrEqual(pops);
    expect(s.delayFrames).toBeGreaterThanOrEqual(2);
    expect(s.delayFrames).toBeLessThanOrEqual(10);
    expect(s.resets).toBeGreaterThan(0);
    expect(s.late + s.duplicates).toBeGreaterThan(0);
  });
});

describe('jitter buffer: memory', () => {
  it('copies payloads into a fixed pool: frames come out of the same memory, the caller buffer can be reused', () => {
    const buffer = create({ capacityFrames: 50 });
    const shared = new Uint8Array(160);
    const buffers = new Set<ArrayBufferLike>();
    for (let seq = 1; seq <= 300; seq++) {
      shared.fill(seq & 0xff);
      buffer.push({ sequence: seq, timestamp: seq * 160, ssrc: 1, marker: false, payload: shared }, seq * 20);
      const frame = buffer.pop();
      if (frame && !frame.concealed) {
        expect(frame.payload[0]).toBe((seq - 2) & 0xff);
        buffers.add(frame.payload.buffer);
      }
    }
    expect(buffers.size).toBe(1);
  });

  it('grows one slot for a bigger packet and plays it whole', () => {
    const buffer = create();
    buffer.push(packet(1, { bytes: 320 }), 0);
    buffer.push(packet(2), 20);
    expect(buffer.pop()).toBeUndefined();
    expect(buffer.pop()).toBeUndefined();
    expect(buffer.pop()!.payload.length).toBe(320);
    expect(buffer.pop()!.payload.length).toBe(160);
  });

  it('reset forgets the stream but keeps the counters', () => {
    const buffer = create();
    play(buffer, steady(1, 5), 8);
    buffer.reset();
    expect(buffer.pop()).toBeUndefined();
    expect(buffer.push(packet(2), 500)).toBe('accepted');
    expect(buffer.stats.received).toBe(6);
  });
});
