import { afterEach, describe, expect, it } from 'vitest';
import { createWsSocketFactory } from '../../media-node/providers/ws-socket';
import { MULAW_8K, PIPELINE_FORMAT, pcm16Bytes, type AudioFormat } from '../../shared/audio/format';
import { ProviderError } from '../../shared/contracts/errors';
import type { SttEvent, SttSession, SttSessionOptions } from '../../shared/contracts/stt';
import type { TtsEvent, TtsStreamOptions } from '../../shared/contracts/tts';
import { createAzureStt, createAzureTts } from '../../shared/providers/azure';
import { azureCloseError, azureHandshakeError } from '../../shared/providers/azure/connection';
import { AzureFramingError, decodeMessage, encodeBinaryMessage, encodeTextMessage, newRequestId, type AzureMessage } from '../../shared/providers/azure/framing';
import { createAzureSttWire, phraseEvents, recognitionStatusOutcome, streamWavHeader } from '../../shared/providers/azure/stt-wire';
import { AZURE_TTS_FORMATS, azureOutputFormat, azureSsml, createAzureTtsWire, escapeXml, wordBoundaries } from '../../shared/providers/azure/tts-wire';
import type { SttWireEvent } from '../../shared/providers/streaming/stt-wire';
import type { TtsWireEvent } from '../../shared/providers/streaming/tts-wire';
import { splitWords, synthesizeWords } from '../fakes/tones';
import { heardWords } from './conformance/tts-suite';
import { startAzureFake, type AzureFakeServer } from './fakes/azure';

const signal = new AbortController().signal;
const sttOptions = (over: Partial<SttSessionOptions> = {}): SttSessionOptions => ({ language: 'en-US', apiKey: 'k-1', options: { region: 'westeurope' }, signal, ...over });
const ttsOptions = (over: Partial<TtsStreamOptions> = {}): TtsStreamOptions => ({
  language: 'en-US',
  format: PIPELINE_FORMAT,
  apiKey: 'k-1',
  options: { region: 'westeurope' },
  signal,
  ...over,
});
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJyZWdpb24iOiJ3ZXN0ZXVyb3BlIn0.c2ln';

function thrown(fn: () => unknown): ProviderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

function decoded(data: string | Uint8Array): AzureMessage {
  const m = decodeMessage(data);
  if (m instanceof AzureFramingError) throw new Error(m.message);
  return m;
}

/** A server text message as the service writes it (`Name:value`, no space). */
function server(path: string, requestId: string | undefined, body: unknown): string {
  return `${requestId ? `X-RequestId:${requestId}\r\n` : ''}Content-Type:application/json; charset=utf-8\r\nPath:${path}\r\n\r\n${typeof body === 'string' ? body : JSON.stringify(body)}`;
}

function serverAudio(requestId: string, payload: Uint8Array): Uint8Array {
  return encodeBinaryMessage(
    [
      ['X-RequestId', requestId],
      ['X-StreamId', 'S1'],
      ['Path', 'audio'],
    ],
    payload,
  );
}

const isProtocolError = (events: readonly (SttWireEvent | TtsWireEvent)[]) => events.length === 1 && events[0]!.type === 'error' && (events[0] as { error: ProviderError }).error.kind === 'protocol';

// ---- framing ------------------------------------------------------------------------------------------------------

describe('azure framing', () => {
  it('text messages round-trip: header lines, a blank line, the body', () => {
    const wire = encodeTextMessage(
      [
        ['Path', 'speech.config'],
        ['X-RequestId', 'ABC'],
        ['Content-Type', 'application/json'],
      ],
      '{"a":1}\r\n\r\nnot a separator',
    );
    expect(wire).toBe('Path: speech.config\r\nX-RequestId: ABC\r\nContent-Type: application/json\r\n\r\n{"a":1}\r\n\r\nnot a separator');
    const m = decoded(wire);
    expect(m).toEqual({
      kind: 'text',
      path: 'speech.config',
      requestId: 'ABC',
      headers: { path: 'speech.config', 'x-requestid': 'ABC', 'content-type': 'application/json' },
      body: '{"a":1}\r\n\r\nnot a separator',
    });
  });

  it('binary messages round-trip: 2-byte big-endian header length, ASCII headers, the payload', () => {
    const payload = new Uint8Array(300).map((_, i) => i & 0xff);
    const wire = encodeBinaryMessage(
      [
        ['Path', 'audio'],
        ['X-RequestId', 'R1'],
      ],
      payload,
    );
    const headerText = 'Path: audio\r\nX-RequestId: R1\r\n';
    expect([wire[0], wire[1]]).toEqual([headerText.length >> 8, headerText.length & 0xff]);
    expect(new TextDecoder().decode(wire.subarray(2, 2 + headerText.length))).toBe(headerText);
    const m = decoded(wire);
    expect(m.kind).toBe('binary');
    expect(m.path).toBe('audio');
    expect(m.requestId).toBe('R1');
    expect(m.body).toEqual(payload);
    // An empty payload is the end-of-audio message.
    expect(decoded(encodeBinaryMessage([['Path', 'audio']], new Uint8Array(0))).body).toEqual(new Uint8Array(0));
    // A header block longer than 255 bytes uses the high byte.
    const long = decoded(encodeBinaryMessage([['Path', 'audio'], ['X-Long', 'x'.repeat(400)]], payload));
    expect(long.headers['x-long']).toHaveLength(400);
    expect(long.body).toEqual(payload);
  });

  it('decodes the service style: no space after the colon, mixed-case Path lower-cased, values with colons kept', () => {
    const m = decoded('X-RequestId:5FF045681350489AAF1CD740EE5ACDDD\r\nPath:speech.startDetected\r\nX-Timestamp:2024-01-01T00:00:00.000Z\r\n\r\n{"Offset":1}');
    expect(m.path).toBe('speech.startdetected');
    expect(m.requestId).toBe('5FF045681350489AAF1CD740EE5ACDDD');
    expect(m.headers['x-timestamp']).toBe('2024-01-01T00:00:00.000Z');
    // Headers only, no body after the blank line.
    expect(decoded('Path:turn.end\r\n\r\n').body).toBe('');
    expect(decoded('Path:turn.end\r\n').body).toBe('');
  });

  it('malformed frames are typed errors, never throws', () => {
    const bad: (string | Uint8Array)[] = [
      '{"type":',
      '',
      'Path: turn.end no separator',
      'no colon here\r\n\r\n{}',
      'Content-Type: application/json\r\n\r\n{}', // no Path
      'Bad Name: x\r\n\r\n{}',
      new Uint8Array([]),
      new Uint8Array([0x00]),
      new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
      new Uint8Array([0x00, 0x04, 0xff, 0xfe, 0x3a, 0x00]),
      encodeBinaryMessage([['X-RequestId', 'R']], new Uint8Array([1])), // no Path
    ];
    for (const data of bad) expect(decodeMessage(data), String(data)).toBeInstanceOf(AzureFramingError);
  });

  it('encoding refuses headers that would corrupt the frame; request ids are 32 upper-case hex digits', () => {
    expect(() => encodeTextMessage([['Path', 'a\r\nPath: b']], '')).toThrow(RangeError);
    expect(() => encodeTextMessage([['Bad Name', 'x']], '')).toThrow(RangeError);
    expect(() => encodeBinaryMessage([['Path', 'é']], new Uint8Array(0))).toThrow(RangeError);
    expect(() => encodeBinaryMessage([['X', 'x'.repeat(70_000)]], new Uint8Array(0))).toThrow(RangeError);
    const ids = new Set(Array.from({ length: 50 }, newRequestId));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(/^[0-9A-F]{32}$/);
  });
});

// ---- STT wire -----------------------------------------------------------------------------------------------------

describe('azure STT wire: connect', () => {
  it('conversation mode, detailed format with word timestamps, masked profanity, the key header and a connection id', () => {
    const { url, headers } = createAzureSttWire().connect(sttOptions());
    const u = new URL(url);
    expect(`${u.protocol}//${u.host}${u.pathname}`).toBe('wss://westeurope.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1');
    expect(Object.fromEntries(u.searchParams)).toEqual({ language: 'en-US', format: 'detailed', profanity: 'masked', wordLevelTimestamps: 'true' });
    expect(headers?.['Ocp-Apim-Subscription-Key']).toBe('k-1');
    expect(headers?.['X-ConnectionId']).toMatch(/^[0-9A-F]{32}$/);
    expect(headers).not.toHaveProperty('Authorization');
  });

  it('options: mode, simple format, profanity; sovereign clouds; endpoint with a path prefix; a JWT goes as a bearer token', () => {
    const wire = createAzureSttWire();
    const simple = new URL(wire.connect(sttOptions({ language: 'de-DE', options: { region: 'westeurope', mode: 'interactive', format: 'simple', profanity: 'raw' } })).url);
    expect(simple.pathname).toBe('/speech/recognition/interactive/cognitiveservices/v1');
    expect(Object.fromEntries(simple.searchParams)).toEqual({ language: 'de-DE', format: 'simple', profanity: 'raw' });
    expect(new URL(wire.connect(sttOptions({ options: { region: 'chinaeast2' } })).url).host).toBe('chinaeast2.stt.speech.azure.cn');
    expect(new URL(wire.connect(sttOptions({ options: { region: 'usgovvirginia' } })).url).host).toBe('usgovvirginia.stt.speech.azure.us');
    const custom = wire.connect(sttOptions({ options: {}, endpoint: 'https://my-speech.cognitiveservices.azure.com/stt/' })).url;
    expect(custom.split('?')[0]).toBe('wss://my-speech.cognitiveservices.azure.com/stt/speech/recognition/conversation/cognitiveservices/v1');
    expect(wire.connect(sttOptions({ endpoint: 'http://127.0.0.1:9999' })).url.startsWith('ws://127.0.0.1:9999/speech/')).toBe(true);
    const bearer = wire.connect(sttOptions({ apiKey: JWT })).headers!;
    expect(bearer.Authorization).toBe(`Bearer ${JWT}`);
    expect(bearer).not.toHaveProperty('Ocp-Apim-Subscription-Key');
  });

  it('a missing key is a non-retryable auth error naming the provider; no region, bad options or endpoint are bad requests', () => {
    const wire = createAzureSttWire();
    const missing = thrown(() => wire.connect(sttOptions({ apiKey: undefined })));
    expect(missing).toMatchObject({ code: 'AZURE_SPEECH_AUTH', retryable: false, kind: 'auth' });
    expect(missing.message).toContain('azure-speech-service');
    expect(thrown(() => wire.connect(sttOptions({ options: {} })))).toMatchObject({ code: 'AZURE_SPEECH_NO_REGION', kind: 'bad-request', retryable: false });
    // The runtime's default region serves blocks without one; a block's own region wins.
    expect(new URL(createAzureSttWire({ region: 'eastus' }).connect(sttOptions({ options: {} })).url).host).toBe('eastus.stt.speech.microsoft.com');
    expect(new URL(createAzureSttWire({ region: 'eastus' }).connect(sttOptions()).url).host).toBe('westeurope.stt.speech.microsoft.com');
    expect(createAzureTtsWire({ region: 'eastus' }).connect(ttsOptions({ options: {} })).url).toBe('wss://eastus.tts.speech.microsoft.com/cognitiveservices/websocket/v1');
    expect(thrown(() => wire.connect(sttOptions({ options: { region: 'West Europe' } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => wire.connect(sttOptions({ options: { region: 'westeurope', mode: 'batch' } })))).toMatchObject({ kind: 'bad-request' });
    expect(thrown(() => wire.connect(sttOptions({ endpoint: 'not a url' })))).toMatchObject({ kind: 'bad-request' });
  });
});

describe('azure STT wire: client messages and turns', () => {
  const pcm = (bytes: number) => new Uint8Array(bytes).fill(7);

  it('open: speech.config then the WAV header alone, under one request id', () => {
    const wire = createAzureSttWire();
    const [config, header, ...rest] = wire.open!(sttOptions({ options: { region: 'westeurope', mode: 'dictation' } }));
    expect(rest).toEqual([]);
    const c = decoded(config!);
    expect(c.kind).toBe('text');
    expect(c.path).toBe('speech.config');
    expect(c.requestId).toMatch(/^[0-9A-F]{32}$/);
    expect(c.headers['x-timestamp']).toMatch(/^\d{4}-\d\d-\d\dT/);
    const body = JSON.parse(c.body as string) as { context: { system: unknown; os: unknown; audio: { source: { samplerate: number } } }; recognition: string };
    expect(body.context.audio.source.samplerate).toBe(16000);
    expect(body.recognition).toBe('dictation');
    const h = decoded(header!);
    expect(h).toMatchObject({ kind: 'binary', path: 'audio', requestId: c.requestId });
    expect(h.headers['content-type']).toBe('audio/x-wav');
    expect(h.body).toEqual(streamWavHeader());
    const wav = new DataView(streamWavHeader().buffer);
    expect([wav.getUint16(20, true), wav.getUint16(22, true), wav.getUint32(24, true), wav.getUint16(34, true)]).toEqual([1, 1, 16000, 16]);
  });

  it('audio goes as binary audio messages of the turn; finalize ends the turn with an empty body; the next audio opens a new turn with its WAV header in front', () => {
    const wire = createAzureSttWire();
    const first = decoded(wire.open!(sttOptions())[0]!).requestId!;
    expect(wire.finalize, 'nothing to finalize before audio').toBeUndefined();
    expect(wire.closeMessage, 'nothing to finish before audio').toBeUndefined();
    const a = decoded(wire.audio(pcm(640)));
    expect(a).toMatchObject({ kind: 'binary', path: 'audio', requestId: first, body: pcm(640) });
    expect(a.headers).not.toHaveProperty('content-type');
    const end = decoded(wire.finalize!());
    expect(end).toMatchObject({ path: 'audio', requestId: first });
    expect((end.body as Uint8Array).byteLength).toBe(0);
    expect(wire.finalize, 'the turn is over: a second finalize has nothing to flush').toBeUndefined();
    const next = decoded(wire.audio(pcm(320)));
    expect(next.requestId).not.toBe(first);
    expect(next.requestId).toMatch(/^[0-9A-F]{32}$/);
    expect(next.headers['content-type']).toBe('audio/x-wav');
    expect(next.body).toEqual(new Uint8Array([...streamWavHeader(), ...pcm(320)]));
    expect(decoded(wire.audio(pcm(320))).requestId).toBe(next.requestId);
    const close = decoded(wire.closeMessage!());
    expect(close).toMatchObject({ path: 'audio', requestId: next.requestId });
    expect((close.body as Uint8Array).byteLength).toBe(0);
  });

  it('turn.end answers a finalize with finalized, the close with closed; a turn the service ends makes the next audio open a new turn', () => {
    const wire = createAzureSttWire();
    const t1 = decoded(wire.open!(sttOptions())[0]!).requestId!;
    wire.audio(pcm(640));
    wire.finalize!();
    expect(wire.decode(server('turn.end', t1, {}))).toEqual([{ type: 'finalized' }]);
    const t2 = decoded(wire.audio(pcm(640))).requestId!;
    // Interactive mode: the service ends the turn after one phrase.
    expect(wire.decode(server('turn.end', t2, {}))).toEqual([]);
    expect(wire.closeMessage).toBeUndefined();
    const t3 = decoded(wire.audio(pcm(640)));
    expect(t3.requestId).not.toBe(t2);
    expect(t3.headers['content-type']).toBe('audio/x-wav');
    wire.closeMessage!();
    expect(wire.decode(server('turn.end', t3.requestId, {}))).toEqual([{ type: 'closed' }]);
    // A turn.end of an unknown request is ignored.
    expect(wire.decode(server('turn.end', 'F'.repeat(32), {}))).toEqual([]);
  });

  it('a reconnect (open again) starts over: new config, new turn, stream time from zero', () => {
    const wire = createAzureSttWire();
    const t1 = decoded(wire.open!(sttOptions())[0]!).requestId!;
    wire.audio(pcm(32_000)); // 1 s
    const t2 = decoded(wire.open!(sttOptions())[1]!).requestId!;
    expect(t2).not.toBe(t1);
    const phrase = { RecognitionStatus: 'Success', DisplayText: 'Hi.', Offset: 2_000_000, Duration: 1_000_000 };
    expect(wire.decode(server('speech.phrase', t2, phrase))).toEqual([{ type: 'final', text: 'Hi.', audioEndMs: 300 }]);
  });
});

describe('azure STT wire: server messages', () => {
  const detailed = (over: Record<string, unknown> = {}) => ({
    RecognitionStatus: 'Success',
    Offset: 5_000_000,
    Duration: 12_000_000,
    DisplayText: 'Hello world.',
    NBest: [
      {
        Confidence: 0.87,
        Lexical: 'hello world',
        ITN: 'hello world',
        MaskedITN: 'hello world',
        Display: 'Hello world.',
        Words: [
          { Word: 'hello', Offset: 5_000_000, Duration: 4_000_000, Confidence: 0.9 },
          { Word: 'world', Offset: 10_000_000, Duration: 7_000_000 },
        ],
      },
    ],
    ...over,
  });

  it('every kind: turn.start, startDetected, hypothesis, fragment, phrase, endDetected, turn.end, and newer ones ignored', () => {
    const wire = createAzureSttWire();
    const id = decoded(wire.open!(sttOptions())[0]!).requestId!;
    expect(wire.decode(server('turn.start', id, { context: { serviceTag: 'x' } }))).toEqual([]);
    expect(wire.decode(server('speech.startDetected', id, { Offset: 100 }))).toEqual([{ type: 'speechStarted' }]);
    expect(wire.decode(server('speech.hypothesis', id, { Text: 'hello', Offset: 5_000_000, Duration: 4_000_000 }))).toEqual([{ type: 'interim', text: 'hello' }]);
    expect(wire.decode(server('speech.fragment', id, { Text: 'hello wor', Offset: 0, Duration: 0 }))).toEqual([{ type: 'interim', text: 'hello wor' }]);
    expect(wire.decode(server('speech.hypothesis', id, { Text: ' ', Offset: 0, Duration: 0 }))).toEqual([]);
    expect(wire.decode(server('speech.phrase', id, detailed()))).toEqual([
      {
        type: 'final',
        text: 'Hello world.',
        confidence: 0.87,
        words: [
          { word: 'hello', startMs: 500, endMs: 900, confidence: 0.9 },
          { word: 'world', startMs: 1000, endMs: 1700 },
        ],
        audioEndMs: 1700,
      },
    ]);
    expect(wire.decode(server('speech.phrase', id, { RecognitionStatus: 'Success', DisplayText: 'Simple.', Offset: 0, Duration: 10_000 }))).toEqual([
      { type: 'final', text: 'Simple.', audioEndMs: 1 },
    ]);
    expect(wire.decode(server('speech.endDetected', id, { Offset: 20_000_000 }))).toEqual([]);
    expect(wire.decode(server('speech.keyword', id, { Status: 'Accepted' }))).toEqual([]);
    expect(wire.decode(server('turn.end', id, {}))).toEqual([]);
  });

  it('offsets of a later turn are shifted by where that turn began in the connection audio', () => {
    const wire = createAzureSttWire();
    const t1 = decoded(wire.open!(sttOptions())[0]!).requestId!;
    wire.audio(new Uint8Array(64_000)); // 2 s
    wire.finalize!();
    const t2 = decoded(wire.audio(new Uint8Array(640))).requestId!;
    const [fromT1] = wire.decode(server('speech.phrase', t1, detailed()));
    const [fromT2] = wire.decode(server('speech.phrase', t2, detailed()));
    expect(fromT1).toMatchObject({ audioEndMs: 1700, words: [{ startMs: 500 }, { startMs: 1000 }] });
    expect(fromT2).toMatchObject({ audioEndMs: 3700, words: [{ startMs: 2500 }, { startMs: 3000 }] });
    // A phrase of a turn the wire does not know: no audioEndMs (the base keeps its safety margin).
    expect(wire.decode(server('speech.phrase', 'E'.repeat(32), detailed()))[0]).not.toHaveProperty('audioEndMs');
  });

  it('RecognitionStatus: Success final; NoMatch/InitialSilenceTimeout/BabbleTimeout/EndOfDictation nothing; Error/TooManyRequests retryable; BadRequest/Forbidden fatal; unknown a protocol error', () => {
    expect(recognitionStatusOutcome('Success')).toBe('final');
    for (const s of ['NoMatch', 'InitialSilenceTimeout', 'BabbleTimeout', 'EndOfDictation']) {
      expect(recognitionStatusOutcome(s)).toBe('ignore');
      expect(phraseEvents({ RecognitionStatus: s, Offset: 0, Duration: 0 }, 0)).toEqual([]);
    }
    const expected: Record<string, Partial<ProviderError>> = {
      Error: { retryable: true, kind: 'unavailable' },
      TooManyRequests: { retryable: true, kind: 'rate-limit' },
      BadRequest: { retryable: false, kind: 'bad-request' },
      Forbidden: { retryable: false, kind: 'auth' },
      Whatever: { retryable: false, kind: 'protocol' },
    };
    for (const [status, shape] of Object.entries(expected)) {
      const outcome = recognitionStatusOutcome(status);
      expect(outcome, status).toBeInstanceOf(ProviderError);
      expect(outcome).toMatchObject(shape);
      expect(phraseEvents({ RecognitionStatus: status }, 0)).toEqual([{ type: 'error', error: outcome }]);
    }
    // Success with nothing to say is no final.
    expect(phraseEvents({ RecognitionStatus: 'Success', DisplayText: '', Offset: 0, Duration: 0 }, 0)).toEqual([]);
  });

  it('malformed server messages are protocol errors (ignored by the base), never throws', () => {
    const wire = createAzureSttWire();
    const id = decoded(wire.open!(sttOptions())[0]!).requestId!;
    const bad: (string | Uint8Array)[] = [
      '{"type":',
      '{"type":"no-such-message","x":[1,2]}',
      new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
      server('speech.phrase', id, '{not json'),
      server('speech.phrase', id, { DisplayText: 'no status' }),
      server('speech.phrase', id, { RecognitionStatus: 'Success', NBest: [{ Words: [{ Word: 'x' }] }] }),
      server('speech.hypothesis', id, { Offset: 1 }),
      serverAudio(id, new Uint8Array([1, 2])),
    ];
    for (const data of bad) expect(isProtocolError(wire.decode(data)), String(data).slice(0, 40)).toBe(true);
  });

  it('closes and refusals: 1007 and 1008 are our fault (fatal), 1011/1013/1000/1006 are retried; 401/403 auth, 429/5xx retried', () => {
    const where = 'azure-speech-service STT';
    expect(azureCloseError(1007, 'Invalid payload: audio format', where)).toMatchObject({ retryable: false, kind: 'bad-request' });
    expect(azureCloseError(1008, 'Authentication failed: invalid subscription key', where)).toMatchObject({ retryable: false, kind: 'auth' });
    expect(azureCloseError(1008, 'Quota exceeded', where)).toMatchObject({ retryable: true, kind: 'rate-limit' });
    expect(azureCloseError(1008, 'Policy', where)).toMatchObject({ retryable: false, kind: 'bad-request' });
    expect(azureCloseError(1011, 'Internal server error', where)).toMatchObject({ retryable: true, kind: 'unavailable' });
    expect(azureCloseError(1013, 'ResourceExhausted', where)).toMatchObject({ retryable: true, kind: 'rate-limit' });
    expect(azureCloseError(1000, 'Exceeded maximum websocket connection idle duration(> 300000ms)', where)).toMatchObject({ retryable: true, kind: 'timeout' });
    expect(azureCloseError(1006, '', where)).toMatchObject({ retryable: true, kind: 'unavailable' });
    const denied = azureHandshakeError(401, JSON.stringify({ error: { code: '401', message: 'Access denied due to invalid subscription key.' } }), where);
    expect(denied).toMatchObject({ retryable: false, kind: 'auth' });
    expect(denied.message).toContain('Access denied due to invalid subscription key.');
    expect(azureHandshakeError(403, '', where)).toMatchObject({ retryable: false, kind: 'auth' });
    expect(azureHandshakeError(429, 'Too many', where)).toMatchObject({ retryable: true, kind: 'rate-limit' });
    expect(azureHandshakeError(503, '', where)).toMatchObject({ retryable: true, kind: 'unavailable' });
    expect(azureHandshakeError(undefined, '', where)).toMatchObject({ retryable: true });
    expect(azureHandshakeError(400, 'bad language', where)).toMatchObject({ retryable: false, kind: 'bad-request' });
  });
});

// ---- TTS wire -----------------------------------------------------------------------------------------------------

describe('azure TTS wire', () => {
  it('output formats map to the raw format strings; others are refused naming the choices', () => {
    expect(azureOutputFormat(PIPELINE_FORMAT)).toBe('raw-16khz-16bit-mono-pcm');
    expect(azureOutputFormat({ encoding: 'pcm16', sampleRateHz: 24_000 })).toBe('raw-24khz-16bit-mono-pcm');
    expect(azureOutputFormat(MULAW_8K)).toBe('raw-8khz-8bit-mono-mulaw');
    expect(azureOutputFormat({ encoding: 'alaw', sampleRateHz: 8000 })).toBe('raw-8khz-8bit-mono-alaw');
    for (const f of AZURE_TTS_FORMATS) expect(azureOutputFormat(f)).toMatch(/^raw-/);
    const refused = thrown(() => azureOutputFormat({ encoding: 'mulaw', sampleRateHz: 16_000 }));
    expect(refused).toMatchObject({ code: 'AZURE_SPEECH_FORMAT', retryable: false, kind: 'bad-request' });
    expect(refused.message).toContain('raw-8khz-8bit-mono-mulaw');
  });

  it('connect: the websocket/v1 path, key header and connection id; a missing key names the provider', () => {
    const wire = createAzureTtsWire();
    const { url, headers } = wire.connect(ttsOptions());
    expect(url).toBe('wss://westeurope.tts.speech.microsoft.com/cognitiveservices/websocket/v1');
    expect(headers?.['Ocp-Apim-Subscription-Key']).toBe('k-1');
    expect(headers?.['X-ConnectionId']).toMatch(/^[0-9A-F]{32}$/);
    expect(wire.connect(ttsOptions({ endpoint: 'https://my.cognitiveservices.azure.com/tts' })).url).toBe('wss://my.cognitiveservices.azure.com/tts/cognitiveservices/websocket/v1');
    expect(thrown(() => wire.connect(ttsOptions({ apiKey: undefined })))).toMatchObject({ kind: 'auth', retryable: false, message: expect.stringContaining('azure-speech-service') });
    expect(thrown(() => wire.connect(ttsOptions({ format: { encoding: 'pcm16', sampleRateHz: 11_025 } })))).toMatchObject({ kind: 'bad-request' });
    // Voice and format travel per request: one pooled socket serves any of them, keys never in clear.
    expect(wire.connectionKey(ttsOptions({ voice: 'a', format: MULAW_8K }))).toBe(wire.connectionKey(ttsOptions({ voice: 'b' })));
    expect(wire.connectionKey(ttsOptions())).not.toBe(wire.connectionKey(ttsOptions({ apiKey: 'k-2' })));
    expect(wire.connectionKey(ttsOptions())).not.toContain('k-1');
    const config = decoded(wire.open!(ttsOptions())[0]!);
    expect(config.path).toBe('speech.config');
    expect(JSON.parse(config.body as string)).toHaveProperty('context.system');
  });

  it('each piece is one turn: synthesis.context (format, word boundaries) and escaped SSML under a new request id', () => {
    const wire = createAzureTtsWire();
    const u = wire.utterance('ctx-1', ttsOptions({ format: MULAW_8K, language: 'en-GB' }));
    expect(u.begin()).toEqual([]);
    const [context, ssml] = u.text(' Fish & "chips" <now>. ', 0).map(decoded);
    expect(context!.path).toBe('synthesis.context');
    expect(ssml!.path).toBe('ssml');
    expect(ssml!.requestId).toBe(context!.requestId);
    expect(ssml!.headers['content-type']).toBe('application/ssml+xml');
    expect(JSON.parse(context!.body as string)).toMatchObject({ synthesis: { audio: { outputFormat: 'raw-8khz-8bit-mono-mulaw', metadataOptions: { wordBoundaryEnabled: true } } } });
    expect(ssml!.body).toBe(
      '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-GB"><voice name="en-US-AvaMultilingualNeural">Fish &amp; &quot;chips&quot; &lt;now&gt;.</voice></speak>',
    );
    const next = u.text('More.', 1).map(decoded);
    expect(next[0]!.requestId).not.toBe(context!.requestId);
    expect(u.end()).toEqual([]);
    expect(wire.lastPieceEndsUtterance).toBe(true);
    expect(wire.capabilities).toMatchObject({ multiplexed: false, cancelWithoutClosing: false, wordTimings: true, keepAlive: false, edgeCapable: true });
    expect(escapeXml("a'b\u0001")).toBe('a&apos;b');
    expect(azureSsml('hi', "x'y", 'en-US')).toContain('name="x&apos;y"');
  });

  it('decode: audio without its headers and with its piece index, word boundaries shifted by earlier pieces, turn.end → pieceDone', () => {
    const wire = createAzureTtsWire();
    const u = wire.utterance('ctx-1', ttsOptions());
    const r0 = decoded(u.text('hello there.', 0)[0]!).requestId!;
    const r1 = decoded(u.text('what is it.', 1)[0]!).requestId!;
    const pcm = new Uint8Array(32_000).fill(3); // 1 s at 16 kHz
    expect(wire.decode(server('turn.start', r0, { context: { serviceTag: 't' } }))).toEqual([]);
    expect(wire.decode(server('response', r0, { audio: { type: 'inline', streamId: 'S1' } }))).toEqual([]);
    const boundary = (text: string, offset: number, type = 'WordBoundary') => ({
      Metadata: [{ Type: 'WordBoundary', Data: { Offset: offset, Duration: 2_000_000, text: { Text: text, Length: text.length, BoundaryType: type } } }],
    });
    expect(wire.decode(server('audio.metadata', r0, boundary('hello', 500_000)))).toEqual([{ type: 'words', contextId: 'ctx-1', words: [{ word: 'hello', startMs: 50, endMs: 250 }] }]);
    expect(wire.decode(server('audio.metadata', r0, boundary('.', 4_000_000, 'PunctuationBoundary')))).toEqual([]);
    const audio = wire.decode(serverAudio(r0, pcm));
    expect(audio).toEqual([{ type: 'audio', contextId: 'ctx-1', data: pcm, textIndex: 0 }]);
    expect(wire.decode(serverAudio(r0, new Uint8Array(0)))).toEqual([]);
    expect(wire.decode(server('audio.metadata', r0, { Metadata: [{ Type: 'SessionEnd', Data: { Offset: 1 } }] }))).toEqual([]);
    expect(wire.decode(server('turn.end', r0, {}))).toEqual([{ type: 'pieceDone', contextId: 'ctx-1' }]);
    wire.decode(server('turn.start', r1, {}));
    expect(wire.decode(server('audio.metadata', r1, boundary('what', 1_000_000)))).toEqual([{ type: 'words', contextId: 'ctx-1', words: [{ word: 'what', startMs: 1100, endMs: 1300 }] }]);
    expect(wire.decode(serverAudio(r1, pcm.subarray(0, 100)))).toMatchObject([{ type: 'audio', textIndex: 1 }]);
    expect(wire.decode(server('turn.end', r1, {}))).toEqual([{ type: 'pieceDone', contextId: 'ctx-1' }]);
    // Done requests, and requests that are not ours, are ignored.
    expect(wire.decode(serverAudio(r1, pcm))).toEqual([]);
    expect(wire.decode(server('turn.end', r1, {}))).toEqual([]);
  });

  it('cancel closes the socket and forgets the utterance: its late frames are ignored', () => {
    const wire = createAzureTtsWire();
    const u = wire.utterance('ctx-1', ttsOptions());
    const r0 = decoded(u.text('hello.', 0)[0]!).requestId!;
    expect(u.cancel()).toBe('close-socket');
    expect(wire.decode(serverAudio(r0, new Uint8Array(10)))).toEqual([]);
    expect(wire.decode(server('turn.end', r0, {}))).toEqual([]);
  });

  it('malformed server messages are protocol errors, never throws', () => {
    const wire = createAzureTtsWire();
    const r0 = decoded(wire.utterance('c', ttsOptions()).text('hi', 0)[0]!).requestId!;
    for (const data of ['{"type":', new Uint8Array([0xde, 0xad, 0xbe, 0xef]), server('audio.metadata', r0, '{oops'), server('audio.metadata', r0, { Metadata: 'x' }), encodeBinaryMessage([['Path', 'weird']], new Uint8Array(1))]) {
      expect(isProtocolError(wire.decode(data)), String(data).slice(0, 30)).toBe(true);
    }
    expect(wordBoundaries({ Metadata: [{ Type: 'Viseme', Data: { Offset: 1, VisemeId: 3 } }] })).toEqual([]);
  });
});

// ---- the adapters against the fake ---------------------------------------------------------------------------------

describe('azure adapters against the fake', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });
  const connect = createWsSocketFactory();
  const retry = { attempts: 3, baseDelayMs: 20 };
  const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

  async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await delay(10);
    }
  }

  async function fakeServer(): Promise<AzureFakeServer> {
    const fake = await startAzureFake();
    cleanups.push(() => fake.close());
    return fake;
  }

  async function openStt(fake: AzureFakeServer, over: Partial<SttSessionOptions> = {}): Promise<{ session: SttSession; events: SttEvent[] }> {
    const events: SttEvent[] = [];
    const abort = new AbortController();
    const session = await createAzureStt({ connect, retry }).open(
      { language: 'en-US', options: { region: 'westeurope' }, endpoint: fake.endpoint, apiKey: fake.apiKey, signal: abort.signal, ...over },
      (e) => events.push(e),
    );
    cleanups.push(async () => {
      await session.close();
      abort.abort();
    });
    return { session, events };
  }

  async function say(session: SttSession, text: string, silenceMs = 0): Promise<void> {
    const { pcm } = synthesizeWords(splitWords(text), 16000);
    const all = new Int16Array(Math.ceil(pcm.length / 320) * 320 + silenceMs * 16);
    all.set(pcm);
    for (let at = 0, n = 0; at < all.length; at += 320, n++) {
      session.write({ format: PIPELINE_FORMAT, data: pcm16Bytes(all.subarray(at, at + 320)) });
      if (n % 4 === 3) await delay(5);
    }
  }

  const finals = (events: SttEvent[]) => events.flatMap((e) => (e.type === 'final' ? [e] : []));

  it('finalize twice: each ends a turn, the second turn opens with a new request id and WAV header, word times continue', async () => {
    const fake = await fakeServer();
    const { session, events } = await openStt(fake);
    await say(session, 'tell me');
    session.finalize();
    await until(() => finals(events).length === 1, 'the first final');
    await say(session, 'a joke');
    session.finalize();
    await until(() => finals(events).length === 2, 'the second final');
    const [f1, f2] = finals(events);
    expect(f1).toMatchObject({ text: 'Tell me.', confidence: 0.93 });
    expect(f2!.text).toBe('A joke.');
    expect(f2!.words![0]!.startMs).toBeGreaterThan(f1!.words!.at(-1)!.endMs);
    const audio = fake.connections[0]!.received.filter((f): f is Uint8Array => typeof f !== 'string').map(decoded);
    const ids = [...new Set(audio.map((m) => m.requestId))];
    expect(ids).toHaveLength(2);
    const opening = audio.filter((m) => m.headers['content-type'] === 'audio/x-wav');
    expect(opening.map((m) => m.requestId)).toEqual(ids);
    expect(audio.filter((m) => (m.body as Uint8Array).byteLength === 0).map((m) => m.requestId)).toEqual(ids);
    expect(fake.connections).toHaveLength(1);
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
  });

  it('close ends the open turn with an empty audio message, waits for turn.end, then closes with 1000', async () => {
    const fake = await fakeServer();
    const { session, events } = await openStt(fake);
    await say(session, 'goodbye');
    await session.close();
    // The final of audio not yet answered by silence arrives before the close completes.
    expect(finals(events).map((f) => f.text)).toEqual(['Goodbye.']);
    const record = fake.connections[0]!;
    await until(() => record.closeCode !== undefined, 'the close');
    expect(record.closeCode).toBe(1000);
    const last = decoded(record.received.at(-1)!);
    expect(last.path).toBe('audio');
    expect((last.body as Uint8Array).byteLength).toBe(0);
  });

  it('interactive mode: the service ends each turn after one phrase; the adapter opens a new turn for the next utterance', async () => {
    const fake = await fakeServer();
    const { session, events } = await openStt(fake, { options: { region: 'westeurope', mode: 'interactive' } });
    await say(session, 'hello', 400);
    await until(() => finals(events).length === 1, 'the first final');
    await delay(50); // turn.end reaches the adapter
    await say(session, 'goodbye', 400);
    await until(() => finals(events).length === 2, 'the second final');
    expect(finals(events).map((f) => f.text)).toEqual(['Hello.', 'Goodbye.']);
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
  });

  it('NoMatch yields no final; RecognitionStatus Error reconnects and replays, so the words still arrive; BadRequest ends the session', async () => {
    const fake = await fakeServer();
    const { session, events } = await openStt(fake);
    fake.control.nextPhraseStatus('NoMatch');
    await say(session, 'uh-huh', 400);
    await delay(150);
    expect(finals(events)).toEqual([]);
    fake.control.nextPhraseStatus('Error');
    await say(session, 'is it sunny', 400);
    await until(() => finals(events).some((f) => f.text === 'Is it sunny.'), 'the replayed final');
    expect(fake.connections).toHaveLength(2);
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    fake.control.nextPhraseStatus('BadRequest');
    await say(session, 'stop', 400);
    await until(() => events.some((e) => e.type === 'error'), 'the error');
    expect(events.filter((e) => e.type === 'error')).toEqual([{ type: 'error', error: expect.objectContaining({ retryable: false, kind: 'bad-request' }) }]);
  });

  it('an access token (JWT) is sent as Authorization: Bearer', async () => {
    const fake = await fakeServer();
    const { session, events } = await openStt(fake, { apiKey: fake.token });
    expect(fake.connections[0]!.headers.authorization).toBe(`Bearer ${fake.token}`);
    expect(fake.connections[0]!.headers).not.toHaveProperty('ocp-apim-subscription-key');
    await say(session, 'hi', 400);
    await until(() => finals(events).length === 1, 'the final');
  });

  function speakTts(fake: AzureFakeServer, pieces: string[], format: AudioFormat): { events: TtsEvent[]; done: () => boolean } {
    const tts = createAzureTts({ connect, retry });
    cleanups.push(() => tts.close());
    const events: TtsEvent[] = [];
    const stream = tts.stream(
      { language: 'en-US', format, endpoint: fake.endpoint, apiKey: fake.apiKey, options: { region: 'westeurope' }, signal: new AbortController().signal },
      (e) => events.push(e),
    );
    for (const p of pieces) stream.push(p);
    stream.end();
    return { events, done: () => events.some((e) => e.type === 'done' || e.type === 'error') };
  }

  it('TTS in μ-law: the words of every piece, word timings relative to the utterance across pieces', async () => {
    const fake = await fakeServer();
    const { events, done } = speakTts(fake, ['hello there.', 'sunny and warm.'], MULAW_8K);
    await until(done, 'the end');
    expect(events.at(-1)).toEqual({ type: 'done' });
    const audio = events.flatMap((e) => (e.type === 'audio' ? [e.data] : []));
    expect(heardWords(audio, MULAW_8K)).toEqual(['hello', 'there', 'sunny', 'and', 'warm']);
    const words = events.flatMap((e) => (e.type === 'words' ? e.words : []));
    expect(words.map((w) => w.word)).toEqual(['hello', 'there.', 'sunny', 'and', 'warm.']);
    const firstPieceMs = (synthesizeWords(['hello', 'there'], 8000).pcm.length / 8000) * 1000;
    expect(words[2]!.startMs).toBeGreaterThanOrEqual(Math.floor(firstPieceMs));
    for (let i = 1; i < words.length; i++) expect(words[i]!.startMs).toBeGreaterThan(words[i - 1]!.startMs);
  });

  it('TTS: a socket the service closes with 1007 fails the utterance with a non-retryable bad request', async () => {
    const fake = await fakeServer();
    fake.control.errorAfterAccept('bad-request');
    const { events, done } = speakTts(fake, ['hello.'], PIPELINE_FORMAT);
    await until(done, 'the error');
    expect(events).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'AZURE_SPEECH_BAD_REQUEST', retryable: false }) }]);
  });
});
