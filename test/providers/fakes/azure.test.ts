import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mulawDecode } from '../../../shared/audio/g711';
import { decodeWords, splitWords, synthesizeWords } from '../../fakes/tones';
import { parseAzureFrame, parseSsml, pcmAfterWavHeader, startAzureFake, type AzureFakeServer, type FakeAzureFrame } from './azure';
import { refusedWith } from './ws-test-client';

/** The Azure fake spoken to directly, with frames built here from the reference (§1.5, §2.5), not by the adapter. */

const STT = '/speech/recognition/conversation/cognitiveservices/v1?language=en-US&format=detailed&wordLevelTimestamps=true';
const TTS = '/cognitiveservices/websocket/v1';
let fake: AzureFakeServer;
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await fake?.close();
});

const id = () => randomUUID().replace(/-/g, '').toUpperCase();

function text(path: string, requestId: string, body: string, contentType = 'application/json'): string {
  return `Path: ${path}\r\nX-RequestId: ${requestId}\r\nX-Timestamp: ${new Date().toISOString()}\r\nContent-Type: ${contentType}\r\n\r\n${body}`;
}

function binary(path: string, requestId: string, payload: Uint8Array, contentType?: string): Uint8Array {
  const headers = Buffer.from(`Path: ${path}\r\nX-RequestId: ${requestId}\r\nX-Timestamp: ${new Date().toISOString()}\r\n${contentType ? `Content-Type: ${contentType}\r\n` : ''}`, 'latin1');
  return new Uint8Array(Buffer.concat([Buffer.from([headers.length >> 8, headers.length & 0xff]), headers, payload]));
}

function wavHeader(rate = 16000, channels = 1): Uint8Array {
  const b = Buffer.alloc(44);
  b.write('RIFF', 0, 'latin1');
  b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2 * channels, 28);
  b.writeUInt16LE(2 * channels, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  return new Uint8Array(b);
}

function speech(words: string, silenceMs = 0): Uint8Array {
  const { pcm } = synthesizeWords(splitWords(words), 16000);
  const out = new Int16Array(pcm.length + (silenceMs * 16000) / 1000);
  out.set(pcm);
  return new Uint8Array(out.buffer);
}

interface Client {
  readonly ws: WebSocket;
  readonly frames: FakeAzureFrame[];
  readonly closed: Promise<{ code: number; reason: string }>;
  path(path: string): FakeAzureFrame[];
  json(path: string): Record<string, unknown>[];
  waitFor(predicate: () => boolean, ms?: number): Promise<void>;
}

async function open(path: string, headers: Record<string, string> = { 'Ocp-Apim-Subscription-Key': fake.apiKey }): Promise<Client> {
  const ws = new WebSocket(`${fake.endpoint}${path}`, { headers });
  sockets.push(ws);
  const frames: FakeAzureFrame[] = [];
  ws.on('message', (data, isBinary) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const frame = parseAzureFrame(isBinary ? new Uint8Array(bytes) : bytes.toString('utf8'));
    if (!frame) throw new Error('the fake sent a frame that does not parse');
    frames.push(frame);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const pathOf = (f: FakeAzureFrame) => f.headers.path?.toLowerCase();
  return {
    ws,
    frames,
    closed,
    path: (p) => frames.filter((f) => pathOf(f) === p.toLowerCase()),
    json: (p) => frames.filter((f) => pathOf(f) === p.toLowerCase()).map((f) => JSON.parse(f.body as string) as Record<string, unknown>),
    async waitFor(predicate, ms = 3000) {
      const deadline = Date.now() + ms;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out; frames: ${frames.map(pathOf).join(', ')}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

const config = (requestId: string) => text('speech.config', requestId, JSON.stringify({ context: { system: { name: 'test' } } }));

function sendAudio(client: Client, requestId: string, audio: Uint8Array, chunkBytes = 3200): void {
  for (let at = 0; at < audio.length; at += chunkBytes) client.ws.send(binary('audio', requestId, audio.subarray(at, at + chunkBytes)));
}

describe('Azure fake: handshake', () => {
  it('accepts the key header, a bearer token and the query fallback; refuses others with 401 and the gateway message', async () => {
    fake = await startAzureFake();
    const url = `${fake.endpoint}${STT}`;
    const refused = await refusedWith(url, { 'Ocp-Apim-Subscription-Key': 'nope' });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: '401' } });
    expect((await refusedWith(url)).status).toBe(401);
    expect((await refusedWith(url, { Authorization: 'Bearer not-the-token' })).status).toBe(401);
    await open(STT, { Authorization: `Bearer ${fake.token}` });
    await open(`${STT}&Ocp-Apim-Subscription-Key=${fake.apiKey}`, {});
    await open(TTS);
    expect((await refusedWith(`${fake.endpoint}/speech/recognition/conversation/cognitiveservices/v1`, { 'Ocp-Apim-Subscription-Key': fake.apiKey })).status).toBe(400);
    expect((await refusedWith(`${fake.endpoint}/nowhere`, { 'Ocp-Apim-Subscription-Key': fake.apiKey })).status).toBe(404);
  });

  it('refuses upgrades on demand, and closes accepted ones with the error close codes', async () => {
    fake = await startAzureFake();
    fake.control.refuseNext(429);
    expect((await refusedWith(`${fake.endpoint}${TTS}`, { 'Ocp-Apim-Subscription-Key': fake.apiKey })).status).toBe(429);
    fake.control.errorAfterAccept('rate-limit');
    expect(await (await open(TTS)).closed).toEqual({ code: 1013, reason: 'ResourceExhausted' });
    fake.control.errorAfterAccept('bad-request');
    expect((await (await open(STT)).closed).code).toBe(1007);
  });
});

describe('Azure fake: STT', () => {
  it('a turn: turn.start, startDetected, hypotheses, a detailed phrase with word ticks, then endDetected and turn.end at the end of audio', async () => {
    fake = await startAzureFake();
    const c = await open(STT);
    const turn = id();
    c.ws.send(config(turn));
    c.ws.send(binary('audio', turn, wavHeader(), 'audio/x-wav'));
    sendAudio(c, turn, speech('hello what is the weather', 400));
    await c.waitFor(() => c.path('speech.phrase').length === 1);
    c.ws.send(binary('audio', turn, new Uint8Array(0)));
    await c.waitFor(() => c.path('turn.end').length === 1);
    const paths = c.frames.map((f) => f.headers.path);
    expect(paths[0]).toBe('turn.start');
    expect(paths[1]).toBe('speech.startDetected');
    expect(paths.slice(2, 7)).toEqual(Array(5).fill('speech.hypothesis'));
    expect(paths.slice(7)).toEqual(['speech.phrase', 'speech.endDetected', 'turn.end']);
    expect(c.frames.every((f) => f.headers['x-requestid'] === turn)).toBe(true);
    expect(c.json('speech.hypothesis').at(-1)).toMatchObject({ Text: 'hello what is the weather' });
    const phrase = c.json('speech.phrase')[0]!;
    expect(phrase).toMatchObject({ RecognitionStatus: 'Success', DisplayText: 'Hello what is the weather.' });
    const best = (phrase.NBest as { Display: string; Confidence: number; Words: { Word: string; Offset: number; Duration: number }[] }[])[0]!;
    expect(best.Display).toBe('Hello what is the weather.');
    expect(best.Words.map((w) => w.Word)).toEqual(['hello', 'what', 'is', 'the', 'weather']);
    // Ticks of 100 ns: 'hello' starts at 0 and lasts about its tone (170 ms = 1.7e6 ticks).
    expect(best.Words[0]!.Offset).toBe(0);
    expect(best.Words[0]!.Duration).toBeGreaterThanOrEqual(1_600_000);
    expect(best.Words[1]!.Offset).toBeGreaterThan(best.Words[0]!.Offset + best.Words[0]!.Duration);
    expect((phrase.Offset as number) + (phrase.Duration as number)).toBe(best.Words[4]!.Offset + best.Words[4]!.Duration);
  });

  it('simple format; an empty audio message flushes; a new request id with a WAV header in front of its audio starts a new turn whose ticks restart', async () => {
    fake = await startAzureFake();
    const c = await open('/speech/recognition/conversation/cognitiveservices/v1?language=en-US&format=simple');
    const first = id();
    c.ws.send(config(first));
    c.ws.send(binary('audio', first, Buffer.concat([wavHeader(), speech('tell me')]), 'audio/x-wav'));
    c.ws.send(binary('audio', first, new Uint8Array(0)));
    await c.waitFor(() => c.path('turn.end').length === 1);
    const second = id();
    c.ws.send(binary('audio', second, Buffer.concat([wavHeader(), speech('a joke', 400)]), 'audio/x-wav'));
    await c.waitFor(() => c.path('speech.phrase').length === 2);
    const phrases = c.path('speech.phrase');
    expect(phrases.map((f) => f.headers['x-requestid'])).toEqual([first, second]);
    expect(c.json('speech.phrase').map((p) => p.DisplayText)).toEqual(['Tell me.', 'A joke.']);
    expect(c.json('speech.phrase')[1]).not.toHaveProperty('NBest');
    expect(c.json('speech.phrase')[1]!.Offset).toBe(0);
    expect(c.path('turn.start').map((f) => f.headers['x-requestid'])).toEqual([first, second]);
  });

  it('interactive mode ends the turn after one phrase and ignores the rest of its audio', async () => {
    fake = await startAzureFake();
    const c = await open('/speech/recognition/interactive/cognitiveservices/v1?language=en-US');
    const turn = id();
    c.ws.send(config(turn));
    c.ws.send(binary('audio', turn, wavHeader(), 'audio/x-wav'));
    sendAudio(c, turn, speech('hi', 400));
    sendAudio(c, turn, speech('goodbye', 400));
    await c.waitFor(() => c.path('turn.end').length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.json('speech.phrase').map((p) => p.DisplayText)).toEqual(['Hi.']);
  });

  it('RecognitionStatus on demand; malformed client frames, audio before speech.config, a bad WAV header or overlapping turns close with 1007', async () => {
    fake = await startAzureFake();
    const c = await open(STT);
    const turn = id();
    c.ws.send(config(turn));
    c.ws.send(binary('audio', turn, wavHeader(), 'audio/x-wav'));
    fake.control.nextPhraseStatus('NoMatch');
    sendAudio(c, turn, speech('hi', 400));
    await c.waitFor(() => c.path('speech.phrase').length === 1);
    expect(c.json('speech.phrase')[0]).toEqual({ RecognitionStatus: 'NoMatch', Offset: 0, Duration: expect.any(Number) });
    c.ws.send(binary('audio', id(), Buffer.concat([wavHeader(), speech('hi')]), 'audio/x-wav'));
    expect((await c.closed).code).toBe(1007);

    const noConfig = await open(STT);
    noConfig.ws.send(binary('audio', id(), wavHeader(), 'audio/x-wav'));
    expect(await noConfig.closed).toMatchObject({ code: 1007, reason: expect.stringContaining('speech.config') });

    const badWav = await open(STT);
    badWav.ws.send(config(id()));
    badWav.ws.send(binary('audio', id(), wavHeader(8000), 'audio/x-wav'));
    expect(await badWav.closed).toMatchObject({ code: 1007, reason: expect.stringContaining('16 kHz') });

    const garbage = await open(STT);
    garbage.ws.send('{"type":');
    expect((await garbage.closed).code).toBe(1007);

    const noId = await open(STT);
    noId.ws.send('Path: speech.config\r\n\r\n{}');
    expect(await noId.closed).toMatchObject({ code: 1007, reason: expect.stringContaining('X-RequestId') });
  });

  it('drops after N words without a close frame, and closes an idle socket with 1000', async () => {
    fake = await startAzureFake({ idleCloseMs: 150 });
    const idle = await open(STT);
    expect(await idle.closed).toMatchObject({ code: 1000, reason: expect.stringContaining('idle') });
    fake.control.dropAfterWords(2);
    const c = await open(STT);
    const turn = id();
    c.ws.send(config(turn));
    c.ws.send(binary('audio', turn, wavHeader(), 'audio/x-wav'));
    sendAudio(c, turn, speech('once upon a time'));
    expect((await c.closed).code).toBe(1006);
    expect(c.path('speech.hypothesis')).toHaveLength(1);
  });
});

describe('Azure fake: TTS', () => {
  const context = (format: string, wordBoundary = true) =>
    JSON.stringify({ synthesis: { audio: { metadataOptions: { wordBoundaryEnabled: wordBoundary }, outputFormat: format }, language: { autoDetection: false } } });
  const ssml = (body: string, voice = 'en-US-AvaMultilingualNeural') => `<speak version="1.0" xml:lang="en-US"><voice name="${voice}">${body}</voice></speak>`;

  it('requests are voiced one after another: turn.start, response, word boundaries, headered audio, empty audio, turn.end', async () => {
    fake = await startAzureFake();
    const c = await open(TTS);
    const [a, b] = [id(), id()];
    c.ws.send(config(a));
    c.ws.send(text('synthesis.context', a, context('raw-16khz-16bit-mono-pcm')));
    c.ws.send(text('ssml', a, ssml('hello there.'), 'application/ssml+xml'));
    c.ws.send(text('synthesis.context', b, context('raw-8khz-8bit-mono-mulaw', false)));
    c.ws.send(text('ssml', b, ssml('sunny &amp; warm'), 'application/ssml+xml'));
    await c.waitFor(() => c.path('turn.end').length === 2);
    const sequence = c.frames.map((f) => `${f.headers['x-requestid'] === a ? 'A' : 'B'}:${f.headers.path}`);
    const lastA = sequence.lastIndexOf('A:turn.end');
    expect(sequence.slice(0, lastA + 1).every((s) => s.startsWith('A:'))).toBe(true);
    expect(sequence.slice(0, 2)).toEqual(['A:turn.start', 'A:response']);
    expect(sequence.filter((s) => s === 'A:audio.metadata')).toHaveLength(2);
    expect(sequence.filter((s) => s === 'B:audio.metadata')).toHaveLength(0);
    const audioOf = (requestId: string) => c.frames.filter((f) => f.headers['x-requestid'] === requestId && f.headers.path === 'audio').map((f) => f.body as Uint8Array);
    expect(audioOf(a).at(-1)!.byteLength).toBe(0);
    const pcmA = Buffer.concat(audioOf(a));
    expect(decodeWords(new Int16Array(pcmA.buffer, pcmA.byteOffset, pcmA.byteLength >> 1), 16000)).toEqual(['hello', 'there']);
    const mulawB = Buffer.concat(audioOf(b));
    const pcmB = new Int16Array(mulawB.length);
    mulawDecode(new Uint8Array(mulawB), pcmB);
    expect(decodeWords(pcmB, 8000)).toEqual(['sunny', 'warm']);
    const boundary = c.json('audio.metadata')[1]! as { Metadata: { Type: string; Data: { Offset: number; text: { Text: string } } }[] };
    expect(boundary.Metadata[0]).toMatchObject({ Type: 'WordBoundary', Data: { text: { Text: 'there.', BoundaryType: 'WordBoundary' } } });
    expect(boundary.Metadata[0]!.Data.Offset).toBeGreaterThan(1_000_000);
  });

  it('closes with 1007 for bad SSML, an unknown format, a missing context or speech.config', async () => {
    fake = await startAzureFake();
    for (const [messages, reason] of [
      [[text('synthesis.context', 'A'.repeat(32), context('raw-16khz-16bit-mono-pcm'))], 'speech.config'],
      [[config('B'.repeat(32)), text('synthesis.context', 'B'.repeat(32), context('mp3-please'))], 'unsupported output format'],
      [[config('C'.repeat(32)), text('ssml', 'C'.repeat(32), ssml('hi'))], 'no synthesis.context'],
      [[config('D'.repeat(32)), text('synthesis.context', 'D'.repeat(32), context('raw-16khz-16bit-mono-pcm')), text('ssml', 'D'.repeat(32), ssml('fish & chips'))], 'SSML'],
    ] as const) {
      const c = await open(TTS);
      for (const m of messages) c.ws.send(m);
      expect(await c.closed).toMatchObject({ code: 1007, reason: expect.stringContaining(reason) });
    }
  });

  it('parses one-voice SSML with entities, and the WAV header check finds the PCM after the header', () => {
    expect(parseSsml(`<speak version='1.0' xml:lang='de-DE'><voice name='de-DE-KatjaNeural'>a &lt;b&gt; &quot;c&quot; &apos;d&apos;</voice></speak>`)).toEqual({
      voice: 'de-DE-KatjaNeural',
      language: 'de-DE',
      text: `a <b> "c" 'd'`,
    });
    expect(parseSsml('<speak xml:lang="en-US">hi</speak>')).toMatch(/voice/);
    expect(parseSsml('<voice name="x">hi</voice>')).toMatch(/speak/);
    const pcm = new Uint8Array([1, 2, 3, 4]);
    expect(pcmAfterWavHeader(new Uint8Array(Buffer.concat([wavHeader(), pcm])))).toEqual(pcm);
    expect(pcmAfterWavHeader(wavHeader(16000, 2))).toMatch(/mono/);
    expect(pcmAfterWavHeader(pcm)).toMatch(/RIFF/);
  });
});
