import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttSessionOptions } from '../../shared/contracts/stt';
import { createRevAiStt } from '../../shared/providers/revai';
import { classifyRevAiClose, classifyRevAiHandshake, decodeRevAi, revAiLanguage, revAiSttWire, revAiText } from '../../shared/providers/revai/stt-wire';

const signal = new AbortController().signal;
const stt = (over: Partial<SttSessionOptions> = {}): SttSessionOptions => ({ language: 'en-US', apiKey: 'rev-token-1', options: {}, signal, ...over });

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('revai STT wire: connect', () => {
  it('puts the token in access_token and raw S16LE 16 kHz mono in content_type (URL-encoded), no headers', () => {
    const target = revAiSttWire.connect(stt());
    const parsed = new URL(target.url);
    expect(`${parsed.protocol}//${parsed.host}${parsed.pathname}`).toBe('wss://api.rev.ai/speechtotext/v1/stream');
    expect(Object.fromEntries(parsed.searchParams)).toEqual({
      access_token: 'rev-token-1',
      content_type: 'audio/x-raw;layout=interleaved;rate=16000;format=S16LE;channels=1',
      language: 'en',
    });
    expect(target.url).toContain('content_type=audio%2Fx-raw%3Blayout%3Dinterleaved%3Brate%3D16000%3Bformat%3DS16LE%3Bchannels%3D1');
    expect(target.headers).toBeUndefined();
  });

  it('maps model → transcriber, the language to Rev\'s codes, and the options onto the documented parameters', () => {
    const q = new URL(
      revAiSttWire.connect(
        stt({
          model: 'machine',
          language: 'es-MX',
          options: {
            metadata: 'call 42',
            customVocabularyId: 'cv1',
            filterProfanity: true,
            removeDisfluencies: true,
            deleteAfterSeconds: 0,
            detailedPartials: false,
            skipPostprocessing: true,
            maxSegmentDurationSeconds: 10,
            priority: 'accuracy',
          },
        }),
      ).url,
    ).searchParams;
    expect(q.get('transcriber')).toBe('machine');
    expect(q.get('language')).toBe('es');
    expect(q.get('metadata')).toBe('call 42');
    expect(q.get('custom_vocabulary_id')).toBe('cv1');
    expect(q.get('filter_profanity')).toBe('true');
    expect(q.get('remove_disfluencies')).toBe('true');
    expect(q.get('delete_after_seconds')).toBe('0');
    expect(q.get('detailed_partials')).toBe('false');
    expect(q.get('skip_postprocessing')).toBe('true');
    expect(q.get('max_segment_duration_seconds')).toBe('10');
    expect(q.get('priority')).toBe('accuracy');
    expect(revAiLanguage('zh-CN')).toBe('cmn');
    expect(revAiLanguage('')).toBe('en');
    const local = new URL(revAiSttWire.connect(stt({ endpoint: 'http://127.0.0.1:9/x' })).url);
    expect(local.origin + local.pathname).toBe('ws://127.0.0.1:9/speechtotext/v1/stream');
  });

  it('a missing token is a non-retryable auth error naming revai; errors never carry the token', () => {
    const missing = thrown(() => revAiSttWire.connect(stt({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'REVAI_AUTH', retryable: false, kind: 'auth' });
    expect(missing.message).toMatch(/revai/);
    const badOptions = thrown(() => revAiSttWire.connect(stt({ options: { priority: 'fastest' } })));
    expect(badOptions).toMatchObject({ code: 'REVAI_BAD_OPTIONS', kind: 'bad-request' });
    expect(badOptions.message).not.toContain('rev-token-1');
    const badEndpoint = thrown(() => revAiSttWire.connect(stt({ endpoint: 'nope' })));
    expect(badEndpoint.message).not.toContain('rev-token-1');
  });
});

describe('revai STT wire: client frames and capabilities', () => {
  it('audio is the binary chunk itself (never empty), EOS the close message; no finalize, no keep-alive', () => {
    const chunk = new Uint8Array([1, 2, 3, 4]);
    expect(revAiSttWire.audio(chunk)).toBe(chunk);
    expect((revAiSttWire.audio(new Uint8Array(0)) as Uint8Array).byteLength).toBe(2);
    expect(revAiSttWire.closeMessage?.()).toBe('EOS');
    expect(revAiSttWire.finalize).toBeUndefined();
    expect(revAiSttWire.keepAliveMessage).toBeUndefined();
    expect(revAiSttWire.capabilities).toEqual({ interimResults: true, finalize: false, wordTimings: true, endOfTurn: false, edgeCapable: true, keepAlive: false });
  });

  it('the registered adapter is revai, needs a credential and declares the same capabilities', () => {
    const adapter = createRevAiStt({ connect: async () => Promise.reject(new Error('unused')) });
    expect(adapter).toMatchObject({ id: 'revai', requiresCredential: true, capabilities: revAiSttWire.capabilities });
  });
});

describe('revai STT wire: server messages (reference §1.8, docs example session)', () => {
  it('connected → nothing; a partial → interim of its text elements joined with spaces', () => {
    expect(decodeRevAi('{"type":"connected","id":"s1d24ax2fd21"}')).toEqual([]);
    expect(decodeRevAi('{"type":"partial","ts":1.01,"end_ts":3.2,"elements":[{"type":"text","value":"one"},{"type":"text","value":"two"}]}')).toEqual([
      { type: 'interim', text: 'one two' },
    ]);
    expect(decodeRevAi('{"type":"partial","ts":1.01,"end_ts":1.2,"elements":[]}')).toEqual([]);
  });

  it('a final → its element values joined verbatim (punct carries spaces), word timings in ms, audioEndMs from end_ts', () => {
    const frame = JSON.stringify({
      type: 'final',
      ts: 1.01,
      end_ts: 3.2,
      speaker_id: 0,
      elements: [
        { type: 'text', value: 'One', ts: 1.04, end_ts: 1.55, confidence: 1.0 },
        { type: 'punct', value: ' ' },
        { type: 'text', value: 'two', ts: 1.84, end_ts: 2.15, confidence: 0.8 },
        { type: 'punct', value: '.' },
      ],
    });
    expect(decodeRevAi(frame)).toEqual([
      {
        type: 'final',
        text: 'One two.',
        confidence: 0.9,
        words: [
          { word: 'One', startMs: 1040, endMs: 1550, confidence: 1 },
          { word: 'two', startMs: 1840, endMs: 2150, confidence: 0.8 },
        ],
        audioEndMs: 3200,
      },
    ]);
    // The reference's shorter example: a comma then a space element.
    expect(revAiText([{ type: 'text', value: 'One' }, { type: 'punct', value: ',' }, { type: 'punct', value: ' ' }, { type: 'text', value: 'two' }])).toBe('One, two');
    expect(decodeRevAi('{"type":"final","elements":[]}')).toEqual([{ type: 'final', text: '' }]);
  });

  it('unknown types → nothing; malformed messages → protocol error events (the base ignores them)', () => {
    expect(decodeRevAi('{"type":"speaker_switch","x":1}')).toEqual([]);
    for (const frame of ['{"type":', '{"x":1}', '[]', '{"type":"final","elements":"one"}']) {
      expect(decodeRevAi(frame)[0]).toMatchObject({ type: 'error', error: { code: 'REVAI_PROTOCOL', kind: 'protocol' } });
    }
    expect(decodeRevAi(new Uint8Array([1]))[0]).toMatchObject({ type: 'error', error: { kind: 'protocol' } });
  });
});

describe('revai STT wire: errors', () => {
  it.each([
    [4001, 'REVAI_AUTH', false, 'auth'],
    [4002, 'REVAI_BAD_REQUEST', false, 'bad-request'],
    [4003, 'REVAI_QUOTA', false, 'quota'],
    [4013, 'REVAI_RATE_LIMIT', true, 'rate-limit'],
    [1000, 'REVAI_CLOSED', true, 'unavailable'],
    [1006, 'REVAI_CLOSED', true, 'unavailable'],
    [1011, 'REVAI_CLOSED', true, 'unavailable'],
    [4010, 'REVAI_CLOSED', true, 'unavailable'],
  ] as const)('close %i → %s (retryable %s)', (code, expected, retryable, kind) => {
    expect(classifyRevAiClose(code, 'x')).toMatchObject({ code: expected, retryable, kind });
  });

  it('an idle close says timeout', () => {
    expect(classifyRevAiClose(1000, 'idle timeout: no audio received')).toMatchObject({ code: 'REVAI_TIMEOUT', retryable: true, kind: 'timeout' });
  });

  it.each([
    [401, 'auth', false],
    [403, 'auth', false],
    [402, 'quota', false],
    [429, 'rate-limit', true],
    [408, 'timeout', true],
    [400, 'bad-request', false],
    [502, 'unavailable', true],
    [undefined, 'unavailable', true],
  ] as const)('a refused handshake %s → %s (retryable %s), with the body\'s title', (status, kind, retryable) => {
    const error = classifyRevAiHandshake(status, '{"title":"Authorization has been denied for this request","status":401}');
    expect(error).toMatchObject({ kind, retryable });
    expect(error.message).toContain('Authorization has been denied');
  });
});
