import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../../media-node/providers/ws-socket';
import { ProviderError } from '../../../shared/contracts/errors';
import type { SttEvent, SttSession } from '../../../shared/contracts/stt';
import { createBackoff } from '../../../shared/providers/streaming/connect-retry';
import type { SocketProviderDeps } from '../../../shared/providers/streaming/deps';
import { createReplayRing } from '../../../shared/providers/streaming/replay-ring';
import { createSocketStt } from '../../../shared/providers/streaming/stt-socket';
import type { SocketSttSession } from '../../../shared/providers/streaming/stt-socket';
import type { SocketFactory, SocketHandlers } from '../../../shared/providers/streaming/socket';
import type { SttWire } from '../../../shared/providers/streaming/stt-wire';
import type { FakeProviderServer } from '../conformance/fake-server';
import { silence, speak, waitFor } from '../conformance/stt-suite';
import { splitWords } from '../../fakes/tones';
import { startReferenceFake } from '../fakes/reference';
import type { ReferenceFakeOptions } from '../fakes/reference';
import { binaryBytes, delay, recordingMetrics, textFrames } from './helpers';
import { referenceSttWire } from './reference-wire';
import type { ReferenceSttVariant } from './reference-wire';

const connect = createWsSocketFactory();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface Setup {
  fake?: ReferenceFakeOptions;
  wire?: ReferenceSttVariant | SttWire;
  deps?: Partial<SocketProviderDeps>;
}

async function setup(options: Setup = {}) {
  const fake: FakeProviderServer = await startReferenceFake(options.fake);
  cleanups.push(() => fake.close());
  const metrics = recordingMetrics();
  const wire = options.wire && 'decode' in options.wire ? options.wire : referenceSttWire(options.wire);
  const stt = createSocketStt(wire, { connect, retry: { attempts: 3, baseDelayMs: 10 }, metrics: metrics.sink, ...options.deps });
  const events: SttEvent[] = [];
  const abort = new AbortController();
  const open = async (apiKey: string = fake.apiKey): Promise<SocketSttSession> => {
    const session = (await stt.open({ language: 'en', options: {}, endpoint: fake.endpoint, apiKey, signal: abort.signal }, (e) => events.push(e))) as SocketSttSession;
    cleanups.push(() => session.close());
    return session;
  };
  return {
    fake,
    stt,
    events,
    abort,
    metrics: metrics.calls,
    open,
    errors: () => events.filter((e) => e.type === 'error'),
    finalWords: () => events.flatMap((e) => (e.type === 'final' ? splitWords(e.text) : [])),
  };
}

async function utter(session: SttSession, words: string[], finalWords: () => string[]): Promise<void> {
  const before = finalWords().length;
  await speak(session, words);
  await silence(session, 600);
  await waitFor(() => finalWords().length >= before + words.length, `final "${words.join(' ')}"`);
}

describe('retry budget and back-off', () => {
  it('doubles from the base with jitter, and stops after the attempts', () => {
    const backoff = createBackoff({ attempts: 3, baseDelayMs: 100 }, () => 0.5);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 200, 400, undefined]);
    backoff.reset();
    expect(backoff.next()).toBe(100);
    const low = createBackoff({ attempts: 1, baseDelayMs: 100 }, () => 0);
    const high = createBackoff({ attempts: 1, baseDelayMs: 100 }, () => 0.999);
    expect(low.next()).toBe(75);
    expect(high.next()).toBe(125);
  });

  it('retries refused handshakes: 1 + attempts connections, then the last error', async () => {
    const h = await setup({ deps: { retry: { attempts: 3, baseDelayMs: 40 } } });
    h.fake.control.refuseNext(503, 10);
    const started = Date.now();
    const error = await h.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ retryable: true, kind: 'unavailable' });
    expect(h.fake.connections).toHaveLength(4);
    // 40 + 80 + 160 ms at −25 % jitter at least.
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(h.metrics.errors).toEqual(['unavailable', 'unavailable', 'unavailable', 'unavailable']);
  });

  it('a non-retryable handshake failure is not retried', async () => {
    const h = await setup();
    const error = await h.open('bad-key').catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: false, kind: 'auth', code: 'REFERENCE_AUTH' });
    expect(h.fake.connections).toHaveLength(1);
  });

  it('times out a handshake that never completes', async () => {
    const sockets = new Set<Duplex>();
    const http = createServer();
    http.on('upgrade', (_req, socket: Duplex) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    });
    const stt = createSocketStt(referenceSttWire(), { connect, connectTimeoutMs: 100, retry: { attempts: 1, baseDelayMs: 10 } });
    const started = Date.now();
    const error = await stt
      .open({ language: 'en', options: {}, endpoint: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, apiKey: 'k', signal: new AbortController().signal }, () => {})
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true, kind: 'timeout' });
    expect(sockets.size).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('the budget resets once a connection produced a result', async () => {
    const h = await setup({ deps: { retry: { attempts: 1, baseDelayMs: 10 } } });
    const session = await h.open();
    for (const word of ['hello', 'okay', 'sure']) {
      await utter(session, [word], h.finalWords);
      h.fake.control.drop();
      await waitFor(() => session.stats.connections === h.fake.connections.length && h.fake.connections.at(-1)!.closeCode === undefined, 'the reconnect');
    }
    await utter(session, ['thanks'], h.finalWords);
    expect(h.finalWords()).toEqual(['hello', 'okay', 'sure', 'thanks']);
    expect(h.fake.connections).toHaveLength(4);
    expect(h.errors()).toEqual([]);
    expect(h.metrics.reconnected).toEqual(['REFERENCE_CLOSED', 'REFERENCE_CLOSED', 'REFERENCE_CLOSED']);
  });

  it('when reconnecting fails past the budget: one error event, then silence', async () => {
    const h = await setup({ deps: { retry: { attempts: 2, baseDelayMs: 10 } } });
    await h.open();
    h.fake.control.refuseNext(503, 10);
    h.fake.control.drop();
    await waitFor(() => h.errors().length > 0, 'the error event');
    await delay(200);
    expect(h.errors()).toHaveLength(1);
    expect(h.errors()[0]).toMatchObject({ error: { retryable: true, kind: 'unavailable' } });
    // The first connection plus two refused reconnects: the drop used one unit, the refusal the other.
    expect(h.fake.connections).toHaveLength(3);
  });
});

describe('replay ring', () => {
  it('keeps the newest bytes, counts what it evicts, and wraps in order', () => {
    const ring = createReplayRing(10);
    ring.append(Uint8Array.from([1, 2, 3, 4, 5, 6]));
    ring.append(Uint8Array.from([7, 8, 9, 10, 11, 12]));
    const out: number[] = [];
    ring.forEach(3, (chunk) => out.push(...chunk));
    expect(out).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(ring.droppedBytes).toBe(2);
    ring.dropUntil(9);
    const rest: number[] = [];
    ring.forEach(100, (chunk) => rest.push(...chunk));
    expect(rest).toEqual([10, 11, 12]);
    ring.append(new Uint8Array(25).map((_, i) => i));
    const big: number[] = [];
    ring.forEach(4, (chunk) => big.push(...chunk));
    expect(big).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
  });

  it('replays at most replayMs of unanswered audio into the new connection', async () => {
    const h = await setup({ deps: { replayMs: 1000 } });
    const session = await h.open();
    await silence(session, 3000);
    await waitFor(() => binaryBytes(h.fake.connections[0]!.received) === 3000 * 32, 'the audio to arrive');
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2 && binaryBytes(h.fake.connections[1]!.received) >= 1000 * 32, 'the replay');
    await delay(100);
    expect(binaryBytes(h.fake.connections[1]!.received)).toBe(1000 * 32);
    expect(session.stats.droppedReplayMs).toBe(2000);
    expect(session.stats.reconnects).toBe(1);
  });

  it('a final that says where it ends frees the ring up to there', async () => {
    const ends: number[] = [];
    const base = referenceSttWire();
    const wire: SttWire = {
      ...base,
      decode(data) {
        const events = base.decode(data);
        for (const e of events) if (e.type === 'final' && e.audioEndMs !== undefined) ends.push(e.audioEndMs);
        return events;
      },
    };
    const h = await setup({ wire });
    const session = await h.open();
    await speak(session, ['hello']);
    await silence(session, 700);
    await waitFor(() => ends.length === 1, 'the final');
    await delay(100);
    const sent = binaryBytes(h.fake.connections[0]!.received);
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    await delay(150);
    expect(binaryBytes(h.fake.connections[1]!.received)).toBe(sent - ends[0]! * 32);
    expect(h.finalWords()).toEqual(['hello']);
  });

  it('without the end of a final, the last second stays for replay', async () => {
    const h = await setup({ wire: { audioEnd: false } });
    const session = await h.open();
    await speak(session, ['hello']);
    await silence(session, 1500);
    await waitFor(() => h.finalWords().length === 1, 'the final');
    await delay(100);
    h.fake.control.drop();
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    await delay(150);
    // The final came ~300 ms into the silence; the ring then kept 1000 ms and gathered the rest of the silence.
    const replayedMs = binaryBytes(h.fake.connections[1]!.received) / 32;
    expect(replayedMs).toBeGreaterThanOrEqual(1000);
    expect(replayedMs).toBeLessThan(2300);
    // The margin trades a possible repeat of the final's last words for never losing unanswered audio.
    expect(h.finalWords()[0]).toBe('hello');
  });

  it('audio written while reconnecting is replayed before new audio', async () => {
    const h = await setup({ deps: { retry: { attempts: 3, baseDelayMs: 150 } } });
    const session = await h.open();
    h.fake.control.drop();
    await delay(30);
    // The socket is down for ~150 ms: these words exist only in the ring meanwhile.
    await speak(session, ['what', 'is', 'the', 'weather']);
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 4, 'the final');
    expect(h.finalWords()).toEqual(['what', 'is', 'the', 'weather']);
    expect(h.fake.connections).toHaveLength(2);
  });
});

describe('keep-alive, finalize, close', () => {
  it('sends keep-alives only while no audio flows (loose timing)', async () => {
    const h = await setup({ wire: { keepAliveMs: 100 } });
    const session = await h.open();
    await delay(550);
    const idle = textFrames(h.fake.connections[0]!.received, 'keepalive');
    expect(idle).toBeGreaterThanOrEqual(3);
    expect(idle).toBeLessThanOrEqual(6);
    const timer = setInterval(() => session.write({ format: { encoding: 'pcm16', sampleRateHz: 16000 }, data: new Uint8Array(640) }), 20);
    await delay(500);
    clearInterval(timer);
    expect(textFrames(h.fake.connections[0]!.received, 'keepalive')).toBeLessThanOrEqual(idle + 1);
    await session.close();
    const after = textFrames(h.fake.connections[0]!.received, 'keepalive');
    await delay(300);
    expect(textFrames(h.fake.connections[0]!.received, 'keepalive')).toBe(after);
  });

  it('finalize sends the flush; while reconnecting it is sent after the replay', async () => {
    const h = await setup({ deps: { retry: { attempts: 3, baseDelayMs: 100 } } });
    const session = await h.open();
    await speak(session, ['stop']);
    session.finalize();
    await waitFor(() => h.finalWords().length === 1, 'the final');
    expect(textFrames(h.fake.connections[0]!.received, 'finalize')).toBe(1);
    h.fake.control.drop();
    await delay(20);
    await speak(session, ['wait']);
    session.finalize();
    await waitFor(() => h.finalWords().length === 2, 'the final after the reconnect');
    expect(h.finalWords()).toEqual(['stop', 'wait']);
    const second = h.fake.connections[1]!.received;
    expect(typeof second.at(-1) === 'string' && String(second.at(-1)).includes('finalize')).toBe(true);
  });

  it('close sends the close message, waits for the server, delivers the last final, then nothing', async () => {
    const h = await setup();
    const session = await h.open();
    await speak(session, ['goodbye']);
    const closing = session.close();
    expect(session.close()).toBe(closing);
    await closing;
    // The fake finalises what it heard on close: that final still counts, nothing after it.
    expect(h.finalWords()).toEqual(['goodbye']);
    const count = h.events.length;
    session.write({ format: { encoding: 'pcm16', sampleRateHz: 16000 }, data: new Uint8Array(640) });
    session.finalize();
    h.fake.control.sendRaw!('{"type":"final","text":"late"}');
    await delay(100);
    expect(h.events).toHaveLength(count);
    expect(textFrames(h.fake.connections[0]!.received, 'close')).toBe(1);
    expect(h.fake.connections[0]!.closeCode).toBe(1000);
  });

  it('close without an answer gives up after ~2 s and closes the socket', async () => {
    const base = referenceSttWire();
    const h = await setup({ wire: { ...base, closeMessage: () => '{"type":"keepalive"}' } });
    const session = await h.open();
    const started = Date.now();
    await session.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close', 2000);
    expect(h.fake.connections[0]!.closeCode).toBe(1000);
  }, 10_000);

  it('close while reconnecting ends at once, without an error event', async () => {
    const h = await setup({ deps: { retry: { attempts: 3, baseDelayMs: 500 } } });
    const session = await h.open();
    h.fake.control.drop();
    await delay(50);
    const started = Date.now();
    await session.close();
    expect(Date.now() - started).toBeLessThan(100);
    await delay(700);
    expect(h.fake.connections).toHaveLength(1);
    expect(h.errors()).toEqual([]);
  });

  it('aborting the session signal closes it', async () => {
    const h = await setup();
    await h.open();
    h.abort.abort();
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close', 3000);
    expect(h.fake.connections[0]!.closeCode).toBe(1000);
    expect(h.errors()).toEqual([]);
  });
});

describe('server messages and closes', () => {
  it('malformed messages are counted and ignored, whether decode throws or reports them', async () => {
    for (const throwOnMalformed of [true, false]) {
      const h = await setup({ wire: { throwOnMalformed } });
      const session = await h.open();
      h.fake.control.sendRaw!('{"type":');
      h.fake.control.sendRaw!(new Uint8Array([1, 2, 3]));
      h.fake.control.sendRaw!('{"type":"final"}');
      await delay(100);
      expect(session.stats.malformedMessages).toBe(3);
      expect(h.metrics.errors).toEqual(['protocol', 'protocol', 'protocol']);
      await utter(session, ['sure'], h.finalWords);
      expect(h.errors()).toEqual([]);
    }
  });

  it('a non-retryable error frame: one error event, the socket is closed, nothing follows', async () => {
    const h = await setup();
    const session = await h.open();
    h.fake.control.sendRaw!('{"type":"error","kind":"bad-request","message":"unsupported model"}');
    await waitFor(() => h.errors().length === 1, 'the error event');
    expect(h.errors()[0]).toMatchObject({ error: { code: 'REFERENCE_BAD_REQUEST', retryable: false } });
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close');
    await speak(session, ['hello']);
    await delay(100);
    expect(h.events).toHaveLength(1);
    expect(h.fake.connections).toHaveLength(1);
  });

  it('a retryable error frame reconnects', async () => {
    const h = await setup();
    const session = await h.open();
    h.fake.control.sendRaw!('{"type":"error","kind":"internal","message":"try again"}');
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    await utter(session, ['yeah'], h.finalWords);
    expect(h.errors()).toEqual([]);
  });

  it('late messages of a dropped connection: no second reconnect, no final from it, no words lost', async () => {
    // The factory keeps each connection's handlers, to deliver messages the old socket had in flight after the drop.
    const handlers: SocketHandlers[] = [];
    const recording: SocketFactory = (request, h) => {
      handlers.push(h);
      return connect(request, h);
    };
    const h = await setup({ deps: { connect: recording, retry: { attempts: 3, baseDelayMs: 300 } } });
    const session = await h.open();
    await speak(session, ['hello', 'there', 'tell', 'me', 'a', 'joke']);
    const old = handlers[0]!;
    old.onMessage('{"type":"error","kind":"internal","message":"try again"}');
    expect(session.stats.reconnects).toBe(1);
    // Still reconnecting (≥ 225 ms back-off): the old socket's late error and a late final without its end.
    old.onMessage('{"type":"error","kind":"internal","message":"try again"}');
    old.onMessage('{"type":"final","text":"ghost"}');
    expect(session.stats.reconnects).toBe(1);
    await waitFor(() => h.fake.connections.length === 2, 'the reconnect');
    await silence(session, 600);
    await waitFor(() => h.finalWords().length >= 6, 'the replayed words');
    await delay(200);
    expect(h.finalWords()).toEqual(['hello', 'there', 'tell', 'me', 'a', 'joke']);
    expect(h.fake.connections).toHaveLength(2);
    expect(session.stats.reconnects).toBe(1);
    expect(h.metrics.reconnected).toEqual(['REFERENCE_INTERNAL']);
    expect(h.errors()).toEqual([]);
  });

  it('an accepted socket that reports a bad key: one auth error, no retry', async () => {
    const h = await setup({ fake: { authMode: 'frame' } });
    await h.open('bad-key');
    await waitFor(() => h.errors().length === 1, 'the error event');
    await delay(200);
    expect(h.errors()[0]).toMatchObject({ error: { kind: 'auth', retryable: false } });
    expect(h.fake.connections).toHaveLength(1);
  });

  it('a close the wire calls normal ends the session quietly', async () => {
    const h = await setup();
    const session = await h.open();
    h.fake.control.drop({ code: 1000, reason: 'bye' });
    await delay(150);
    await speak(session, ['hello']);
    await delay(100);
    expect(h.events).toEqual([]);
    expect(h.fake.connections).toHaveLength(1);
  });

  it('a non-retryable close code is an error event', async () => {
    const h = await setup();
    await h.open();
    h.fake.control.drop({ code: 4001, reason: 'key revoked' });
    await waitFor(() => h.errors().length === 1, 'the error event');
    expect(h.errors()[0]).toMatchObject({ error: { kind: 'auth', retryable: false } });
    await delay(100);
    expect(h.fake.connections).toHaveLength(1);
  });

  it('records connect time, first results and reconnects', async () => {
    const h = await setup();
    const session = await h.open();
    await utter(session, ['hello', 'there'], h.finalWords);
    await utter(session, ['okay'], h.finalWords);
    expect(h.metrics.connected).toHaveLength(1);
    expect(h.metrics.firstResult.map((r) => r.kind)).toEqual(['interim', 'final']);
    expect(h.metrics.firstResult.every((r) => r.ms >= 0 && r.ms < 5000)).toBe(true);
  });

  it('a missing key fails before connecting, naming the provider', async () => {
    const h = await setup();
    const error = await h.stt.open({ language: 'en', options: {}, endpoint: h.fake.endpoint, signal: new AbortController().signal }, () => {}).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect((error as Error).message).toContain('reference');
    expect(h.fake.connections).toHaveLength(0);
  });

  it('an engine handler that throws does not break the session', async () => {
    const fake = await startReferenceFake();
    cleanups.push(() => fake.close());
    const metrics = recordingMetrics();
    const stt = createSocketStt(referenceSttWire(), { connect, metrics: metrics.sink });
    const finals: string[] = [];
    const session = await stt.open({ language: 'en', options: {}, endpoint: fake.endpoint, apiKey: fake.apiKey, signal: new AbortController().signal }, (e) => {
      if (e.type === 'interim') throw new Error('engine bug');
      if (e.type === 'final') finals.push(e.text);
    });
    cleanups.push(() => session.close());
    await speak(session, ['hello', 'there']);
    await silence(session, 600);
    await waitFor(() => finals.length === 1, 'the final');
    expect(finals).toEqual(['hello there']);
    expect(metrics.calls.errors).toContain('internal');
  });
});
