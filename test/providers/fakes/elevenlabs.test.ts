import { afterEach, describe, expect, it } from 'vitest';
import { alawDecode } from '../../../shared/audio/g711';
import { decodeWords } from '../../fakes/tones';
import { charTimeline, startElevenLabsFake, type ElevenLabsFakeServer } from './elevenlabs';
import { connectRaw, refusedWith, type RawClient } from './ws-test-client';

type Json = Record<string, unknown>;
interface Alignment {
  chars: string[];
  charStartTimesMs: number[];
  charDurationsMs: number[];
}

const PATH = '/v1/text-to-speech/voice-1/multi-stream-input?model_id=eleven_flash_v2_5&output_format=pcm_16000&inactivity_timeout=180&sync_alignment=true';
let fake: ElevenLabsFakeServer;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.close();
});

async function open(path = PATH, headers?: Record<string, string>): Promise<RawClient> {
  const client = await connectRaw(`${fake.endpoint}${path}`, headers ?? { 'xi-api-key': fake.apiKey });
  clients.push(client);
  return client;
}

const audioMessages = (client: RawClient, contextId: string) =>
  client.messages.filter((m): m is Json => typeof (m as Json).audio === 'string' && (m as Json).contextId === contextId);

function pcmOf(client: RawClient, contextId: string): Int16Array {
  const bytes = Buffer.concat(audioMessages(client, contextId).map((m) => Buffer.from(m.audio as string, 'base64')));
  return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

describe('ElevenLabs fake: handshake', () => {
  it('refuses a wrong xi-api-key with 401 and a JSON detail, mp3 output with 400, unknown paths with 404', async () => {
    fake = await startElevenLabsFake();
    const wrong = await refusedWith(`${fake.endpoint}${PATH}`, { 'xi-api-key': 'nope' });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toEqual({ detail: { status: 'invalid_api_key', message: 'Invalid API key' } });
    expect((await refusedWith(`${fake.endpoint}/v1/text-to-speech/v/multi-stream-input?output_format=mp3_44100_128`, { 'xi-api-key': fake.apiKey })).status).toBe(400);
    expect((await refusedWith(`${fake.endpoint}/v1/text-to-speech/v/stream?output_format=pcm_16000`, { 'xi-api-key': fake.apiKey })).status).toBe(404);
    fake.control.refuseNext(503);
    expect((await refusedWith(`${fake.endpoint}${PATH}`, { 'xi-api-key': fake.apiKey })).status).toBe(503);
    await open();
    expect(fake.connections.at(-1)!.headers['xi-api-key']).toBe(fake.apiKey);
  });

  it('without the header, takes the key from a context\'s first message, and answers a wrong one with an error frame + 1008', async () => {
    fake = await startElevenLabsFake();
    const good = await open(PATH, {});
    good.send({ text: ' ', context_id: 'a', xi_api_key: fake.apiKey });
    good.send({ text: 'hello ', context_id: 'a', flush: true });
    await good.waitFor((m) => typeof m.audio === 'string');
    const bad = await open(PATH, {});
    bad.send({ text: ' ', context_id: 'a', xi_api_key: 'nope' });
    expect(await bad.waitFor((m) => m.error !== undefined)).toEqual({ message: 'Invalid API key', error: 'invalid_api_key', code: 1008 });
    expect((await bad.closed).code).toBe(1008);
  });

  it('with authFailure "frame", accepts a wrong header key and answers with the error frame + 1008', async () => {
    fake = await startElevenLabsFake({ authFailure: 'frame' });
    const client = await open(PATH, { 'xi-api-key': 'nope' });
    expect(await client.waitFor((m) => m.error !== undefined)).toEqual({ message: 'Invalid API key', error: 'invalid_api_key', code: 1008 });
    expect(await client.closed).toMatchObject({ code: 1008, reason: 'invalid_api_key' });
    const good = await open();
    good.send({ text: ' ', context_id: 'a' });
    good.send({ text: 'hi ', context_id: 'a', flush: true });
    await good.waitFor((m) => typeof m.audio === 'string');
  });

  it('errorAfterAccept("auth") accepts, then sends the error frame and closes 1008', async () => {
    fake = await startElevenLabsFake();
    fake.control.errorAfterAccept('auth');
    const client = await open();
    expect(await client.waitFor((m) => m.error !== undefined)).toMatchObject({ error: 'invalid_api_key', code: 1008 });
    expect((await client.closed).code).toBe(1008);
  });
});

describe('ElevenLabs fake: contexts', () => {
  it('insists on {"text":" "} as a context\'s first message', async () => {
    fake = await startElevenLabsFake();
    const client = await open();
    client.send({ text: 'hello ', context_id: 'x' });
    expect(await client.waitFor((m) => m.error !== undefined)).toMatchObject({ error: 'invalid_input_message', code: 1008 });
    expect((await client.closed).code).toBe(1008);
  });

  it('voices flushed text as 100 ms audio messages with per-chunk alignment; close_context → isFinal with camelCase contextId', async () => {
    fake = await startElevenLabsFake();
    const client = await open();
    client.send({ text: ' ', context_id: 'c1' });
    client.send({ text: 'hello there. ', context_id: 'c1', flush: true });
    client.send({ text: 'what is the weather today? ', context_id: 'c1', flush: true });
    client.send({ context_id: 'c1', close_context: true });
    await client.waitFor((m) => m.isFinal === true);
    expect(client.messages.at(-1)).toEqual({ isFinal: true, contextId: 'c1' });
    expect(decodeWords(pcmOf(client, 'c1'), 16000)).toEqual(['hello', 'there', 'what', 'is', 'the', 'weather', 'today']);
    const chunks = audioMessages(client, 'c1');
    for (const m of chunks) expect(Buffer.from(m.audio as string, 'base64').length).toBeLessThanOrEqual(3200);
    const alignments = chunks.map((m) => m.alignment as Alignment | null).filter((a): a is Alignment => a !== null);
    expect(alignments.flatMap((a) => a.chars).join('')).toBe('hello there. what is the weather today? ');
    for (const a of alignments) {
      expect(a.charStartTimesMs.length).toBe(a.chars.length);
      for (const t of a.charStartTimesMs) expect(t).toBeGreaterThanOrEqual(0);
      for (const t of a.charStartTimesMs) expect(t).toBeLessThan(100);
    }
    // Some word straddles two chunks: a chunk ends on a letter and the next starts with one.
    const straddles = alignments.some((a, i) => /\w$/.test(a.chars.at(-1)!) && /^\w/.test(alignments[i + 1]?.chars[0] ?? ''));
    expect(straddles).toBe(true);
  });

  it('buffers unflushed text until the chunk schedule threshold, and close_context drops what was never flushed', async () => {
    fake = await startElevenLabsFake();
    const client = await open();
    client.send({ text: ' ', context_id: 'c', generation_config: { chunk_length_schedule: [50] } });
    client.send({ text: 'hello there ', context_id: 'c' });
    await new Promise((r) => setTimeout(r, 100));
    expect(audioMessages(client, 'c')).toEqual([]);
    client.send({ text: 'what is the weather today and tell me a joke okay ', context_id: 'c' });
    await client.waitFor((m) => typeof m.audio === 'string');
    client.send({ text: 'goodbye ', context_id: 'c' });
    client.send({ context_id: 'c', close_context: true });
    await client.waitFor((m) => m.isFinal === true);
    const words = decodeWords(pcmOf(client, 'c'), 16000);
    expect(words.slice(0, 3)).toEqual(['hello', 'there', 'what']);
    expect(words).not.toContain('goodbye');
  });

  it('renders ulaw_8000 / alaw_8000', async () => {
    fake = await startElevenLabsFake();
    const client = await open(PATH.replace('pcm_16000', 'alaw_8000'));
    client.send({ text: ' ', context_id: 'a' });
    client.send({ text: 'sunny and warm ', context_id: 'a', flush: true });
    client.send({ context_id: 'a', close_context: true });
    await client.waitFor((m) => m.isFinal === true);
    const bytes = Buffer.concat(audioMessages(client, 'a').map((m) => Buffer.from(m.audio as string, 'base64')));
    const pcm = new Int16Array(bytes.length);
    alawDecode(new Uint8Array(bytes), pcm);
    expect(decodeWords(pcm, 8000)).toEqual(['sunny', 'and', 'warm']);
  });

  it('refuses voice_settings after the first message, and a sixth live context', async () => {
    fake = await startElevenLabsFake();
    const client = await open();
    client.send({ text: ' ', context_id: 'a' });
    client.send({ text: 'hi ', context_id: 'a', voice_settings: { stability: 0.5 } });
    expect(await client.waitFor((m) => m.error !== undefined)).toMatchObject({ error: 'invalid_input_message' });
    const many = await open();
    for (let i = 0; i < 6; i++) many.send({ text: ' ', context_id: `c${i}` });
    expect(await many.waitFor((m) => m.error !== undefined)).toMatchObject({ error: 'max_active_conversations', code: 1008 });
    expect((await many.closed).code).toBe(1008);
  });

  it('keeps two contexts apart on one socket; close_socket finishes both and closes 1000', async () => {
    fake = await startElevenLabsFake();
    const client = await open();
    client.send({ text: ' ', context_id: 'a' });
    client.send({ text: ' ', context_id: 'b' });
    client.send({ text: 'hello ', context_id: 'a', flush: true });
    client.send({ text: 'goodbye ', context_id: 'b', flush: true });
    client.send({ close_socket: true });
    expect((await client.closed).code).toBe(1000);
    expect(decodeWords(pcmOf(client, 'a'), 16000)).toEqual(['hello']);
    expect(decodeWords(pcmOf(client, 'b'), 16000)).toEqual(['goodbye']);
    const finals = client.messages.filter((m) => (m as Json).isFinal === true).map((m) => (m as Json).contextId);
    expect(finals.sort()).toEqual(['a', 'b']);
  });

  it('closes with input_timeout_exceeded + 1008 after idleCloseMs without input; {"text":""} keeps a context alive', async () => {
    fake = await startElevenLabsFake({ idleCloseMs: 250 });
    const client = await open();
    client.send({ text: ' ', context_id: 'k' });
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
      client.send({ text: '', context_id: 'k' });
    }
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    expect(await client.waitFor((m) => m.error !== undefined, 2000)).toMatchObject({ error: 'input_timeout_exceeded', code: 1008 });
    expect((await client.closed).code).toBe(1008);
  });

  it('uses the inactivity_timeout the client asked for when the test sets none', async () => {
    fake = await startElevenLabsFake();
    const client = await open(PATH.replace('inactivity_timeout=180', 'inactivity_timeout=1'));
    const started = Date.now();
    expect((await client.closed).code).toBe(1008);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('charTimeline', () => {
  it('spreads each word over its tone span and gives spaces the gap', () => {
    const chars = charTimeline('hi, you ', [{ startMs: 0, endMs: 150 }, { startMs: 190, endMs: 340 }], 380);
    expect(chars.map((c) => c.ch).join('')).toBe('hi, you ');
    expect(chars[0]).toEqual({ ch: 'h', startMs: 0, durationMs: 50 });
    expect(chars[3]).toEqual({ ch: ' ', startMs: 150, durationMs: 40 });
    expect(chars[4]!.startMs).toBe(190);
    expect(chars.at(-1)).toEqual({ ch: ' ', startMs: 340, durationMs: 40 });
  });
});
