import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../../media-node/providers/ws-socket';
import { PIPELINE_FORMAT } from '../../../shared/audio/format';
import { ProviderError } from '../../../shared/contracts/errors';
import type { TtsEvent, TtsStream, TtsStreamOptions } from '../../../shared/contracts/tts';
import type { SocketProviderDeps } from '../../../shared/providers/streaming/deps';
import type { ProviderSocket, SocketFactory, SocketHandlers } from '../../../shared/providers/streaming/socket';
import { createSocketTts } from '../../../shared/providers/streaming/tts-socket';
import type { TtsWire } from '../../../shared/providers/streaming/tts-wire';
import type { FakeProviderServer } from '../conformance/fake-server';
import { heardWords } from '../conformance/tts-suite';
import { waitFor } from '../conformance/stt-suite';
import { startReferenceFake } from '../fakes/reference';
import type { ReferenceFakeOptions } from '../fakes/reference';
import { delay, recordingMetrics, textFrames } from './helpers';
import { referenceTtsWire } from './reference-wire';
import type { ReferenceTtsVariant } from './reference-wire';

const connect = createWsSocketFactory();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface Spoken {
  readonly stream: TtsStream;
  readonly events: TtsEvent[];
  readonly abort: AbortController;
  finished(): boolean;
  errors(): ProviderError[];
}

async function setup(options: { fake?: ReferenceFakeOptions; wire?: ReferenceTtsVariant | TtsWire; deps?: Partial<SocketProviderDeps> } = {}) {
  const fake: FakeProviderServer = await startReferenceFake(options.fake);
  cleanups.push(() => fake.close());
  const metrics = recordingMetrics();
  const wire = options.wire && 'decode' in options.wire ? options.wire : referenceTtsWire(options.wire);
  const tts = createSocketTts(wire, { connect, retry: { attempts: 3, baseDelayMs: 10 }, metrics: metrics.sink, ...options.deps });
  cleanups.push(() => tts.close());
  const base = (apiKey: string = fake.apiKey): Omit<TtsStreamOptions, 'signal'> => ({ language: 'en', format: PIPELINE_FORMAT, endpoint: fake.endpoint, apiKey, options: {} });
  const speak = (pieces: readonly string[], o: { end?: boolean; apiKey?: string; onEvent?: (e: TtsEvent) => void } = {}): Spoken => {
    const events: TtsEvent[] = [];
    const abort = new AbortController();
    const stream = tts.stream({ ...base(o.apiKey), signal: abort.signal }, (e) => {
      events.push(e);
      o.onEvent?.(e);
    });
    for (const piece of pieces) stream.push(piece);
    if (o.end ?? true) stream.end();
    return {
      stream,
      events,
      abort,
      finished: () => events.some((e) => e.type === 'done' || e.type === 'error'),
      errors: () => events.flatMap((e) => (e.type === 'error' ? [e.error] : [])),
    };
  };
  const words = (s: Spoken) =>
    heardWords(
      s.events.flatMap((e) => (e.type === 'audio' ? [e.data] : [])),
      PIPELINE_FORMAT,
    );
  return { fake, tts, metrics: metrics.calls, base, speak, words };
}

describe('socket pool', () => {
  it('concurrent utterances: one socket each when not multiplexed, one shared socket when multiplexed', async () => {
    for (const multiplexed of [false, true]) {
      const h = await setup({ wire: { multiplexed } });
      const a = h.speak(['hello there. ']);
      const b = h.speak(['tell me a joke. ']);
      await waitFor(() => a.finished() && b.finished(), 'both utterances');
      expect(h.words(a)).toEqual(['hello', 'there']);
      expect(h.words(b)).toEqual(['tell', 'me', 'a', 'joke']);
      expect(h.fake.connections).toHaveLength(multiplexed ? 1 : 2);
      // Both sockets are idle now: the next two reuse them.
      const c = h.speak(['okay. ']);
      const d = h.speak(['sure. ']);
      await waitFor(() => c.finished() && d.finished(), 'the next two');
      expect(h.fake.connections).toHaveLength(multiplexed ? 1 : 2);
    }
  });

  it('pieces pushed while connecting go out in order once the socket opens', async () => {
    const h = await setup();
    const s = h.speak(['hello. ', 'what is it. ', 'goodbye. ']);
    await waitFor(s.finished, 'the utterance');
    const received = h.fake.connections[0]!.received.filter((f): f is string => typeof f === 'string').map((f) => JSON.parse(f) as { type: string; index?: number });
    expect(received.map((m) => (m.type === 'text' ? `text${m.index}` : m.type))).toEqual(['begin', 'text0', 'text1', 'text2', 'end']);
    expect(h.words(s)).toEqual(['hello', 'what', 'is', 'it', 'goodbye']);
  });

  it('bounds the pieces queued before the socket is ready', async () => {
    const h = await setup();
    const s = h.speak(Array.from({ length: 65 }, () => 'okay. '), { end: false });
    expect(s.events).toHaveLength(1);
    expect(s.errors()[0]).toMatchObject({ code: 'REFERENCE_BACKLOG', retryable: true });
    await delay(200);
    expect(s.events).toHaveLength(1);
  });

  it('closes idle sockets after idleMs; the next utterance connects again', async () => {
    const h = await setup({ deps: { idleMs: 300 } });
    await waitFor(h.speak(['hello. ']).finished, 'the utterance');
    const record = h.fake.connections[0]!;
    await delay(150);
    expect(record.closeCode).toBeUndefined();
    await waitFor(() => record.closeCode !== undefined, 'the idle close', 2000);
    expect(record.closeCode).toBe(1000);
    const next = h.speak(['okay. ']);
    await waitFor(next.finished, 'the next utterance');
    expect(next.errors()).toEqual([]);
    expect(h.fake.connections).toHaveLength(2);
  });

  it('keeps idle sockets alive, and only idle ones', async () => {
    const h = await setup({ wire: { keepAliveMs: 50 } });
    await h.tts.prewarm(h.base());
    await delay(330);
    const idle = textFrames(h.fake.connections[0]!.received, 'keepalive');
    expect(idle).toBeGreaterThanOrEqual(3);
    expect(idle).toBeLessThanOrEqual(8);
    const s = h.speak(['once upon a time there was a dragon. '], { end: false });
    await delay(300);
    expect(textFrames(h.fake.connections[0]!.received, 'keepalive')).toBe(idle);
    s.stream.end();
    await waitFor(s.finished, 'the utterance');
  });

  it('an idle socket the server drops just leaves the pool', async () => {
    const h = await setup();
    await h.tts.prewarm(h.base());
    h.fake.control.drop();
    await delay(100);
    const s = h.speak(['hello. ']);
    await waitFor(s.finished, 'the utterance');
    expect(s.errors()).toEqual([]);
    expect(h.fake.connections).toHaveLength(2);
    expect(h.metrics.errors).toEqual([]);
  });

  it('prewarm rejects with the ProviderError of a refused key', async () => {
    const h = await setup();
    const error = await h.tts.prewarm(h.base('bad-key')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect(h.fake.connections).toHaveLength(1);
  });
});

describe('cancel', () => {
  it('before the socket is ready: nothing of the utterance is sent, the socket serves the next one', async () => {
    const h = await setup();
    const s = h.speak(['hello there. ']);
    s.stream.cancel();
    const next = h.speak(['okay. ']);
    await waitFor(next.finished, 'the next utterance');
    expect(s.events).toEqual([]);
    expect(h.words(next)).toEqual(['okay']);
    expect(h.fake.connections).toHaveLength(1);
    expect(textFrames(h.fake.connections[0]!.received, 'begin')).toBe(1);
  });

  it('the abort signal cancels: no event after it', async () => {
    const h = await setup();
    let count = -1;
    const s = h.speak(['once upon a time there was a dragon. '], {
      onEvent: (e) => {
        if (e.type === 'audio' && count === -1) {
          s.abort.abort();
          count = s.events.length;
        }
      },
    });
    await waitFor(() => count >= 0, 'the first audio');
    await delay(300);
    expect(s.events).toHaveLength(count);
    expect(textFrames(h.fake.connections[0]!.received, 'cancel')).toBe(1);
  });

  it('without an acknowledgement the socket is closed after ~2 s, and not reused meanwhile', async () => {
    const base = referenceTtsWire();
    // A vendor that ignores the cancel: keeps speaking, never acknowledges.
    const wire: TtsWire = {
      ...base,
      utterance(contextId, options) {
        const u = base.utterance(contextId, options);
        return { ...u, cancel: () => ['{"type":"keepalive"}'] };
      },
    };
    const h = await setup({ wire });
    let cancelledAt = -1;
    // No end(): no `done` will stand in for the missing acknowledgement.
    const s = h.speak(['once upon a time there was a dragon. '], {
      end: false,
      onEvent: (e) => {
        if (e.type === 'audio' && cancelledAt === -1) {
          s.stream.cancel();
          cancelledAt = s.events.length;
        }
      },
    });
    await waitFor(() => cancelledAt >= 0, 'the first audio');
    const cancelledTime = Date.now();
    const next = h.speak(['okay. ']);
    await waitFor(next.finished, 'the next utterance');
    expect(h.words(next)).toEqual(['okay']);
    expect(h.fake.connections).toHaveLength(2);
    const first = h.fake.connections[0]!;
    await delay(Math.max(0, cancelledTime + 1500 - Date.now()));
    expect(first.closeCode).toBeUndefined();
    await waitFor(() => first.closeCode !== undefined, 'the close', 1500);
    expect(s.events).toHaveLength(cancelledAt);
  }, 10_000);

  it("'close-socket' cancels close the socket; the next utterance opens another", async () => {
    const h = await setup({ wire: { cancel: 'close-socket' } });
    let cancelled = false;
    const s = h.speak(['once upon a time there was a dragon. '], {
      onEvent: (e) => {
        if (e.type === 'audio' && !cancelled) {
          cancelled = true;
          s.stream.cancel();
        }
      },
    });
    await waitFor(() => cancelled, 'the first audio');
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close');
    expect(h.fake.connections[0]!.closeCode).toBe(1000);
    expect(s.events.filter((e) => e.type !== 'audio' && e.type !== 'words')).toEqual([]);
    const next = h.speak(['okay. ']);
    await waitFor(next.finished, 'the next utterance');
    expect(h.words(next)).toEqual(['okay']);
  });
});

describe('errors', () => {
  it('a connect that fails past the retries: one error event for each waiting utterance', async () => {
    const h = await setup({ wire: { multiplexed: true }, deps: { retry: { attempts: 2, baseDelayMs: 10 } } });
    h.fake.control.refuseNext(503, 10);
    const a = h.speak(['hello. ']);
    const b = h.speak(['okay. ']);
    await waitFor(() => a.finished() && b.finished(), 'the errors');
    await delay(100);
    for (const s of [a, b]) {
      expect(s.events).toHaveLength(1);
      expect(s.errors()[0]).toMatchObject({ retryable: true, kind: 'unavailable' });
    }
    expect(h.fake.connections).toHaveLength(3);
  });

  it('a drop mid-utterance: an error event for it, nothing after', async () => {
    const h = await setup();
    let dropped = false;
    const s = h.speak(['once upon a time there was a dragon. '], {
      onEvent: (e) => {
        if (e.type === 'audio' && !dropped) {
          dropped = true;
          h.fake.control.drop();
        }
      },
    });
    await waitFor(s.finished, 'the error');
    const error = s.errors()[0];
    expect(error).toMatchObject({ code: 'REFERENCE_CLOSED', retryable: true });
    const count = s.events.length;
    await delay(150);
    expect(s.events).toHaveLength(count);
  });

  it('a vendor that goes silent mid-utterance: a stalled error within ttsStallMs, the socket closed, nothing after', async () => {
    const reference = referenceTtsWire();
    let silent = false;
    // The socket stays open, but after the first audio nothing (audio, pieceDone, done) reaches the base any more.
    const wire: TtsWire = {
      ...reference,
      decode(data) {
        if (silent) return [];
        const events = reference.decode(data);
        if (events.some((e) => e.type === 'audio')) silent = true;
        return events;
      },
    };
    const h = await setup({ wire, deps: { ttsStallMs: 300 } });
    const s = h.speak(['once upon a time there was a dragon. ']);
    await waitFor(() => silent, 'the first audio');
    const started = Date.now();
    await waitFor(s.finished, 'the stalled error', 2000);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(s.errors()).toHaveLength(1);
    expect(s.errors()[0]).toMatchObject({ code: 'REFERENCE_STALLED', retryable: true, kind: 'timeout' });
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the socket close');
    const count = s.events.length;
    await delay(400);
    expect(s.events).toHaveLength(count);
  });

  it('an error frame for the utterance ends it; a non-multiplexed socket is not reused', async () => {
    const h = await setup();
    const s = h.speak(['hello. '], { end: false });
    await waitFor(() => s.events.length > 0, 'audio');
    h.fake.control.sendRaw!('{"type":"error","kind":"bad-request","message":"voice not found"}');
    await waitFor(s.finished, 'the error');
    expect(s.errors()[0]).toMatchObject({ code: 'REFERENCE_BAD_REQUEST', retryable: false });
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close');
    const next = h.speak(['okay. ']);
    await waitFor(next.finished, 'the next');
    expect(h.fake.connections).toHaveLength(2);
  });

  it('decode throwing or reporting a malformed message is ignored', async () => {
    const base = referenceTtsWire();
    const wire: TtsWire = {
      ...base,
      decode(data) {
        if (typeof data === 'string' && data.includes('boom')) throw new Error('decoder bug');
        return base.decode(data);
      },
    };
    const h = await setup({ wire });
    const s = h.speak(['hello there. '], {
      onEvent: (e) => {
        if (e.type === 'words') {
          h.fake.control.sendRaw!('{"boom":1}');
          h.fake.control.sendRaw!('not json');
        }
      },
    });
    await waitFor(s.finished, 'the utterance');
    expect(s.errors()).toEqual([]);
    expect(h.words(s)).toEqual(['hello', 'there']);
    expect(h.metrics.errors.filter((k) => k === 'protocol')).toHaveLength(2);
  });

  it('close() ends utterances still speaking with an error and closes every socket', async () => {
    const h = await setup();
    const s = h.speak(['once upon a time there was a dragon. '], { end: false });
    await waitFor(() => s.events.length > 0, 'audio');
    await h.tts.close();
    expect(s.errors()[0]).toMatchObject({ code: 'REFERENCE_CLOSED', retryable: false });
    await waitFor(() => h.fake.connections[0]!.closeCode !== undefined, 'the close');
    expect(h.fake.connections[0]!.closeCode).toBe(1000);
  });
});

describe('events', () => {
  it('audio handed to the engine is its own copy, not a view of the socket message', async () => {
    const buffer = new Uint8Array(8);
    let handlers: SocketHandlers | undefined;
    const memory: SocketFactory = async (_request, h) => {
      handlers = h;
      const socket: ProviderSocket = { send() {}, bufferedAmount: 0, open: true, close() {} };
      return socket;
    };
    const tts = createSocketTts(referenceTtsWire(), { connect: memory });
    const events: TtsEvent[] = [];
    tts.stream({ language: 'en', format: PIPELINE_FORMAT, apiKey: 'k', options: {}, signal: new AbortController().signal }, (e) => events.push(e)).push('hello. ');
    await waitFor(() => handlers !== undefined, 'the connect');
    await delay(10);
    buffer.set([1, 2, 3, 4, 5, 6, 7, 8]);
    handlers!.onMessage(buffer.subarray(2, 6));
    buffer.fill(0);
    expect(events).toHaveLength(1);
    const audio = events[0] as Extract<TtsEvent, { type: 'audio' }>;
    expect([...audio.data]).toEqual([3, 4, 5, 6]);
    expect(audio.textIndex).toBe(0);
    await tts.close();
  });

  it('textIndex counts piece boundaries when the vendor does not name the piece', async () => {
    const h = await setup();
    const s = h.speak(['hello. ', 'okay. ', 'goodbye. ']);
    await waitFor(s.finished, 'the utterance');
    const indexes = [...new Set(s.events.flatMap((e) => (e.type === 'audio' ? [e.textIndex] : [])))];
    expect(indexes).toEqual([0, 1, 2]);
  });

  it('records connect time and time to first audio', async () => {
    const h = await setup();
    await waitFor(h.speak(['hello. ']).finished, 'the utterance');
    await waitFor(h.speak(['okay. ']).finished, 'the second utterance');
    expect(h.metrics.connected).toHaveLength(1);
    expect(h.metrics.firstResult.map((r) => r.kind)).toEqual(['audio', 'audio']);
  });

  it('an engine handler that throws does not break the socket', async () => {
    const h = await setup();
    const s = h.speak(['hello there. '], {
      onEvent: (e) => {
        if (e.type === 'words') throw new Error('engine bug');
      },
    });
    await waitFor(s.finished, 'the utterance');
    expect(h.words(s)).toEqual(['hello', 'there']);
    expect(h.metrics.errors).toContain('internal');
  });
});
