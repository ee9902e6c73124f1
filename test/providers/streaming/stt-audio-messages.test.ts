/**
 * The socket base's audio message sizing (`audioMessageMs`) and replay pacing (`replayPacing`), against the
 * reference fake with the reference wire plus those fields. Frames carry distinct tiny non-zero samples (no
 * tones: the fake hears no words, so no final frees the ring), which makes gaps, repeats and padding visible.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../../media-node/providers/ws-socket';
import { PIPELINE_FORMAT } from '../../../shared/audio/format';
import type { SttEvent } from '../../../shared/contracts/stt';
import type { SocketProviderDeps } from '../../../shared/providers/streaming/deps';
import { createReplayRing } from '../../../shared/providers/streaming/replay-ring';
import { createSocketStt } from '../../../shared/providers/streaming/stt-socket';
import type { SocketSttSession } from '../../../shared/providers/streaming/stt-socket';
import type { SttAudioMessageMs, SttReplayPacing } from '../../../shared/providers/streaming/stt-wire';
import { waitFor } from '../conformance/stt-suite';
import { startReferenceFake } from '../fakes/reference';
import { delay } from './helpers';
import { referenceSttWire } from './reference-wire';

const BYTES_PER_MS = 32;
const connect = createWsSocketFactory();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface Setup {
  audioMessageMs?: SttAudioMessageMs;
  replayPacing?: SttReplayPacing;
  keepAliveMs?: number;
  deps?: Partial<SocketProviderDeps>;
}

async function setup(options: Setup) {
  const fake = await startReferenceFake();
  cleanups.push(() => fake.close());
  const wire = {
    ...referenceSttWire({ keepAliveMs: options.keepAliveMs ?? 0 }),
    ...(options.audioMessageMs ? { audioMessageMs: options.audioMessageMs } : {}),
    ...(options.replayPacing ? { replayPacing: options.replayPacing } : {}),
  };
  const stt = createSocketStt(wire, { connect, retry: { attempts: 3, baseDelayMs: 10 }, ...options.deps });
  const events: SttEvent[] = [];
  const session = (await stt.open({ language: 'en', options: {}, endpoint: fake.endpoint, apiKey: fake.apiKey, signal: new AbortController().signal }, (e) =>
    events.push(e),
  )) as SocketSttSession;
  cleanups.push(() => session.close());
  const written: Uint8Array[] = [];
  /** Write `count` frames of `ms` each, every one a distinct tiny constant sample (far below what the fake hears as a word). */
  const write = (count: number, ms = 20): void => {
    for (let i = 0; i < count; i++) {
      const data = new Uint8Array(ms * BYTES_PER_MS);
      for (let at = 0; at < data.byteLength; at += 2) data[at] = (written.length % 250) + 1;
      written.push(data);
      session.write({ format: PIPELINE_FORMAT, data });
    }
  };
  const received = (connection = 0) => fake.connections[connection]?.received ?? [];
  const audio = (connection = 0) => received(connection).filter((f): f is Uint8Array => typeof f !== 'string');
  const sizesMs = (connection = 0) => audio(connection).map((m) => m.byteLength / BYTES_PER_MS);
  const texts = (connection = 0) => received(connection).flatMap((f) => (typeof f === 'string' ? [(JSON.parse(f) as { type: string }).type] : ['audio']));
  return { fake, session, events, written, write, audio, sizesMs, texts };
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};
const silent = (bytes: Uint8Array) => bytes.every((b) => b === 0);

describe('audio message sizing: live audio', () => {
  it('20 ms frames are joined to the target (whole frames), never beyond max; a long write is split', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 120, hold: 10_000 } });
    h.write(9); // 180 ms: three 60 ms messages
    h.write(1, 300); // 300 ms in one write: 120 + 120 + 60
    await waitFor(() => h.sizesMs().length === 6, 'six messages');
    expect(h.sizesMs()).toEqual([60, 60, 60, 120, 120, 60]);
    expect(concat(h.audio())).toEqual(concat(h.written));
  });

  it('a target above the minimum sets the message size', async () => {
    const h = await setup({ audioMessageMs: { min: 40, target: 100, max: 100, hold: 10_000 } });
    h.write(12);
    await waitFor(() => h.sizesMs().length === 2, 'two messages');
    await delay(50);
    expect(h.sizesMs()).toEqual([100, 100]);
    expect(concat(h.audio())).toEqual(concat(h.written.slice(0, 10)));
  });
});

describe('audio message sizing: flushes', () => {
  it('finalize and close send the held rest first: padded with silence to min with padOnFlush', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 } });
    h.write(4); // 60 ms sent, 20 ms held
    h.session.finalize();
    h.write(1);
    await h.session.close();
    expect(h.texts()).toEqual(['audio', 'audio', 'finalize', 'audio', 'close']);
    expect(h.sizesMs()).toEqual([60, 50, 50]);
    const [, first, second] = h.audio();
    expect(first!.subarray(0, 640)).toEqual(h.written[3]);
    expect(silent(first!.subarray(640))).toBe(true);
    expect(second!.subarray(0, 640)).toEqual(h.written[4]);
    expect(silent(second!.subarray(640))).toBe(true);
  });

  it('without padOnFlush the rest goes as it is', async () => {
    const h = await setup({ audioMessageMs: { min: 100, max: 100, hold: 10_000 } });
    h.write(7); // 100 ms sent, 40 ms held
    h.session.finalize();
    h.write(1);
    await h.session.close();
    expect(h.texts()).toEqual(['audio', 'audio', 'finalize', 'audio', 'close']);
    expect(h.sizesMs()).toEqual([100, 40, 20]);
    expect(concat(h.audio())).toEqual(concat(h.written));
  });

  it('a held rest goes out after the hold time without new audio (loose timing), padded or not', async () => {
    for (const padOnFlush of [false, true]) {
      const h = await setup({ audioMessageMs: { min: 100, max: 100, hold: 150, padOnFlush } });
      h.write(2);
      await delay(80);
      expect(h.sizesMs()).toEqual([]);
      await waitFor(() => h.sizesMs().length === 1, 'the held rest', 1000);
      expect(h.sizesMs()).toEqual([padOnFlush ? 100 : 40]);
      expect(h.audio()[0]!.subarray(0, 1280)).toEqual(concat(h.written));
    }
  });

  it('a keep-alive sends the held rest before it', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 }, keepAliveMs: 100 });
    h.write(1);
    await waitFor(() => h.texts().includes('keepalive'), 'a keep-alive', 1000);
    expect(h.texts().slice(0, 2)).toEqual(['audio', 'keepalive']);
    expect(h.sizesMs()[0]).toBe(50);
  });
});

describe('audio message sizing: replay after a reconnect', () => {
  it('the ring goes out in bounded messages, the short rest starts the next live message: no gap, no repeat, no padding', async () => {
    // 310 ms of ring: it wraps, and its replay is 3 × 100 ms with 10 ms left over.
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 }, deps: { replayMs: 310 } });
    h.write(50); // 1000 ms: 16 × 60 ms sent, 40 ms held
    h.write(1, 10); // 50 ms held: sent
    await waitFor(() => h.sizesMs().length === 17, 'the live messages');
    expect(concat(h.audio())).toEqual(concat(h.written));
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2 && h.sizesMs(1).length === 3, 'the replay');
    await delay(30);
    expect(h.sizesMs(1)).toEqual([100, 100, 100]);
    h.write(2); // 10 ms held + 40 ms: one 50 ms message
    h.session.finalize();
    await waitFor(() => h.texts(1).includes('finalize'), 'the finalize');
    expect(h.sizesMs(1)).toEqual([100, 100, 100, 50]);
    expect(h.texts(1).at(-1)).toBe('finalize');
    const all = concat(h.written);
    // The replay is the last 310 ms written before the drop, then the new audio, exactly once.
    expect(concat(h.audio(1))).toEqual(all.subarray(all.byteLength - (310 + 40) * BYTES_PER_MS));
    expect(h.session.stats.droppedReplayMs).toBe(1050 - 310); // the ring keeps the newest 310 ms of all written
    expect(h.events).toEqual([]);
  });

  it('a paced replay takes at least its real-time duration, and live audio and finalize queue behind it', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 }, replayPacing: { realtimeFactor: 1, burstMs: 100 } });
    h.write(60); // 1200 ms, all sent (20 × 60 ms)
    await waitFor(() => h.sizesMs().length === 20, 'the live messages');
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    const startedAt = performance.now();
    h.write(5); // written during the replay: queued behind it
    h.session.finalize();
    await delay(50);
    expect(h.texts(1)).not.toContain('finalize');
    await waitFor(() => h.texts(1).includes('finalize'), 'the end of the replay', 5000);
    const tookMs = performance.now() - startedAt;
    // 1300 ms of audio at real time after a 100 ms burst (loose: timers, polling).
    expect(tookMs).toBeGreaterThanOrEqual(1100);
    expect(tookMs).toBeLessThan(3000);
    expect(h.texts(1).at(-1)).toBe('finalize');
    expect(h.sizesMs(1).every((ms) => ms >= 50 && ms <= 1000)).toBe(true);
    expect(concat(h.audio(1))).toEqual(concat(h.written));
    expect(h.events).toEqual([]);
  }, 10_000);

  it('close during a paced replay lets it finish, then sends the close message', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 }, replayPacing: { realtimeFactor: 1, burstMs: 100 } });
    h.write(31); // 620 ms: 600 sent, 20 held
    await waitFor(() => h.sizesMs().length === 10, 'the live messages');
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2 && h.sizesMs(1).length > 0, 'the replay');
    const startedAt = performance.now();
    await h.session.close();
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(350);
    expect(h.texts(1).at(-1)).toBe('close');
    expect(h.sizesMs(1)).toEqual([100, 100, 100, 100, 100, 100, 50]); // the 20 ms rest padded before the close
    expect(concat(h.audio(1)).subarray(0, 620 * BYTES_PER_MS)).toEqual(concat(h.written));
    await waitFor(() => h.fake.connections[1]!.closeCode !== undefined, 'the close', 1000);
    expect(h.fake.connections[1]!.closeCode).toBe(1000);
  });

  it('without pacing the same replay goes out at once', async () => {
    const h = await setup({ audioMessageMs: { min: 50, max: 1000, padOnFlush: true, hold: 10_000 } });
    h.write(60);
    await waitFor(() => h.sizesMs().length === 20, 'the live messages');
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    const startedAt = performance.now();
    await waitFor(() => h.sizesMs(1).length === 12, 'the replay');
    expect(performance.now() - startedAt).toBeLessThan(500);
    expect(concat(h.audio(1))).toEqual(concat(h.written));
  });
});

describe('replay ring copyOut', () => {
  it('copies a range across the wrap point, and only what is kept', () => {
    const ring = createReplayRing(8);
    ring.append(Uint8Array.from([1, 2, 3, 4, 5, 6]));
    ring.append(Uint8Array.from([7, 8, 9, 10]));
    const out = new Uint8Array(6);
    expect(ring.copyOut(4, 6, out)).toBe(6);
    expect([...out]).toEqual([5, 6, 7, 8, 9, 10]);
    const part = new Uint8Array(4).fill(99);
    expect(ring.copyOut(0, 4, part)).toBe(2); // 0 and 1 were evicted
    expect([...part]).toEqual([3, 4, 99, 99]);
  });
});
