import { describe, expect, it } from 'vitest';
import { MULAW_8K, PIPELINE_FORMAT, type AudioFormat } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttSessionOptions } from '../../shared/contracts/stt';
import type { TtsStreamOptions } from '../../shared/contracts/tts';
import { createCartesiaStt, createCartesiaTts } from '../../shared/providers/cartesia';
import { cartesiaSttWire } from '../../shared/providers/cartesia/stt-wire';
import { cartesiaOutputFormat, cartesiaTtsWire } from '../../shared/providers/cartesia/tts-wire';

const signal = new AbortController().signal;
const stt = (over: Partial<SttSessionOptions> = {}): SttSessionOptions => ({ language: 'en-US', apiKey: 'sk-1', options: {}, signal, ...over });
const tts = (over: Partial<TtsStreamOptions> = {}): TtsStreamOptions => ({ language: 'en-US', voice: 'voice-1', format: PIPELINE_FORMAT, apiKey: 'sk-1', options: {}, signal, ...over });

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('cartesia STT wire: connect', () => {
  it('asks for ink-whisper, pcm_s16le 16 kHz and an ISO 639-1 language, with X-API-Key and Cartesia-Version', () => {
    const { url, headers } = cartesiaSttWire.connect(stt());
    const parsed = new URL(url);
    expect(`${parsed.protocol}//${parsed.host}${parsed.pathname}`).toBe('wss://api.cartesia.ai/stt/websocket');
    expect(Object.fromEntries(parsed.searchParams)).toEqual({ model: 'ink-whisper', encoding: 'pcm_s16le', sample_rate: '16000', language: 'en' });
    expect(headers).toEqual({ 'X-API-Key': 'sk-1', 'Cartesia-Version': '2025-04-16' });
  });

  it('takes model, endpoint (scheme+host+port only), version and the VAD knobs from the block', () => {
    const { url, headers } = cartesiaSttWire.connect(
      stt({ model: 'ink-2', language: 'de', endpoint: 'http://127.0.0.1:4567/ignored/path', options: { cartesiaVersion: '2026-03-01', minVolume: 0.1, maxSilenceDurationSecs: 0.4 } }),
    );
    const parsed = new URL(url);
    expect(parsed.origin + parsed.pathname).toBe('ws://127.0.0.1:4567/stt/websocket');
    expect(parsed.searchParams.get('model')).toBe('ink-2');
    expect(parsed.searchParams.get('language')).toBe('de');
    expect(parsed.searchParams.get('min_volume')).toBe('0.1');
    expect(parsed.searchParams.get('max_silence_duration_secs')).toBe('0.4');
    expect(headers?.['Cartesia-Version']).toBe('2026-03-01');
    expect(new URL(cartesiaSttWire.connect(stt({ endpoint: 'https://proxy.example.com' })).url).protocol).toBe('wss:');
  });

  it('a missing key is a non-retryable auth error naming cartesia; bad options and endpoints are bad requests', () => {
    const missing = thrown(() => cartesiaSttWire.connect(stt({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'CARTESIA_AUTH', retryable: false, kind: 'auth' });
    expect(missing.message).toMatch(/cartesia/);
    expect(thrown(() => cartesiaSttWire.connect(stt({ options: { minVolume: 7 } })))).toMatchObject({ retryable: false, kind: 'bad-request' });
    expect(thrown(() => cartesiaSttWire.connect(stt({ options: { cartesiaVersion: 'latest' } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => cartesiaSttWire.connect(stt({ endpoint: 'not a url' })))).toMatchObject({ kind: 'bad-request' });
  });
});

describe('cartesia STT wire: client frames', () => {
  it('sends audio as the binary chunk itself, finalize and done as plain text frames, no keep-alive', () => {
    const chunk = new Uint8Array([1, 2, 3, 4]);
    expect(cartesiaSttWire.audio(chunk)).toBe(chunk);
    expect(cartesiaSttWire.finalize?.()).toBe('finalize');
    expect(cartesiaSttWire.closeMessage?.()).toBe('done');
    expect(cartesiaSttWire.keepAliveMessage).toBeUndefined();
    expect(cartesiaSttWire.capabilities).toMatchObject({ keepAlive: false, interimResults: true, finalize: true, wordTimings: true, endOfTurn: false });
  });
});

describe('cartesia STT wire: server frames (reference §1.6 examples)', () => {
  it('transcript is_final:false → interim', () => {
    const frame = '{"type":"transcript","request_id":"r1","text":"How are you","is_final":false,"duration":0.5,"language":"en","words":[{"word":"How","start":0.0,"end":0.2}]}';
    expect(cartesiaSttWire.decode(frame)).toEqual([{ type: 'interim', text: 'How are you' }]);
  });

  it('transcript is_final:true → final with word times in ms; delta texts pass verbatim', () => {
    const frame = JSON.stringify({
      type: 'transcript',
      request_id: 'r1',
      text: ' doing today?',
      is_final: true,
      duration: 2.5,
      language: 'en',
      words: [
        { word: 'doing', start: 0.38, end: 0.55 },
        { word: 'today?', start: 0.58, end: 0.78 },
      ],
    });
    expect(cartesiaSttWire.decode(frame)).toEqual([
      { type: 'final', text: ' doing today?', words: [{ word: 'doing', startMs: 380, endMs: 550 }, { word: 'today?', startMs: 580, endMs: 780 }] },
    ]);
    expect(cartesiaSttWire.decode('{"type":"transcript","text":"Hi","is_final":true}')).toEqual([{ type: 'final', text: 'Hi' }]);
  });

  it('flush_done → finalized, done → closed', () => {
    expect(cartesiaSttWire.decode('{"type":"flush_done","request_id":"r1"}')).toEqual([{ type: 'finalized' }]);
    expect(cartesiaSttWire.decode('{"type":"done","request_id":"r1"}')).toEqual([{ type: 'closed' }]);
  });

  it.each([
    [400, 'bad-request', false],
    [401, 'auth', false],
    [403, 'auth', false],
    [429, 'rate-limit', true],
    [500, 'unavailable', true],
    [503, 'unavailable', true],
  ] as const)('error frame status_code %i → %s (retryable %s)', (status, kind, retryable) => {
    const frame = JSON.stringify({ type: 'error', request_id: 'r1', message: 'The model is not valid', status_code: status, title: 'Invalid model', error_code: 'model_not_found' });
    const [event] = cartesiaSttWire.decode(frame);
    expect(event?.type).toBe('error');
    const error = (event as { error: ProviderError }).error;
    expect(error).toMatchObject({ kind, retryable });
    expect(error.message).toContain('Invalid model');
  });

  it('ignores message types it does not know', () => {
    expect(cartesiaSttWire.decode('{"type":"metadata","request_id":"r1"}')).toEqual([]);
  });

  it.each([
    ['not JSON', 'finalize'],
    ['no type', '{"text":"hi"}'],
    ['a transcript without text', '{"type":"transcript","is_final":true}'],
    ['a transcript with bad words', '{"type":"transcript","text":"x","is_final":true,"words":[{"word":"x","start":"0"}]}'],
    ['a binary frame', new Uint8Array([1, 2])],
  ])('a malformed frame (%s) is a CARTESIA_PROTOCOL error of kind protocol', (_name, frame) => {
    expect(thrown(() => cartesiaSttWire.decode(frame))).toMatchObject({ code: 'CARTESIA_PROTOCOL', kind: 'protocol', retryable: false });
  });
});

describe('cartesia STT wire: handshake and close classification', () => {
  it('classifies refused upgrades by status, quoting the body', () => {
    const auth = cartesiaSttWire.classifyHandshake(401, '{"title":"Unauthorized","message":"Invalid API key"}');
    expect(auth).toMatchObject({ code: 'CARTESIA_AUTH', kind: 'auth', retryable: false });
    expect(auth.message).toContain('Invalid API key');
    expect(cartesiaSttWire.classifyHandshake(403, '')).toMatchObject({ kind: 'auth', retryable: false });
    expect(cartesiaSttWire.classifyHandshake(400, 'bad model')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(cartesiaSttWire.classifyHandshake(402, '')).toMatchObject({ kind: 'quota', retryable: false });
    expect(cartesiaSttWire.classifyHandshake(429, '')).toMatchObject({ kind: 'rate-limit', retryable: true });
    expect(cartesiaSttWire.classifyHandshake(503, '')).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(cartesiaSttWire.classifyHandshake(undefined, '')).toMatchObject({ kind: 'unavailable', retryable: true });
  });

  it('an unrequested close is never a normal end: retry, except for closes that reject our frames', () => {
    expect(cartesiaSttWire.classifyClose(1000, '')).toMatchObject({ retryable: true });
    expect(cartesiaSttWire.classifyClose(1000, 'idle timeout: no audio received')).toMatchObject({ retryable: true, kind: 'timeout' });
    expect(cartesiaSttWire.classifyClose(1006, '')).toMatchObject({ retryable: true, kind: 'unavailable' });
    expect(cartesiaSttWire.classifyClose(1011, 'internal')).toMatchObject({ retryable: true });
    expect(cartesiaSttWire.classifyClose(1008, 'Unauthorized')).toMatchObject({ retryable: false, kind: 'auth' });
    expect(cartesiaSttWire.classifyClose(1003, 'unsupported data')).toMatchObject({ retryable: false, kind: 'protocol' });
  });
});

describe('cartesia TTS wire: connect and formats', () => {
  it('connects to /tts/websocket with the auth and version headers, format-free', () => {
    const { url, headers } = cartesiaTtsWire.connect(tts({ endpoint: 'ws://127.0.0.1:9999' }));
    expect(url).toBe('ws://127.0.0.1:9999/tts/websocket');
    expect(headers).toEqual({ 'X-API-Key': 'sk-1', 'Cartesia-Version': '2025-04-16' });
    expect(cartesiaTtsWire.capabilities).toMatchObject({ multiplexed: true, cancelWithoutClosing: true, keepAlive: false, wordTimings: true });
  });

  it.each([
    [PIPELINE_FORMAT, { container: 'raw', encoding: 'pcm_s16le', sample_rate: 16000 }],
    [MULAW_8K, { container: 'raw', encoding: 'pcm_mulaw', sample_rate: 8000 }],
    [{ encoding: 'alaw', sampleRateHz: 8000 }, { container: 'raw', encoding: 'pcm_alaw', sample_rate: 8000 }],
    [{ encoding: 'pcm16', sampleRateHz: 24000 }, { container: 'raw', encoding: 'pcm_s16le', sample_rate: 24000 }],
  ] as [AudioFormat, object][])('maps %o to its output_format', (format, expected) => {
    expect(cartesiaOutputFormat(format)).toEqual(expected);
  });

  it('refuses formats and blocks it cannot serve, before connecting', () => {
    expect(thrown(() => cartesiaTtsWire.connect(tts({ format: { encoding: 'pcm16', sampleRateHz: 11025 } })))).toMatchObject({ code: 'CARTESIA_FORMAT', kind: 'bad-request', retryable: false });
    expect(thrown(() => cartesiaTtsWire.connect(tts({ voice: undefined })))).toMatchObject({ code: 'CARTESIA_NO_VOICE', retryable: false });
    expect(thrown(() => cartesiaTtsWire.connect(tts({ apiKey: undefined })))).toMatchObject({ kind: 'auth', retryable: false });
    expect(thrown(() => cartesiaTtsWire.connect(tts({ options: { maxBufferDelayMs: 5000 } })))).toMatchObject({ kind: 'bad-request' });
  });

  it('pools by endpoint, version and key (voice and format travel per request); the key is not in the pool key', () => {
    const key = cartesiaTtsWire.connectionKey(tts());
    expect(cartesiaTtsWire.connectionKey(tts({ voice: 'other', format: MULAW_8K }))).toBe(key);
    expect(cartesiaTtsWire.connectionKey(tts({ apiKey: 'sk-2' }))).not.toBe(key);
    expect(cartesiaTtsWire.connectionKey(tts({ options: { cartesiaVersion: '2026-03-01' } }))).not.toBe(key);
    expect(key).not.toContain('sk-1');
  });
});

describe('cartesia TTS wire: utterance frames', () => {
  const u = cartesiaTtsWire.utterance('turn-42', tts({ format: MULAW_8K }));
  const fields = {
    model_id: 'sonic-2',
    voice: { mode: 'id', id: 'voice-1' },
    language: 'en',
    context_id: 'turn-42',
    output_format: { container: 'raw', encoding: 'pcm_mulaw', sample_rate: 8000 },
    add_timestamps: true,
    max_buffer_delay_ms: 0,
  };

  it('begin sends nothing: the first piece creates the context', () => {
    expect(u.begin()).toEqual([]);
  });

  it('a piece is a continue:true request (ending in a space) plus a manual flush, both with the same fields', () => {
    const [text, flush] = u.text('Hello, world!', 0).map((m) => JSON.parse(m) as Record<string, unknown>);
    expect(text).toEqual({ ...fields, transcript: 'Hello, world! ', continue: true });
    expect(flush).toEqual({ ...fields, transcript: '', continue: true, flush: true });
    expect(JSON.parse(u.text('already spaced ', 1)[0]!)).toMatchObject({ transcript: 'already spaced ' });
  });

  it('end is an empty transcript with continue:false; cancel is {context_id, cancel:true}', () => {
    expect(u.end().map((m) => JSON.parse(m))).toEqual([{ ...fields, transcript: '', continue: false }]);
    expect(u.cancel()).toEqual(['{"context_id":"turn-42","cancel":true}']);
  });
});

describe('cartesia TTS wire: server frames (reference §2.3 examples)', () => {
  it('chunk → audio (base64 decoded) for its context', () => {
    const frame = JSON.stringify({ type: 'chunk', context_id: 'turn-42', status_code: 206, done: false, data: Buffer.from([1, 2, 255]).toString('base64'), step_time: 123, flush_id: 1 });
    expect(cartesiaTtsWire.decode(frame)).toEqual([{ type: 'audio', contextId: 'turn-42', data: new Uint8Array([1, 2, 255]) }]);
  });

  it('timestamps → word timings in ms (context-relative already)', () => {
    const frame = '{"type":"timestamps","context_id":"turn-42","status_code":206,"done":false,"word_timestamps":{"words":["Hello","world"],"start":[0.0,0.52],"end":[0.4,0.9]}}';
    expect(cartesiaTtsWire.decode(frame)).toEqual([
      { type: 'words', contextId: 'turn-42', words: [{ word: 'Hello', startMs: 0, endMs: 400 }, { word: 'world', startMs: 520, endMs: 900 }] },
    ]);
  });

  it('flush_done → pieceDone, done → done, phoneme_timestamps ignored', () => {
    expect(cartesiaTtsWire.decode('{"type":"flush_done","context_id":"turn-42","status_code":206,"done":false,"flush_done":true,"flush_id":1}')).toEqual([{ type: 'pieceDone', contextId: 'turn-42' }]);
    expect(cartesiaTtsWire.decode('{"type":"done","context_id":"turn-42","status_code":206,"done":true}')).toEqual([{ type: 'done', contextId: 'turn-42' }]);
    expect(cartesiaTtsWire.decode('{"type":"phoneme_timestamps","context_id":"turn-42","status_code":206,"done":false,"phoneme_timestamps":{}}')).toEqual([]);
  });

  it('error → a classified error for its context, or for the socket when it names none', () => {
    const [event] = cartesiaTtsWire.decode('{"type":"error","context_id":"turn-42","status_code":400,"done":true,"title":"Invalid voice","message":"voice not found","error_code":"voice_not_found","doc_url":"x","request_id":"r"}');
    expect(event).toMatchObject({ type: 'error', contextId: 'turn-42', error: { kind: 'bad-request', retryable: false } });
    const [socketLevel] = cartesiaTtsWire.decode('{"type":"error","status_code":429,"message":"too many"}');
    expect(socketLevel).toMatchObject({ type: 'error', error: { kind: 'rate-limit', retryable: true } });
    expect(socketLevel).not.toHaveProperty('contextId');
  });

  it.each([
    ['not JSON', '<html>'],
    ['a chunk without data', '{"type":"chunk","context_id":"c"}'],
    ['a chunk whose data is not base64', '{"type":"chunk","context_id":"c","data":"@@@"}'],
    ['timestamps of mismatched lengths', '{"type":"timestamps","context_id":"c","word_timestamps":{"words":["a","b"],"start":[0],"end":[1,2]}}'],
    ['a binary frame', new Uint8Array(3)],
  ])('a malformed frame (%s) is a protocol error', (_name, frame) => {
    expect(thrown(() => cartesiaTtsWire.decode(frame))).toMatchObject({ code: 'CARTESIA_PROTOCOL', kind: 'protocol' });
  });

  it('classifies handshakes and closes like the STT socket', () => {
    expect(cartesiaTtsWire.classifyHandshake(401, '')).toMatchObject({ kind: 'auth', retryable: false });
    expect(cartesiaTtsWire.classifyHandshake(429, '')).toMatchObject({ kind: 'rate-limit', retryable: true });
    expect(cartesiaTtsWire.classifyClose(1000, 'idle timeout')).toMatchObject({ retryable: true, kind: 'timeout' });
  });
});

describe('cartesia adapters', () => {
  it('register as "cartesia", need a credential, and validate their options', async () => {
    const connect = async () => {
      throw new Error('no network in this test');
    };
    const stt = createCartesiaStt({ connect });
    const tts = createCartesiaTts({ connect });
    expect([stt.id, tts.id]).toEqual(['cartesia', 'cartesia']);
    expect(stt.requiresCredential && tts.requiresCredential).toBe(true);
    expect(stt.optionsSchema?.safeParse({ minVolume: 2 }).success).toBe(false);
    expect(tts.optionsSchema?.safeParse({}).data).toEqual({ cartesiaVersion: '2025-04-16', maxBufferDelayMs: 0 });
    await tts.close();
  });
});
