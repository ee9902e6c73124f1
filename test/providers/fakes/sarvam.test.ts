import WebSocket from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeWav } from '../../../shared/audio/wav';
import { mulawDecode } from '../../../shared/audio/g711';
import { decodeWords, splitWords, synthesizeWords } from '../../fakes/tones';
import { startSarvamFake, type SarvamFakeOptions, type SarvamFakeServer } from './sarvam';
import { connectRaw, refusedWith, type RawClient } from './ws-test-client';

const STT_QUERY = '/speech-to-text/ws?language-code=en-IN&model=saaras%3Av3&mode=transcribe&sample_rate=16000&input_audio_codec=pcm_s16le&vad_signals=true&flush_signal=true';
const TTS_QUERY = '/text-to-speech/ws?model=bulbul%3Av2&send_completion_event=true';
const CONFIG = { type: 'config', data: { target_language_code: 'en-IN', speaker: 'anushka', speech_sample_rate: '16000', output_audio_codec: 'linear16' } };

let fake: SarvamFakeServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.close();
  fake = undefined;
});

async function start(options?: SarvamFakeOptions): Promise<SarvamFakeServer> {
  fake = await startSarvamFake(options);
  return fake;
}

async function open(path: string, headers?: Record<string, string>): Promise<RawClient> {
  const client = await connectRaw(`${fake!.endpoint}${path}`, headers ?? { 'Api-Subscription-Key': fake!.apiKey });
  clients.push(client);
  return client;
}

/** PCM16 16 kHz of the words, then `silenceMs` of silence. */
function speech(text: string, silenceMs = 0): Buffer {
  const { pcm } = synthesizeWords(splitWords(text), 16000);
  const out = new Int16Array(pcm.length + (silenceMs * 16000) / 1000);
  out.set(pcm);
  return Buffer.from(out.buffer);
}

/** Audio as the documented JSON messages of `chunkBytes` each. */
function sendAudio(client: RawClient, audio: Buffer, chunkBytes = 3200, encoding = 'audio/wav'): void {
  for (let at = 0; at < audio.length; at += chunkBytes) {
    client.send({ audio: { data: audio.subarray(at, Math.min(audio.length, at + chunkBytes)).toString('base64'), sample_rate: '16000', encoding } });
  }
}

type Json = Record<string, unknown>;
const ofType = (client: RawClient, type: string) => client.messages.filter((m): m is Json => (m as Json)?.type === type);
const dataOf = (m: Json) => m.data as Json;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Sarvam fake: handshake', () => {
  it('a wrong key is accepted, then answered by an error frame (code 403) and close 1008 — STT {error, code:"403"}, TTS {message, code:403}', async () => {
    await start();
    const stt = await open(STT_QUERY, { 'Api-Subscription-Key': 'nope' });
    const sttError = await stt.waitFor((m) => m.type === 'error');
    expect(dataOf(sttError)).toMatchObject({ error: 'Invalid API subscription key', code: '403' });
    expect((await stt.closed).code).toBe(1008);
    const tts = await open(TTS_QUERY, {});
    const ttsError = await tts.waitFor((m) => m.type === 'error');
    expect(dataOf(ttsError)).toMatchObject({ message: 'Invalid API subscription key', code: 403 });
    expect((await tts.closed).code).toBe(1008);
  });

  it('with authFailure "handshake" a wrong key is refused with HTTP 403 and a JSON body', async () => {
    await start({ authFailure: 'handshake' });
    const refused = await refusedWith(`${fake!.endpoint}${STT_QUERY}`, { 'Api-Subscription-Key': 'nope' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { message: 'Invalid API subscription key' } });
    await open(STT_QUERY);
  });

  it('accepts the key as the api-subscription-key.<key> subprotocol and echoes it', async () => {
    await start({ authFailure: 'handshake' });
    const ws = new WebSocket(`${fake!.endpoint}${TTS_QUERY}`, [`api-subscription-key.${fake!.apiKey}`]);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    expect(ws.protocol).toBe(`api-subscription-key.${fake!.apiKey}`);
    ws.terminate();
  });

  it('refuses upgrades on demand (429 then 503), then accepts', async () => {
    await start();
    fake!.control.refuseNext(429);
    fake!.control.refuseNext(503);
    const headers = { 'Api-Subscription-Key': fake!.apiKey };
    expect((await refusedWith(`${fake!.endpoint}${TTS_QUERY}`, headers)).status).toBe(429);
    expect((await refusedWith(`${fake!.endpoint}${TTS_QUERY}`, headers)).status).toBe(503);
    await open(TTS_QUERY);
    expect(fake!.connections).toHaveLength(3);
  });

  it.each([
    ['language_code with an underscore', '/speech-to-text/ws?language_code=en-IN'],
    ['an unknown language', '/speech-to-text/ws?language-code=fr-FR'],
    ['an unknown model', '/speech-to-text/ws?language-code=en-IN&model=whisper'],
    ['mode with saarika', '/speech-to-text/ws?language-code=en-IN&model=saarika%3Av2.5&mode=translate'],
    ['a 44.1 kHz stream', '/speech-to-text/ws?language-code=en-IN&sample_rate=44100'],
    ['an unknown input codec', '/speech-to-text/ws?language-code=en-IN&input_audio_codec=mp3'],
    ['an unknown TTS model', '/text-to-speech/ws?model=bulbul%3Av9'],
    ['an unknown path', '/speech-to-text-realtime/ws'],
  ])('refuses %s', async (_name, path) => {
    await start();
    const refused = await refusedWith(`${fake!.endpoint}${path}`, { 'Api-Subscription-Key': fake!.apiKey });
    expect([400, 404]).toContain(refused.status);
  });
});

describe('Sarvam fake: STT', () => {
  it('hears base64 JSON audio: START_SPEECH, then after 300 ms of audio silence END_SPEECH and one data message; no interims', async () => {
    await start();
    const client = await open(STT_QUERY);
    sendAudio(client, speech('hello what is the weather', 400));
    const data = await client.waitFor((m) => m.type === 'data');
    expect(dataOf(data)).toMatchObject({ transcript: 'hello what is the weather', language_code: 'en-IN', timestamps: null });
    expect((dataOf(data).metrics as Json).audio_duration).toBeGreaterThan(0);
    const kinds = client.messages.map((m) => ((m as Json).type === 'events' ? (dataOf(m as Json).signal_type as string) : ((m as Json).type as string)));
    expect(kinds).toEqual(['START_SPEECH', 'END_SPEECH', 'data']);
  });

  it('does not end the utterance before 300 ms of silence; frames are cut from any message size; WAV-framed data is heard too', async () => {
    await start();
    const client = await open(STT_QUERY);
    const { pcm } = synthesizeWords(['tell', 'me'], 16000);
    client.send({ audio: { data: Buffer.from(encodeWav({ encoding: 'pcm16', sampleRateHz: 16000 }, new Uint8Array(pcm.buffer))).toString('base64'), sample_rate: '16000', encoding: 'audio/wav' } });
    sendAudio(client, speech('a joke', 200), 1234, 'pcm_s16le');
    await client.waitFor((m) => m.type === 'events' && dataOf(m).signal_type === 'START_SPEECH');
    await delay(100);
    expect(ofType(client, 'data')).toEqual([]);
    sendAudio(client, speech('', 200), 1234);
    const data = await client.waitFor((m) => m.type === 'data');
    expect(dataOf(data).transcript).toBe('tell me a joke');
  });

  it('flush turns what was heard into a data message at once; a flush with nothing heard sends nothing', async () => {
    await start();
    const client = await open(STT_QUERY);
    client.send({ type: 'flush' });
    sendAudio(client, speech('hello there'));
    client.send({ type: 'flush' });
    const data = await client.waitFor((m) => m.type === 'data');
    expect(dataOf(data).transcript).toBe('hello there');
    await delay(100);
    expect(ofType(client, 'data')).toHaveLength(1);
    expect(ofType(client, 'error')).toEqual([]);
  });

  it('without vad_signals there are no events; without flush_signal a flush is an error', async () => {
    await start();
    const client = await open('/speech-to-text/ws?language-code=unknown');
    client.send({ type: 'flush' });
    const error = await client.waitFor((m) => m.type === 'error');
    expect(String(dataOf(error).error)).toContain('flush_signal');
    sendAudio(client, speech('okay thanks', 400));
    const data = await client.waitFor((m) => m.type === 'data');
    expect(dataOf(data)).toMatchObject({ transcript: 'okay thanks', language_code: 'en-IN', language_probability: 0.9 });
    expect(ofType(client, 'events')).toEqual([]);
  });

  it.each([
    ['a binary frame', Buffer.from([1, 2, 3, 4]), 'binary'],
    ['a JSON message of no known shape', { hello: 'there' }, 'expected an audio message'],
    ['audio that is not base64', { audio: { data: '***', sample_rate: '16000', encoding: 'audio/wav' } }, 'base64'],
    ['audio at another rate', { audio: { data: 'AAAA', sample_rate: '24000', encoding: 'audio/wav' } }, 'sample_rate'],
    ['an unknown encoding', { audio: { data: 'AAAA', sample_rate: '16000', encoding: 'audio/mp3' } }, 'encoding'],
  ])('answers %s with an error frame and stays open', async (_name, message, says) => {
    await start();
    const client = await open(STT_QUERY);
    client.send(message as object);
    const error = await client.waitFor((m) => m.type === 'error');
    expect(String(dataOf(error).error)).toContain(says);
    expect(dataOf(error).code).toBe('400');
    sendAudio(client, speech('hi', 400));
    await client.waitFor((m) => m.type === 'data');
  });

  it('closes a socket that received no audio for idleCloseMs (a flush does not count)', async () => {
    await start({ idleCloseMs: 200 });
    const client = await open(STT_QUERY);
    const started = Date.now();
    setTimeout(() => client.send({ type: 'flush' }), 100);
    const close = await client.closed;
    expect(close.code).toBe(1000);
    expect(close.reason).toContain('idle');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('dropAfterWords cuts the connection mid-utterance without a close frame', async () => {
    await start();
    fake!.control.dropAfterWords(2);
    const client = await open(STT_QUERY);
    sendAudio(client, speech('once upon a time', 400));
    expect((await client.closed).code).toBe(1006);
    expect(ofType(client, 'data')).toEqual([]);
  });

  it('errorAfterAccept sends the error frame of that kind and closes', async () => {
    await start();
    fake!.control.errorAfterAccept('rate-limit');
    const client = await open(STT_QUERY);
    expect(dataOf(await client.waitFor((m) => m.type === 'error'))).toMatchObject({ code: '429' });
    expect((await client.closed).code).toBe(1008);
  });
});

describe('Sarvam fake: TTS', () => {
  const audioOf = (client: RawClient, from = 0) =>
    client.messages.slice(from).flatMap((m) => ((m as Json).type === 'audio' ? [Buffer.from(dataOf(m as Json).audio as string, 'base64')] : []));
  const wordsOf = (chunks: Buffer[]) => {
    const all = Buffer.concat(chunks);
    return decodeWords(new Int16Array(all.buffer, all.byteOffset, all.byteLength >> 1), 16000);
  };

  it('config, text, flush → 100 ms audio chunks of the words, then event final', async () => {
    await start();
    const client = await open(TTS_QUERY);
    client.send(CONFIG);
    client.send({ type: 'text', data: { text: 'hello there.' } });
    client.send({ type: 'flush' });
    await client.waitFor((m) => m.type === 'event');
    expect(client.messages.at(-1)).toMatchObject({ type: 'event', data: { event_type: 'final' } });
    const chunks = audioOf(client);
    expect(chunks.slice(0, -1).every((c) => c.byteLength === 3200)).toBe(true);
    expect(wordsOf(chunks)).toEqual(['hello', 'there']);
    expect(dataOf(ofType(client, 'audio')[0]!)).toMatchObject({ content_type: 'audio/pcm' });
  });

  it('every flush gets its final (an empty one too), on one socket across utterances; no final without send_completion_event=true', async () => {
    await start();
    const client = await open(TTS_QUERY);
    client.send(CONFIG);
    client.send({ type: 'flush' });
    await client.waitFor((m) => m.type === 'event');
    client.send({ type: 'text', data: { text: 'thanks' } });
    client.send({ type: 'flush' });
    await vi.waitFor(() => expect(ofType(client, 'event')).toHaveLength(2));
    expect(wordsOf(audioOf(client))).toEqual(['thanks']);
    const quiet = await open('/text-to-speech/ws?model=bulbul%3Av2');
    quiet.send(CONFIG);
    quiet.send({ type: 'text', data: { text: 'goodbye' } });
    quiet.send({ type: 'flush' });
    await quiet.waitFor((m) => m.type === 'audio');
    await delay(200);
    expect(ofType(quiet, 'event')).toEqual([]);
  });

  it('text beyond min_buffer_size is spoken without a flush (complete words only)', async () => {
    await start();
    const client = await open(TTS_QUERY);
    client.send({ ...CONFIG, data: { ...CONFIG.data, min_buffer_size: 10 } });
    client.send({ type: 'text', data: { text: 'hello there what is the wea' } });
    await client.waitFor((m) => m.type === 'audio');
    await delay(200);
    expect(wordsOf(audioOf(client))).toEqual(['hello', 'there', 'what', 'is', 'the']);
    expect(ofType(client, 'event')).toEqual([]);
  });

  it('speaks μ-law at 8 kHz; with wavHeader each generation starts with a WAV file', async () => {
    await start({ wavHeader: true });
    const client = await open(TTS_QUERY);
    client.send({ type: 'config', data: { target_language_code: 'hi-IN', speaker: 'vidya', speech_sample_rate: 8000, output_audio_codec: 'mulaw' } });
    client.send({ type: 'text', data: { text: 'okay sure' } });
    client.send({ type: 'flush' });
    await client.waitFor((m) => m.type === 'event');
    const chunks = audioOf(client);
    expect(chunks[0]!.toString('latin1', 0, 4)).toBe('RIFF');
    expect(chunks.slice(1).every((c) => c.toString('latin1', 0, 4) !== 'RIFF')).toBe(true);
    const first = chunks[0]!;
    const dataAt = first.indexOf('data') + 8;
    const ulaw = Buffer.concat([first.subarray(dataAt), ...chunks.slice(1)]);
    const pcm = new Int16Array(ulaw.length);
    mulawDecode(new Uint8Array(ulaw), pcm);
    expect(decodeWords(pcm, 8000)).toEqual(['okay', 'sure']);
  });

  it.each([
    ['text before config', [{ type: 'text', data: { text: 'hi' } }], 'config message first'],
    ['a v3 speaker on bulbul:v2 (the config model is ignored)', [{ type: 'config', data: { ...CONFIG.data, speaker: 'shubh', model: 'bulbul:v3' } }], 'not available'],
    ['the mp3 default codec', [{ type: 'config', data: { target_language_code: 'en-IN', speaker: 'anushka' } }], 'cannot produce mp3'],
    ['an unsupported sample rate', [{ type: 'config', data: { ...CONFIG.data, speech_sample_rate: '44100' } }], 'speech_sample_rate'],
    ['an unsupported language', [{ type: 'config', data: { ...CONFIG.data, target_language_code: 'fr-FR' } }], 'invalid config'],
    ['text over 2500 characters', [CONFIG, { type: 'text', data: { text: 'a'.repeat(2501) } }], '2500'],
    ['an unknown message type', [{ type: 'cancel' }], 'unknown message type'],
  ])('answers %s with an error frame', async (_name, messages, says) => {
    await start();
    const client = await open(TTS_QUERY);
    for (const m of messages) client.send(m);
    const error = await client.waitFor((m) => m.type === 'error');
    expect(String(dataOf(error).message)).toContain(says);
    expect(typeof dataOf(error).code).toBe('number');
  });

  it('a config update speaks the buffered text first, without a final', async () => {
    await start();
    const client = await open(TTS_QUERY);
    client.send(CONFIG);
    client.send({ type: 'text', data: { text: 'sorry ' } });
    client.send({ ...CONFIG, data: { ...CONFIG.data, pace: 1.2 } });
    await client.waitFor((m) => m.type === 'audio');
    await delay(150);
    expect(wordsOf(audioOf(client))).toEqual(['sorry']);
    expect(ofType(client, 'event')).toEqual([]);
  });

  it('ping keeps an idle socket open (no reply); without messages it closes after idleCloseMs', async () => {
    await start({ idleCloseMs: 250 });
    const client = await open(TTS_QUERY);
    client.send(CONFIG);
    for (let i = 0; i < 4; i++) {
      await delay(100);
      client.send({ type: 'ping' });
    }
    expect(client.messages).toEqual([]);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    const close = await client.closed;
    expect(close.code).toBe(1000);
    expect(fake!.connections[0]!.received.filter((m) => m === '{"type":"ping"}')).toHaveLength(4);
  });
});
