import { afterEach, describe, expect, it, vi } from 'vitest';
import { mulawDecode } from '../../../shared/audio/g711';
import { decodeWords, splitWords, synthesizeWords } from '../../fakes/tones';
import { startCartesiaFake, type CartesiaFakeServer } from './cartesia';
import { connectRaw, refusedWith, type RawClient } from './ws-test-client';

const STT_QUERY = '/stt/websocket?model=ink-whisper&encoding=pcm_s16le&sample_rate=16000&language=en';
let fake: CartesiaFakeServer;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.close();
});

async function open(path: string, headers?: Record<string, string>): Promise<RawClient> {
  const client = await connectRaw(`${fake.endpoint}${path}`, headers ?? { 'X-API-Key': fake.apiKey, 'Cartesia-Version': '2025-04-16' });
  clients.push(client);
  return client;
}

/** Speech as 20 ms PCM16 frames at 16 kHz, followed by `silenceMs` of silence. */
function speech(text: string, silenceMs = 0): Uint8Array {
  const { pcm } = synthesizeWords(splitWords(text), 16000);
  const out = new Int16Array(pcm.length + (silenceMs * 16000) / 1000);
  out.set(pcm);
  return new Uint8Array(out.buffer);
}

function sendInChunks(client: RawClient, audio: Uint8Array, chunkBytes: number): void {
  for (let at = 0; at < audio.length; at += chunkBytes) client.send(audio.subarray(at, Math.min(audio.length, at + chunkBytes)));
}

type Json = Record<string, unknown>;
const transcripts = (client: RawClient) => client.messages.filter((m): m is Json => (m as Json)?.type === 'transcript');

describe('Cartesia fake: handshake', () => {
  it('refuses a missing or wrong key with 401, a missing API version with 400, and accepts the documented key forms', async () => {
    fake = await startCartesiaFake();
    const url = `${fake.endpoint}${STT_QUERY}`;
    expect((await refusedWith(url, { 'Cartesia-Version': '2025-04-16' })).status).toBe(401);
    const wrong = await refusedWith(url, { 'X-API-Key': 'nope', 'Cartesia-Version': '2025-04-16' });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toMatchObject({ message: 'Invalid API key' });
    expect((await refusedWith(url, { 'X-API-Key': fake.apiKey })).status).toBe(400);
    await open(STT_QUERY, { Authorization: `Bearer ${fake.apiKey}`, 'Cartesia-Version': '2026-03-01' });
    await open(`${STT_QUERY}&api_key=${fake.apiKey}&cartesia_version=2025-04-16`, {});
    expect(fake.connections).toHaveLength(5);
    expect(fake.connections[3]!.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
  });

  it('refuses upgrades on demand (429 then 503), then accepts', async () => {
    fake = await startCartesiaFake();
    fake.control.refuseNext(429);
    fake.control.refuseNext(503);
    const headers = { 'X-API-Key': fake.apiKey, 'Cartesia-Version': '2025-04-16' };
    expect((await refusedWith(`${fake.endpoint}/tts/websocket`, headers)).status).toBe(429);
    expect((await refusedWith(`${fake.endpoint}/tts/websocket`, headers)).status).toBe(503);
    await open('/tts/websocket');
  });

  it('rejects an STT query without pcm_s16le', async () => {
    fake = await startCartesiaFake();
    const refused = await refusedWith(`${fake.endpoint}/stt/websocket?model=ink-whisper&encoding=pcm_mulaw&sample_rate=8000`, { 'X-API-Key': fake.apiKey, 'Cartesia-Version': '2025-04-16' });
    expect(refused.status).toBe(400);
  });
});

describe('Cartesia fake: STT', () => {
  it('hears tone words fed faster than real time: an interim per word, a final after 300 ms of audio silence', async () => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    sendInChunks(client, speech('hello what is the weather', 400), 3200);
    const final = await client.waitFor((m) => m.type === 'transcript' && m.is_final === true);
    expect(final.text).toBe('hello what is the weather');
    const interims = transcripts(client).filter((m) => m.is_final === false);
    expect(interims.map((m) => m.text)).toEqual(['hello', 'hello what', 'hello what is', 'hello what is the', 'hello what is the weather']);
    const words = final.words as { word: string; start: number; end: number }[];
    expect(words.map((w) => w.word)).toEqual(['hello', 'what', 'is', 'the', 'weather']);
    for (let i = 0; i < words.length; i++) {
      expect(words[i]!.end).toBeGreaterThan(words[i]!.start);
      if (i > 0) expect(words[i]!.start).toBeGreaterThanOrEqual(words[i - 1]!.end);
    }
    expect(fake.connections[0]!.received.filter((f) => f instanceof Uint8Array).length).toBeGreaterThan(1);
  });

  it('does not finalise before 300 ms of silence, and cuts frames itself from odd chunk sizes', async () => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    sendInChunks(client, speech('tell me a joke', 200), 1234);
    await client.waitFor((m) => m.type === 'transcript' && m.text === 'tell me a joke');
    await new Promise((r) => setTimeout(r, 100));
    expect(transcripts(client).some((m) => m.is_final)).toBe(false);
    sendInChunks(client, speech('', 200), 1234);
    const final = await client.waitFor((m) => m.type === 'transcript' && m.is_final === true);
    expect(final.text).toBe('tell me a joke');
  });

  it('finalize flushes what was heard (final, then flush_done); a later segment is a delta starting with a space', async () => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    client.send(speech('hello there'));
    client.send('finalize');
    await client.waitFor((m) => m.type === 'flush_done');
    const finals = () => transcripts(client).filter((m) => m.is_final);
    expect(finals().map((m) => m.text)).toEqual(['hello there']);
    const flushAt = client.messages.findIndex((m) => (m as Json).type === 'flush_done');
    expect(client.messages.findIndex((m) => (m as Json).is_final === true)).toBeLessThan(flushAt);
    client.send(speech('what is it', 400));
    await client.waitFor((m) => m.type === 'transcript' && m.is_final === true, 3000, flushAt);
    expect(finals().map((m) => m.text).join('')).toBe('hello there what is it');
    expect(finals()[1]!.text).toBe(' what is it');
  });

  it('finalize with nothing buffered answers flush_done only', async () => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    client.send('finalize');
    await client.waitFor((m) => m.type === 'flush_done');
    expect(transcripts(client)).toEqual([]);
  });

  it.each(['done', 'close'])('"%s" flushes, answers done and closes 1000', async (command) => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    client.send(speech('goodbye'));
    client.send(command);
    expect(await client.closed).toMatchObject({ code: 1000 });
    const types = client.messages.map((m) => `${(m as Json).type}${(m as Json).is_final ? ':final' : ''}`);
    expect(types.slice(-2)).toEqual(['transcript:final', 'done']);
    await vi.waitFor(() => expect(fake.connections[0]!.closeCode).toBe(1000));
  });

  it('closes a socket that received no audio for idleCloseMs (a text frame does not count)', async () => {
    fake = await startCartesiaFake({ idleCloseMs: 200 });
    const client = await open(STT_QUERY);
    const started = Date.now();
    setTimeout(() => client.send('finalize'), 100);
    const close = await client.closed;
    expect(close.code).toBe(1000);
    expect(close.reason).toMatch(/idle/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
  });

  it('audio keeps an idle-limited socket open', async () => {
    fake = await startCartesiaFake({ idleCloseMs: 200 });
    const client = await open(STT_QUERY);
    const silence = new Uint8Array(640);
    for (let i = 0; i < 6; i++) {
      client.send(silence);
      await new Promise((r) => setTimeout(r, 80));
    }
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('dropAfterWords drops the socket abruptly (1006) after that many recognised words, mid-utterance', async () => {
    fake = await startCartesiaFake();
    fake.control.dropAfterWords(2);
    const client = await open(STT_QUERY);
    client.send(speech('once upon a time there was', 400));
    expect((await client.closed).code).toBe(1006);
    expect(transcripts(client).every((m) => !m.is_final)).toBe(true);
    expect(transcripts(client).map((m) => m.text)).toEqual(['once']);
    const next = await open(STT_QUERY);
    next.send(speech('a dragon', 400));
    expect((await next.waitFor((m) => m.is_final === true)).text).toBe('a dragon');
  });

  it('errorAfterAccept sends an error frame with the status code, then closes', async () => {
    fake = await startCartesiaFake();
    fake.control.errorAfterAccept('rate-limit');
    const client = await open(STT_QUERY);
    const error = await client.waitFor((m) => m.type === 'error');
    expect(error).toMatchObject({ status_code: 429 });
    expect((await client.closed).code).toBe(1013);
  });

  it('answers an unknown text command with an error frame and stays open', async () => {
    fake = await startCartesiaFake();
    const client = await open(STT_QUERY);
    client.send('{"type":"KeepAlive"}');
    expect(await client.waitFor((m) => m.type === 'error')).toMatchObject({ status_code: 400 });
    client.send(speech('hi', 400));
    expect((await client.waitFor((m) => m.is_final === true)).text).toBe('hi');
  });
});

describe('Cartesia fake: TTS', () => {
  const request = (contextId: string, transcript: string, extra: Json = {}) => ({
    model_id: 'sonic-2',
    transcript,
    voice: { mode: 'id', id: 'voice-1' },
    language: 'en',
    context_id: contextId,
    output_format: { container: 'raw', encoding: 'pcm_s16le', sample_rate: 16000 },
    add_timestamps: true,
    max_buffer_delay_ms: 0,
    continue: true,
    ...extra,
  });
  const audioOf = (client: RawClient, contextId: string, encoding: 'pcm16' | 'mulaw' = 'pcm16'): Int16Array => {
    const parts = client.messages
      .filter((m): m is Json => (m as Json).type === 'chunk' && (m as Json).context_id === contextId)
      .map((m) => Buffer.from(m.data as string, 'base64'));
    const bytes = Buffer.concat(parts);
    if (encoding === 'pcm16') return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const pcm = new Int16Array(bytes.length);
    mulawDecode(new Uint8Array(bytes), pcm);
    return pcm;
  };

  it('voices flushed pieces of a context in order: chunks, timestamps, flush_done with increasing flush_id, then done', async () => {
    fake = await startCartesiaFake();
    const client = await open('/tts/websocket');
    client.send(request('c1', 'hello there. '));
    client.send(request('c1', '', { flush: true }));
    client.send(request('c1', 'what is the weather today. '));
    client.send(request('c1', '', { flush: true }));
    client.send(request('c1', '', { continue: false }));
    await client.waitFor((m) => m.type === 'done' && m.context_id === 'c1');
    expect(decodeWords(audioOf(client, 'c1'), 16000)).toEqual(['hello', 'there', 'what', 'is', 'the', 'weather', 'today']);
    const flushes = client.messages.filter((m): m is Json => (m as Json).type === 'flush_done');
    expect(flushes.map((m) => m.flush_id)).toEqual([1, 2]);
    const stamps = client.messages.filter((m): m is Json => (m as Json).type === 'timestamps').map((m) => m.word_timestamps as { words: string[]; start: number[]; end: number[] });
    expect(stamps.flatMap((s) => s.words)).toEqual(['hello', 'there.', 'what', 'is', 'the', 'weather', 'today.']);
    const starts = stamps.flatMap((s) => s.start);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    expect(stamps[1]!.start[0]).toBeGreaterThan(stamps[0]!.end[1]!); // Relative to the context, not the piece.
    const last = client.messages.at(-1) as Json;
    expect(last).toMatchObject({ type: 'done', done: true });
  });

  it('produces μ-law 8 kHz when asked', async () => {
    fake = await startCartesiaFake();
    const client = await open('/tts/websocket');
    client.send(request('m', 'tell me a joke ', { continue: false, output_format: { container: 'raw', encoding: 'pcm_mulaw', sample_rate: 8000 } }));
    await client.waitFor((m) => m.type === 'done');
    expect(decodeWords(audioOf(client, 'm', 'mulaw'), 8000)).toEqual(['tell', 'me', 'a', 'joke']);
  });

  it('refuses a request of a context whose fields changed, and a malformed request', async () => {
    fake = await startCartesiaFake();
    const client = await open('/tts/websocket');
    client.send(request('c', 'hello '));
    client.send(request('c', 'there ', { voice: { mode: 'id', id: 'other' } }));
    expect(await client.waitFor((m) => m.type === 'error')).toMatchObject({ context_id: 'c', status_code: 400 });
    client.send({ transcript: 'x' });
    await client.waitFor((m) => m.type === 'error' && m.context_id === undefined);
  });

  it('with max_buffer_delay_ms 0 voices complete words at once and keeps a trailing partial word', async () => {
    fake = await startCartesiaFake();
    const client = await open('/tts/websocket');
    client.send(request('b', 'hello wea'));
    await client.waitFor((m) => m.type === 'timestamps');
    client.send(request('b', 'ther ', { continue: false }));
    await client.waitFor((m) => m.type === 'done');
    expect(decodeWords(audioOf(client, 'b'), 16000)).toEqual(['hello', 'weather']);
  });

  it('cancel stops that context at once while another context keeps going', async () => {
    fake = await startCartesiaFake({ chunkDelayMs: 10 });
    const client = await open('/tts/websocket');
    client.send(request('a', 'once upon a time there was a dragon ', { continue: false }));
    client.send(request('b', 'hello there ', { continue: false }));
    await client.waitFor((m) => m.type === 'chunk' && m.context_id === 'a');
    client.send({ context_id: 'a', cancel: true });
    const at = client.messages.length;
    await client.waitFor((m) => m.type === 'done' && m.context_id === 'b');
    await new Promise((r) => setTimeout(r, 100));
    const aAfter = client.messages.slice(at + 2).filter((m) => (m as Json).context_id === 'a');
    expect(aAfter).toEqual([]);
    expect(client.messages.some((m) => (m as Json).type === 'done' && (m as Json).context_id === 'a')).toBe(false);
    expect(decodeWords(audioOf(client, 'b'), 16000)).toEqual(['hello', 'there']);
  });

  it('closes an idle socket after idleCloseMs', async () => {
    fake = await startCartesiaFake({ idleCloseMs: 150 });
    const client = await open('/tts/websocket');
    expect((await client.closed).code).toBe(1000);
  });
});
