import { describe, expect, it } from 'vitest';
import { PIPELINE_FORMAT } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttEvent, SttSessionOptions } from '../../shared/contracts/stt';
import { createAssemblyAiStt } from '../../shared/providers/assemblyai';
import {
  assemblyAiError,
  assemblyAiSttWire,
  classifyAssemblyAiClose,
  classifyAssemblyAiHandshake,
  createAssemblyAiSttWire,
  decodeAssemblyAi,
} from '../../shared/providers/assemblyai/stt-wire';
import type { ProviderSocket, SocketFactory, SocketHandlers } from '../../shared/providers/streaming/socket';

const signal = new AbortController().signal;
const stt = (over: Partial<SttSessionOptions> = {}): SttSessionOptions => ({ language: 'en-US', apiKey: 'aai-key-1', options: {}, signal, ...over });
const formattedWire = createAssemblyAiSttWire({ formatTurns: true });
const BYTES_PER_MS = 32;

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('assemblyai STT wire: connect', () => {
  it('asks /v3/ws for pcm_s16le 16 kHz, the English model and unformatted turns, with the raw key as Authorization', () => {
    const { url, headers } = assemblyAiSttWire.connect(stt());
    const parsed = new URL(url);
    expect(`${parsed.protocol}//${parsed.host}${parsed.pathname}`).toBe('wss://streaming.assemblyai.com/v3/ws');
    expect(Object.fromEntries(parsed.searchParams)).toEqual({ sample_rate: '16000', encoding: 'pcm_s16le', speech_model: 'universal-streaming-english', format_turns: 'false' });
    expect(headers).toEqual({ Authorization: 'aai-key-1' });
    expect(url).not.toContain('aai-key-1');
  });

  it('the formatted wire asks for format_turns=true whatever the options say; the model follows the block, else the language', () => {
    expect(new URL(formattedWire.connect(stt()).url).searchParams.get('format_turns')).toBe('true');
    const model = (over: Partial<SttSessionOptions>) => new URL(assemblyAiSttWire.connect(stt(over)).url).searchParams.get('speech_model');
    expect(model({ model: 'u3-rt-pro' })).toBe('u3-rt-pro');
    expect(model({ language: 'es-ES' })).toBe('universal-streaming-multilingual');
    expect(model({ language: 'en' })).toBe('universal-streaming-english');
    expect(model({ language: '' })).toBe('universal-streaming-english');
  });

  it('maps the options onto the documented query parameters; region eu and an endpoint (scheme+host+port) pick the host', () => {
    const { url } = assemblyAiSttWire.connect(
      stt({
        options: {
          endOfTurnConfidenceThreshold: 0.6,
          minTurnSilenceMs: 300,
          maxTurnSilenceMs: 2000,
          vadThreshold: 0.5,
          keyterms: ['Acme', 'Zed Corp'],
          prompt: 'a support call',
          filterProfanity: true,
          inactivityTimeoutS: 30,
        },
      }),
    );
    const q = new URL(url).searchParams;
    expect(q.get('end_of_turn_confidence_threshold')).toBe('0.6');
    expect(q.get('min_turn_silence')).toBe('300');
    expect(q.get('max_turn_silence')).toBe('2000');
    expect(q.get('vad_threshold')).toBe('0.5');
    expect(JSON.parse(q.get('keyterms_prompt')!)).toEqual(['Acme', 'Zed Corp']);
    expect(q.get('prompt')).toBe('a support call');
    expect(q.get('filter_profanity')).toBe('true');
    expect(q.get('inactivity_timeout')).toBe('30');
    expect(new URL(assemblyAiSttWire.connect(stt({ options: { region: 'eu' } })).url).host).toBe('streaming.eu.assemblyai.com');
    const local = new URL(assemblyAiSttWire.connect(stt({ endpoint: 'http://127.0.0.1:4567/ignored' })).url);
    expect(local.origin + local.pathname).toBe('ws://127.0.0.1:4567/v3/ws');
    expect(new URL(assemblyAiSttWire.connect(stt({ endpoint: 'https://proxy.example.com' })).url).protocol).toBe('wss:');
  });

  it('a missing key is a non-retryable auth error naming assemblyai; bad options and endpoints are bad requests', () => {
    const missing = thrown(() => assemblyAiSttWire.connect(stt({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'ASSEMBLYAI_AUTH', retryable: false, kind: 'auth' });
    expect(missing.message).toMatch(/assemblyai/);
    expect(thrown(() => assemblyAiSttWire.connect(stt({ options: { endOfTurnConfidenceThreshold: 3 } })))).toMatchObject({ code: 'ASSEMBLYAI_BAD_OPTIONS', retryable: false, kind: 'bad-request' });
    expect(thrown(() => assemblyAiSttWire.connect(stt({ options: { region: 'mars' } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => assemblyAiSttWire.connect(stt({ endpoint: 'not a url' })))).toMatchObject({ code: 'ASSEMBLYAI_BAD_ENDPOINT' });
  });
});

describe('assemblyai STT wire: client frames and capabilities', () => {
  it('audio is the binary chunk itself; ForceEndpoint, Terminate and KeepAlive are JSON text frames', () => {
    const chunk = new Uint8Array(1600);
    expect(assemblyAiSttWire.audio(chunk)).toBe(chunk);
    expect(JSON.parse(assemblyAiSttWire.finalize!() as string)).toEqual({ type: 'ForceEndpoint' });
    expect(JSON.parse(assemblyAiSttWire.closeMessage!() as string)).toEqual({ type: 'Terminate' });
    expect(JSON.parse(assemblyAiSttWire.keepAliveMessage!.message())).toEqual({ type: 'KeepAlive' });
    expect(assemblyAiSttWire.keepAliveMessage!.intervalMs).toBe(5000);
    expect(createAssemblyAiSttWire({ formatTurns: false, keepAliveIntervalMs: 200 }).keepAliveMessage!.intervalMs).toBe(200);
    expect(assemblyAiSttWire.capabilities).toEqual({ interimResults: true, finalize: true, wordTimings: true, endOfTurn: true, edgeCapable: true, keepAlive: true });
  });

  it('asks the socket base for 50–1000 ms messages padded on flush, and a replay paced at real time', () => {
    for (const wire of [assemblyAiSttWire, formattedWire]) {
      expect(wire.audioMessageMs).toEqual({ min: 50, max: 1000, padOnFlush: true, hold: 200 });
      expect(wire.replayPacing).toEqual({ realtimeFactor: 1 });
    }
  });
});

describe('assemblyai STT wire: server messages (reference §1.3)', () => {
  const partial = JSON.stringify({
    type: 'Turn',
    turn_order: 0,
    turn_is_formatted: false,
    end_of_turn: false,
    transcript: 'hi',
    end_of_turn_confidence: 0.00001,
    utterance: '',
    words: [
      { start: 1920, end: 2000, text: 'hi', confidence: 0.87, word_is_final: true },
      { start: 2800, end: 2880, text: 'my', confidence: 0.81, word_is_final: false },
    ],
  });
  const endOfTurn = (formatted: boolean, transcript: string) =>
    JSON.stringify({
      type: 'Turn',
      turn_order: 3,
      turn_is_formatted: formatted,
      end_of_turn: true,
      transcript,
      end_of_turn_confidence: 0.9,
      words: [
        { start: 1920, end: 2000, text: formatted ? 'Hi' : 'hi', confidence: 0.8, word_is_final: true },
        { start: 2800, end: 2880.4, text: formatted ? 'there.' : 'there', confidence: 0.6, word_is_final: true },
      ],
    });

  it('a growing Turn → interim of the finalized transcript plus the non-final tail', () => {
    expect(decodeAssemblyAi(partial, false)).toEqual([{ type: 'interim', text: 'hi my' }]);
    expect(decodeAssemblyAi('{"type":"Turn","turn_order":0,"end_of_turn":false,"transcript":"","words":[]}', false)).toEqual([]);
  });

  it('plain sessions: end_of_turn → final (words in ms, mean confidence, audioEndMs = last word end) and endOfTurn', () => {
    expect(decodeAssemblyAi(endOfTurn(false, 'hi there'), false)).toEqual([
      {
        type: 'final',
        text: 'hi there',
        confidence: 0.7,
        words: [
          { word: 'hi', startMs: 1920, endMs: 2000, confidence: 0.8 },
          { word: 'there', startMs: 2800, endMs: 2880, confidence: 0.6 },
        ],
        audioEndMs: 2880,
      },
      { type: 'endOfTurn', text: 'hi there' },
    ]);
    // format_turns off on the server, yet a formatted end of turn (u3 models format themselves): still the final.
    expect(decodeAssemblyAi(endOfTurn(true, 'Hi there.'), false)[0]).toMatchObject({ type: 'final', text: 'Hi there.' });
  });

  it('formatted sessions: the unformatted end of turn is an interim, the formatted one the final', () => {
    expect(decodeAssemblyAi(endOfTurn(false, 'hi there'), true)).toEqual([{ type: 'interim', text: 'hi there' }]);
    const events = decodeAssemblyAi(endOfTurn(true, 'Hi there.'), true);
    expect(events.map((e) => e.type)).toEqual(['final', 'endOfTurn']);
    expect(events[0]).toMatchObject({ text: 'Hi there.', words: [{ word: 'Hi' }, { word: 'there.' }] });
  });

  it('an end of turn without words answers a finalize (empty final) but is not a turn', () => {
    expect(decodeAssemblyAi('{"type":"Turn","turn_order":1,"end_of_turn":true,"turn_is_formatted":false,"transcript":"","words":[]}', false)).toEqual([{ type: 'final', text: '' }]);
  });

  it('Begin → nothing, SpeechStarted → speechStarted, Termination → closed, unknown types → nothing', () => {
    expect(decodeAssemblyAi('{"type":"Begin","id":"de5d","expires_at":1759796682}', false)).toEqual([]);
    expect(decodeAssemblyAi('{"type":"SpeechStarted","timestamp":1920}', false)).toEqual([{ type: 'speechStarted' }]);
    expect(decodeAssemblyAi('{"type":"Termination","audio_duration_seconds":12,"session_duration_seconds":13}', false)).toEqual([{ type: 'closed' }]);
    expect(decodeAssemblyAi('{"type":"LLMGatewayResponse","x":1}', false)).toEqual([]);
  });

  it('Error frames (v3 `type:"Error"` and the SDK\'s bare `{error}`) → error events classified by code and text', () => {
    const [expired] = decodeAssemblyAi('{"type":"Error","error_code":3008,"error":"Session Expired: Maximum session duration exceeded"}', false);
    expect(expired).toMatchObject({ type: 'error', error: { code: 'ASSEMBLYAI_SESSION_EXPIRED', retryable: true, kind: 'timeout' } });
    const [bare] = decodeAssemblyAi('{"error":"Unauthorized Connection: Missing Authorization header"}', false);
    expect(bare).toMatchObject({ type: 'error', error: { code: 'ASSEMBLYAI_AUTH', retryable: false, kind: 'auth' } });
  });

  it.each([
    ['not JSON', '{"type":'],
    ['an array', '[1,2]'],
    ['no type', '{"x":1}'],
    ['a malformed Turn', '{"type":"Turn","end_of_turn":"yes"}'],
    ['a malformed Error', '{"type":"Error","error":7}'],
  ])('%s → a protocol error event (the base ignores it)', (_label, frame) => {
    const [event] = decodeAssemblyAi(frame, false);
    expect(event).toMatchObject({ type: 'error', error: { code: 'ASSEMBLYAI_PROTOCOL', kind: 'protocol' } });
  });

  it('a binary frame → a protocol error event', () => {
    expect(decodeAssemblyAi(new Uint8Array([1, 2]), false)[0]).toMatchObject({ type: 'error', error: { kind: 'protocol' } });
  });
});

describe('assemblyai STT wire: errors', () => {
  it.each([
    [1008, 'Unauthorized Connection: Missing Authorization header', 'ASSEMBLYAI_AUTH', false, 'auth'],
    [1008, 'Unauthorized Connection: Too many concurrent sessions', 'ASSEMBLYAI_RATE_LIMIT', true, 'rate-limit'],
    [1008, 'Unauthorized Connection: insufficient account balance', 'ASSEMBLYAI_QUOTA', false, 'quota'],
    [3009, 'Unauthorized Connection: Too many concurrent sessions', 'ASSEMBLYAI_RATE_LIMIT', true, 'rate-limit'],
    [3008, 'Session Expired: Maximum session duration exceeded', 'ASSEMBLYAI_SESSION_EXPIRED', true, 'timeout'],
    [3007, 'Input duration violation: 20 ms. Expected between 50 and 1000 ms', 'ASSEMBLYAI_BAD_AUDIO', false, 'bad-request'],
    [3007, 'Audio Transmission Rate Exceeded: Received 5 sec. audio in 1 sec', 'ASSEMBLYAI_BAD_AUDIO', false, 'bad-request'],
    [3006, 'Invalid Message Type: Finalize', 'ASSEMBLYAI_BAD_REQUEST', false, 'bad-request'],
    [3005, 'Session Cancelled: An error occurred', 'ASSEMBLYAI_UNAVAILABLE', true, 'unavailable'],
    // Older servers sent 3005 for everything: the text decides.
    [3005, 'Session Expired: Maximum session duration exceeded', 'ASSEMBLYAI_SESSION_EXPIRED', true, 'timeout'],
    [3005, 'Input duration violation: 20 ms. Expected between 50 and 1000 ms', 'ASSEMBLYAI_BAD_AUDIO', false, 'bad-request'],
    [3005, 'Invalid JSON: {', 'ASSEMBLYAI_BAD_REQUEST', false, 'bad-request'],
  ] as const)('%i "%s" → %s', (code, text, expected, retryable, kind) => {
    const error = assemblyAiError(code, text);
    expect(error).toMatchObject({ code: expected, retryable, kind });
    expect(error.message).toContain(text.slice(0, 30));
  });

  it('closes nobody asked for: normal and dropped ones reconnect, coded ones follow the Error mapping', () => {
    for (const code of [1000, 1001, 1005, 1006, 1011]) expect(classifyAssemblyAiClose(code, '')).toMatchObject({ retryable: true });
    expect(classifyAssemblyAiClose(1008, 'See Error message for details')).toMatchObject({ code: 'ASSEMBLYAI_AUTH', retryable: false });
    expect(classifyAssemblyAiClose(3007, 'See Error message for details')).toMatchObject({ code: 'ASSEMBLYAI_BAD_AUDIO', retryable: false });
    expect(classifyAssemblyAiClose(3009, '')).toMatchObject({ kind: 'rate-limit', retryable: true });
  });

  it.each([
    [401, 'auth', false],
    [403, 'auth', false],
    [402, 'quota', false],
    [429, 'rate-limit', true],
    [408, 'timeout', true],
    [400, 'bad-request', false],
    [503, 'unavailable', true],
    [undefined, 'unavailable', true],
  ] as const)('a refused handshake %s → %s (retryable %s), with the body\'s message', (status, kind, retryable) => {
    const error = classifyAssemblyAiHandshake(status, '{"error":"told you so"}');
    expect(error).toMatchObject({ kind, retryable });
    expect(error.message).toContain('told you so');
  });
});

const frame = (ms: number, value: number) => new Uint8Array(ms * BYTES_PER_MS).fill(value);

// ---- the adapter over an in-memory socket: every audio message legal, replay included ----

interface MemorySocket {
  readonly url: string;
  readonly sent: (string | Uint8Array)[];
  readonly handlers: SocketHandlers;
}

function memorySockets(): { factory: SocketFactory; sockets: MemorySocket[] } {
  const sockets: MemorySocket[] = [];
  const factory: SocketFactory = async (request, handlers) => {
    const record: MemorySocket = { url: request.url, sent: [], handlers };
    sockets.push(record);
    let open = true;
    const socket: ProviderSocket = {
      send(d) {
        record.sent.push(typeof d === 'string' ? d : d.slice());
        // Terminate is answered like the server does: the socket closes.
        if (typeof d === 'string' && d.includes('Terminate')) queueMicrotask(() => handlers.onClose(1000, ''));
      },
      bufferedAmount: 0,
      get open() {
        return open;
      },
      close: () => {
        open = false;
      },
    };
    return socket;
  };
  return { factory, sockets };
}

const binaries = (frames: readonly (string | Uint8Array)[]) => frames.filter((f): f is Uint8Array => typeof f !== 'string');
const concat = (parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};
const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
};

describe('assemblyai adapter over an in-memory socket', () => {
  it('sends only 50–1000 ms messages: live frames joined, a reconnect replay paced and not padded, finalize padded once', async () => {
    const { factory, sockets } = memorySockets();
    const adapter = createAssemblyAiStt({ connect: factory, retry: { attempts: 3, baseDelayMs: 1 } });
    const events: SttEvent[] = [];
    const session = await adapter.open(stt({ endpoint: 'ws://fake' }), (e) => events.push(e));
    const written: Uint8Array[] = [];
    const write = (n: number) => {
      for (let i = 0; i < n; i++) {
        const data = frame(20, written.length + 1);
        written.push(data);
        session.write({ format: PIPELINE_FORMAT, data });
      }
    };
    write(21); // 420 ms: seven 60 ms messages, nothing held
    expect(binaries(sockets[0]!.sent).map((m) => m.byteLength / BYTES_PER_MS)).toEqual([60, 60, 60, 60, 60, 60, 60]);

    sockets[0]!.handlers.onClose(1006, ''); // dropped: the base reconnects and replays 420 ms in 100 ms messages, at real time
    await until(() => sockets.length === 2);
    const replayStarted = performance.now();
    session.finalize(); // asked during the paced replay: it follows the replay
    await until(() => binaries(sockets[1]!.sent).length >= 4);
    // 200 ms go at once, the other 200 ms at real time.
    expect(performance.now() - replayStarted).toBeGreaterThanOrEqual(180);
    expect(binaries(sockets[1]!.sent).map((m) => m.byteLength / BYTES_PER_MS)).toEqual([100, 100, 100, 100, 50]); // the 20 ms tail padded for the finalize
    expect(sockets[1]!.sent.at(-1)).toBe('{"type":"ForceEndpoint"}');
    const afterFinalize = sockets[1]!.sent.length;
    write(3);
    write(1);
    session.finalize();
    const replayed = binaries(sockets[1]!.sent);
    expect(replayed.map((m) => m.byteLength / BYTES_PER_MS)).toEqual([100, 100, 100, 100, 50, 60, 50]);
    // Contiguous: the replay in order, padding only before each ForceEndpoint, never mid-message.
    expect(concat(replayed.slice(0, 4))).toEqual(concat(written.slice(0, 20)));
    expect(replayed[4]!.subarray(0, 20 * BYTES_PER_MS)).toEqual(written[20]);
    expect(replayed[4]!.subarray(20 * BYTES_PER_MS).every((b) => b === 0)).toBe(true);
    expect(replayed[5]).toEqual(concat(written.slice(21, 24)));
    expect(replayed[6]!.subarray(0, 20 * BYTES_PER_MS)).toEqual(written[24]);
    expect(replayed[6]!.subarray(20 * BYTES_PER_MS).every((b) => b === 0)).toBe(true);
    expect(sockets[1]!.sent.slice(afterFinalize).filter((m) => typeof m === 'string')).toEqual(['{"type":"ForceEndpoint"}']);
    await session.close();
    expect(sockets[1]!.sent.at(-1)).toBe('{"type":"Terminate"}');
    expect(events).toEqual([]);
  });

  it('formatTurns picks the formatted wire (format_turns=true on the URL); the registered id and schema are assemblyai\'s', async () => {
    const { factory, sockets } = memorySockets();
    const adapter = createAssemblyAiStt({ connect: factory });
    expect(adapter).toMatchObject({ id: 'assemblyai', requiresCredential: true });
    expect(adapter.optionsSchema?.safeParse({ formatTurns: true, keyterms: ['x'] }).success).toBe(true);
    const formatted = await adapter.open(stt({ endpoint: 'ws://fake', options: { formatTurns: true } }), () => {});
    const plain = await adapter.open(stt({ endpoint: 'ws://fake' }), () => {});
    expect(sockets.map((s) => new URL(s.url).searchParams.get('format_turns'))).toEqual(['true', 'false']);
    await Promise.all([formatted.close(), plain.close()]);
  });
});
