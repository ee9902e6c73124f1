import { describe, expect, it } from 'vitest';
import { ALAW_8K, MULAW_8K, PIPELINE_FORMAT, type AudioFormat } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { TtsStreamOptions } from '../../shared/contracts/tts';
import { createElevenLabsTts } from '../../shared/providers/elevenlabs';
import { createAlignmentTracker } from '../../shared/providers/elevenlabs/alignment';
import { createElevenLabsTtsWire, elevenLabsOutputFormat } from '../../shared/providers/elevenlabs/tts-wire';
import type { TtsWireEvent } from '../../shared/providers/streaming/tts-wire';

const signal = new AbortController().signal;
const opts = (over: Partial<TtsStreamOptions> = {}): TtsStreamOptions => ({ language: 'en-US', voice: 'voice-1', format: PIPELINE_FORMAT, apiKey: 'xi-1', options: {}, signal, ...over });

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

/** `ms` of PCM16 16 kHz as base64. */
const pcmB64 = (ms: number) => Buffer.alloc(ms * 32).toString('base64');
const alignment = (text: string, starts: number[], durations: number[]) => ({ chars: [...text], charStartTimesMs: starts, charDurationsMs: durations });

describe('elevenlabs TTS wire: connect', () => {
  it('opens the multi-context socket of the voice with model, output format, inactivity timeout and synced alignment', () => {
    const wire = createElevenLabsTtsWire();
    const { url, headers } = wire.connect(opts());
    const parsed = new URL(url);
    expect(parsed.origin + parsed.pathname).toBe('wss://api.elevenlabs.io/v1/text-to-speech/voice-1/multi-stream-input');
    expect(Object.fromEntries(parsed.searchParams)).toEqual({ model_id: 'eleven_flash_v2_5', output_format: 'pcm_16000', inactivity_timeout: '180', sync_alignment: 'true' });
    expect(headers).toEqual({ 'xi-api-key': 'xi-1' });
    expect(wire.capabilities).toMatchObject({ multiplexed: true, cancelWithoutClosing: true, keepAlive: false, wordTimings: true });
  });

  it('takes endpoint, model, timeout and (opt-in) language_code from the block', () => {
    const wire = createElevenLabsTtsWire();
    const parsed = new URL(wire.connect(opts({ endpoint: 'http://127.0.0.1:7000', model: 'eleven_turbo_v2_5', language: 'de-DE', options: { inactivityTimeoutS: 60, enforceLanguage: true } })).url);
    expect(parsed.origin).toBe('ws://127.0.0.1:7000');
    expect(parsed.searchParams.get('model_id')).toBe('eleven_turbo_v2_5');
    expect(parsed.searchParams.get('inactivity_timeout')).toBe('60');
    expect(parsed.searchParams.get('language_code')).toBe('de');
  });

  it.each([
    [PIPELINE_FORMAT, 'pcm_16000'],
    [{ encoding: 'pcm16', sampleRateHz: 8000 }, 'pcm_8000'],
    [{ encoding: 'pcm16', sampleRateHz: 24000 }, 'pcm_24000'],
    [{ encoding: 'pcm16', sampleRateHz: 44100 }, 'pcm_44100'],
    [MULAW_8K, 'ulaw_8000'],
    [ALAW_8K, 'alaw_8000'],
  ] as [AudioFormat, string][])('maps %o to output_format %s', (format, expected) => {
    expect(elevenLabsOutputFormat(format)).toBe(expected);
  });

  it('refuses unsupported formats, a missing voice and a missing key before connecting', () => {
    const wire = createElevenLabsTtsWire();
    expect(thrown(() => wire.connect(opts({ format: { encoding: 'pcm16', sampleRateHz: 11025 } })))).toMatchObject({ code: 'ELEVENLABS_FORMAT', kind: 'bad-request', retryable: false });
    expect(thrown(() => wire.connect(opts({ format: { encoding: 'mulaw', sampleRateHz: 16000 } })))).toMatchObject({ code: 'ELEVENLABS_FORMAT' });
    expect(thrown(() => wire.connect(opts({ voice: undefined })))).toMatchObject({ code: 'ELEVENLABS_NO_VOICE', retryable: false });
    const noKey = thrown(() => wire.connect(opts({ apiKey: undefined })));
    expect(noKey).toMatchObject({ code: 'ELEVENLABS_AUTH', kind: 'auth', retryable: false });
    expect(noKey.message).toMatch(/elevenlabs/);
    expect(thrown(() => wire.connect(opts({ options: { inactivityTimeoutS: 500 } })))).toMatchObject({ kind: 'bad-request' });
  });

  it('pools per voice, model, format and key; the key itself is not in the pool key', () => {
    const wire = createElevenLabsTtsWire();
    const key = wire.connectionKey(opts());
    expect(wire.connectionKey(opts())).toBe(key);
    expect(wire.connectionKey(opts({ voice: 'voice-2' }))).not.toBe(key);
    expect(wire.connectionKey(opts({ format: MULAW_8K }))).not.toBe(key);
    expect(wire.connectionKey(opts({ apiKey: 'xi-2' }))).not.toBe(key);
    expect(key).not.toContain('xi-1');
  });
});

describe('elevenlabs TTS wire: utterance frames', () => {
  it('begins the context with exactly one space, sends each piece flushed and ending in a space, ends with flush + close_context', () => {
    const wire = createElevenLabsTtsWire();
    const u = wire.utterance('ctx', opts({ options: { voiceSettings: { stability: 0.4 }, chunkLengthSchedule: [50] } }));
    const [init] = u.begin().map((m) => JSON.parse(m) as Record<string, unknown>);
    const id = init!.context_id as string;
    expect(id.startsWith('ctx-')).toBe(true);
    expect(init).toEqual({ text: ' ', context_id: id, voice_settings: { stability: 0.4 }, generation_config: { chunk_length_schedule: [50] } });
    expect(u.text('Hello there.', 0).map((m) => JSON.parse(m))).toEqual([{ text: 'Hello there. ', context_id: id, flush: true }]);
    expect(u.end().map((m) => JSON.parse(m))).toEqual([{ text: '', context_id: id, flush: true }, { context_id: id, close_context: true }]);
  });

  it('cancel closes the context on the same socket', () => {
    const wire = createElevenLabsTtsWire();
    const u = wire.utterance('ctx', opts());
    const id = JSON.parse(u.begin()[0]!).context_id as string;
    expect(u.cancel()).toEqual([JSON.stringify({ context_id: id, close_context: true })]);
  });

  it('gives two utterances with the same base id different wire ids', () => {
    const wire = createElevenLabsTtsWire();
    const a = JSON.parse(wire.utterance('1', opts()).begin()[0]!).context_id;
    const b = JSON.parse(wire.utterance('1', opts()).begin()[0]!).context_id;
    expect(a).not.toBe(b);
  });
});

describe('elevenlabs TTS wire: server frames', () => {
  function started(format: AudioFormat = PIPELINE_FORMAT) {
    const wire = createElevenLabsTtsWire();
    const u = wire.utterance('turn', opts({ format }));
    const id = JSON.parse(u.begin()[0]!).context_id as string;
    return { wire, u, id };
  }

  it('the reference audio message → audio for the base context (textIndex 0), base64 decoded', () => {
    const { wire, u, id } = started();
    u.text('He', 0);
    const frame = { audio: pcmB64(10), isFinal: null, normalizedAlignment: alignment('He', [0, 3], [3, 5]), alignment: alignment('He', [0, 3], [3, 5]), contextId: id };
    const events = wire.decode(JSON.stringify(frame));
    expect(events[0]).toEqual({ type: 'audio', contextId: 'turn', data: new Uint8Array(320), textIndex: 0 });
    // "He" has not ended yet: its word comes with the next whitespace or at isFinal.
    expect(events).toHaveLength(1);
    expect(wire.decode(JSON.stringify({ isFinal: true, contextId: id }))).toEqual([
      { type: 'words', contextId: 'turn', words: [{ word: 'He', startMs: 0, endMs: 8 }] },
      { type: 'done', contextId: 'turn' },
    ]);
  });

  it('turns per-chunk alignment into utterance-relative words, one word split across two chunks', () => {
    const { wire, u, id } = started();
    u.text('hello weather', 0);
    // Chunk 1 (100 ms): "hello we" ; chunk 2: "ather " (times relative to chunk 2's start).
    const first = wire.decode(JSON.stringify({ audio: pcmB64(100), alignment: alignment('hello we', [0, 10, 20, 30, 40, 60, 80, 90], [10, 10, 10, 10, 10, 20, 10, 10]), contextId: id }));
    expect(first.filter((e) => e.type === 'words')).toEqual([{ type: 'words', contextId: 'turn', words: [{ word: 'hello', startMs: 0, endMs: 50 }] }]);
    const second = wire.decode(JSON.stringify({ audio: pcmB64(100), alignment: alignment('ather ', [0, 10, 20, 30, 40, 50], [10, 10, 10, 10, 10, 30]), contextId: id }));
    expect(second.find((e) => e.type === 'words')).toEqual({ type: 'words', contextId: 'turn', words: [{ word: 'weather', startMs: 80, endMs: 150 }] });
  });

  it('counts characters to tell which piece a chunk voices (whitespace ignored, server spacing may differ)', () => {
    const { wire, u, id } = started();
    u.text('Hi there.', 0);
    u.text('What is it?', 1);
    const index = (chars: string) => {
      const events = wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: alignment(chars, [...chars].map((_, i) => i), [...chars].map(() => 1)), contextId: id }));
      return (events.find((e) => e.type === 'audio') as { textIndex?: number }).textIndex;
    };
    expect(index('Hi the')).toBe(0);
    expect(index('re.  What')).toBe(0); // Starts in piece 0, runs into piece 1.
    expect(index(' is it?')).toBe(1);
    // Audio without alignment (or with spaces only) continues the previous chunk's piece.
    const bare = wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: null, normalizedAlignment: null, contextId: id }));
    expect(bare[0]).toMatchObject({ type: 'audio', textIndex: 1 });
  });

  it('trailing silence of a piece stays with that piece even when all its characters were voiced', () => {
    const { wire, u, id } = started();
    u.text('Hi.', 0);
    u.text('Bye.', 1);
    const indexOf = (events: readonly TtsWireEvent[]) => (events[0] as { textIndex?: number }).textIndex;
    expect(indexOf(wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: alignment('Hi.', [0, 5, 10], [5, 5, 5]), contextId: id })))).toBe(0);
    expect(indexOf(wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: alignment(' ', [0], [20]), contextId: id })))).toBe(0);
    expect(indexOf(wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: null, contextId: id })))).toBe(0);
    expect(indexOf(wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: alignment('Bye.', [0, 5, 10, 15], [5, 5, 5, 5]), contextId: id })))).toBe(1);
  });

  it('accepts the charsDurationsMs spelling, and falls back to normalizedAlignment', () => {
    for (const field of ['alignment', 'normalizedAlignment']) {
      const { wire, u, id } = started();
      u.text('ok', 0);
      const events = wire.decode(JSON.stringify({ audio: pcmB64(50), [field]: { chars: ['o', 'k', ' '], charStartTimesMs: [0, 20, 40], charsDurationsMs: [20, 20, 10] }, contextId: id }));
      expect(events[1]).toEqual({ type: 'words', contextId: 'turn', words: [{ word: 'ok', startMs: 0, endMs: 40 }] });
      expect(wire.decode(JSON.stringify({ isFinal: true, contextId: id }))).toEqual([{ type: 'done', contextId: 'turn' }]);
    }
  });

  it('accumulates chunk durations in the output format (μ-law: one byte per sample)', () => {
    const { wire, u, id } = started(MULAW_8K);
    u.text('a b', 0);
    wire.decode(JSON.stringify({ audio: Buffer.alloc(800).toString('base64'), alignment: alignment('a', [0], [50]), contextId: id })); // 100 ms
    const events = wire.decode(JSON.stringify({ audio: Buffer.alloc(80).toString('base64'), alignment: alignment(' b', [0, 5], [5, 5]), contextId: id }));
    expect(events[1]).toEqual({ type: 'words', contextId: 'turn', words: [{ word: 'a', startMs: 0, endMs: 50 }] });
    expect(wire.decode(JSON.stringify({ isFinal: true, contextId: id }))[0]).toEqual({ type: 'words', contextId: 'turn', words: [{ word: 'b', startMs: 105, endMs: 110 }] });
  });

  it('isFinal after cancel → cancelled (no words); unknown contexts keep their raw id', () => {
    const { wire, u, id } = started();
    u.text('hello', 0);
    u.cancel();
    wire.decode(JSON.stringify({ audio: pcmB64(20), alignment: alignment('he', [0, 5], [5, 5]), contextId: id }));
    expect(wire.decode(JSON.stringify({ isFinal: true, contextId: id }))).toEqual([{ type: 'cancelled', contextId: 'turn' }]);
    expect(wire.decode(JSON.stringify({ isFinal: true, contextId: id }))).toEqual([{ type: 'done', contextId: id }]);
    expect(wire.decode(JSON.stringify({ audio: pcmB64(1), contextId: 'stranger' }))).toEqual([{ type: 'audio', contextId: 'stranger', data: new Uint8Array(32) }]);
  });

  it('keeps same-named utterances of two sockets apart', () => {
    const wire = createElevenLabsTtsWire();
    const a = wire.utterance('1', opts());
    const b = wire.utterance('1', opts());
    const idA = JSON.parse(a.begin()[0]!).context_id;
    const idB = JSON.parse(b.begin()[0]!).context_id;
    a.text('one', 0);
    b.text('two', 0);
    b.text('three', 1);
    wire.decode(JSON.stringify({ audio: pcmB64(10), alignment: alignment('two', [0, 1, 2], [1, 1, 1]), contextId: idB }));
    const [audioB] = wire.decode(JSON.stringify({ audio: pcmB64(10), alignment: alignment('three', [0, 1, 2, 3, 4], [1, 1, 1, 1, 1]), contextId: idB }));
    const [audioA] = wire.decode(JSON.stringify({ audio: pcmB64(10), alignment: alignment('one', [0, 1, 2], [1, 1, 1]), contextId: idA }));
    expect(audioB).toMatchObject({ contextId: '1', textIndex: 1 });
    expect(audioA).toMatchObject({ contextId: '1', textIndex: 0 });
  });

  it.each([
    ['input_timeout_exceeded', 'Have not received a new text input within the timeout of 20.0 seconds.', 'timeout', true],
    ['invalid_input_message', 'voices can only be set in the first message', 'bad-request', false],
    ['invalid_api_key', 'Invalid API key', 'auth', false],
    ['max_active_conversations', 'Maximum simultaneous contexts per WebSocket connection exceeded (5).', 'rate-limit', true],
    ['quota_exceeded', 'This request exceeds your quota.', 'quota', false],
    ['internal_error', 'We are sorry, something went wrong. You are not charged for this request.', 'unavailable', true],
  ] as const)('error frame "%s" → %s (retryable %s)', (error, message, kind, retryable) => {
    const wire = createElevenLabsTtsWire();
    const [event] = wire.decode(JSON.stringify({ message, error, code: 1008 }));
    expect(event).toMatchObject({ type: 'error', error: { kind, retryable } });
    expect((event as Extract<TtsWireEvent, { type: 'error' }>).error.message).toContain(error);
  });

  it('ignores frames it does not know', () => {
    expect(createElevenLabsTtsWire().decode('{"contextId":"x"}')).toEqual([]);
  });

  it.each([
    ['not JSON', 'oops'],
    ['an array', '[1]'],
    ['audio that is not base64', '{"audio":"!!","contextId":"c"}'],
    ['alignment of mismatched lengths', '{"audio":"AAAA","alignment":{"chars":["a","b"],"charStartTimesMs":[0],"charDurationsMs":[1,1]}}'],
    ['a wrongly typed field', '{"audio":5}'],
    ['a binary frame', new Uint8Array(2)],
  ])('a malformed frame (%s) is an ELEVENLABS_PROTOCOL error', (_name, frame) => {
    expect(thrown(() => createElevenLabsTtsWire().decode(frame))).toMatchObject({ code: 'ELEVENLABS_PROTOCOL', kind: 'protocol' });
  });
});

describe('elevenlabs TTS wire: handshake and close classification', () => {
  const wire = createElevenLabsTtsWire();

  it('classifies refused upgrades from status and the JSON detail', () => {
    const auth = wire.classifyHandshake(401, '{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}');
    expect(auth).toMatchObject({ code: 'ELEVENLABS_AUTH', kind: 'auth', retryable: false });
    expect(auth.message).toContain('Invalid API key');
    expect(wire.classifyHandshake(401, '{"detail":{"status":"quota_exceeded","message":"quota"}}')).toMatchObject({ kind: 'quota', retryable: false });
    expect(wire.classifyHandshake(404, '{"detail":{"status":"voice_not_found","message":"no voice"}}')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(wire.classifyHandshake(400, 'plain text')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(wire.classifyHandshake(429, '')).toMatchObject({ kind: 'rate-limit', retryable: true });
    expect(wire.classifyHandshake(502, '')).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(wire.classifyHandshake(undefined, '')).toMatchObject({ kind: 'unavailable', retryable: true });
  });

  it('classifies closes: 1008 by its reason, 1009 as a rejected request, anything else retryable', () => {
    expect(wire.classifyClose(1008, 'input_timeout_exceeded')).toMatchObject({ kind: 'timeout', retryable: true });
    expect(wire.classifyClose(1008, 'invalid_api_key')).toMatchObject({ kind: 'auth', retryable: false });
    expect(wire.classifyClose(1008, 'We are sorry, something went wrong.')).toMatchObject({ retryable: true });
    expect(wire.classifyClose(1009, 'message too big')).toMatchObject({ kind: 'bad-request', retryable: false });
    expect(wire.classifyClose(1006, '')).toMatchObject({ retryable: true });
    expect(wire.classifyClose(1000, '')).toMatchObject({ retryable: true });
  });
});

describe('alignment tracker', () => {
  it('emits nothing and points at no piece before any text', () => {
    const tracker = createAlignmentTracker();
    expect(tracker.chunk(100, undefined)).toEqual({ textIndex: undefined, words: [] });
    expect(tracker.finish()).toEqual([]);
  });

  it('derives durations from the next start when the server sends none', () => {
    const tracker = createAlignmentTracker();
    tracker.addPiece(0, 'ab c');
    const { words } = tracker.chunk(100, { chars: ['a', 'b', ' ', 'c'], charStartTimesMs: [0, 10, 30, 40] });
    expect(words).toEqual([{ word: 'ab', startMs: 0, endMs: 30 }]);
    expect(tracker.finish()).toEqual([{ word: 'c', startMs: 40, endMs: 40 }]);
  });
});

describe('elevenlabs adapter', () => {
  it('registers as "elevenlabs", needs a credential, and validates its options', async () => {
    const tts = createElevenLabsTts({ connect: async () => Promise.reject(new Error('no network in this test')) });
    expect(tts.id).toBe('elevenlabs');
    expect(tts.requiresCredential).toBe(true);
    expect(tts.capabilities.outputFormats).toContainEqual(MULAW_8K);
    expect(tts.optionsSchema?.safeParse({ inactivityTimeoutS: 1000 }).success).toBe(false);
    await tts.close();
  });
});
