import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mulawDecode } from '../../../shared/audio/g711';
import { decodeWords, synthesizeWords } from '../../fakes/tones';
import { startDeepgramFake, type DeepgramFakeOptions, type DeepgramFakeServer } from './deepgram';

/** The fake itself, through a raw `ws` client: it must be trustworthy before any adapter is judged by it. */

const NOVA_QUERY = 'model=nova-3&encoding=linear16&sample_rate=16000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true';
const FLUX_QUERY = 'model=flux-general-en&encoding=linear16&sample_rate=16000';

interface RawClient {
  readonly ws: WebSocket;
  readonly texts: Record<string, unknown>[];
  readonly binary: Uint8Array[];
  readonly closed: Promise<{ code: number; reason: string }>;
}

let fake: DeepgramFakeServer | undefined;
const clients: WebSocket[] = [];

async function start(options?: DeepgramFakeOptions): Promise<DeepgramFakeServer> {
  fake = await startDeepgramFake(options);
  return fake;
}

afterEach(async () => {
  for (const ws of clients.splice(0)) ws.terminate();
  await fake?.close();
  fake = undefined;
});

function connect(server: DeepgramFakeServer, path: string, auth: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<RawClient> {
  const ws = new WebSocket(`${server.endpoint}${path}`, auth.protocols ?? [], {
    headers: auth.headers ?? (auth.protocols ? {} : { Authorization: `Token ${server.apiKey}` }),
  });
  clients.push(ws);
  const texts: Record<string, unknown>[] = [];
  const binary: Uint8Array[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('message', (data, isBinary) => {
    if (isBinary) binary.push(new Uint8Array(data as Buffer));
    else texts.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, texts, binary, closed }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

async function refusal(promise: Promise<unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    await promise;
  } catch (error) {
    const { status, body } = error as { status: number; body: string };
    return { status, body: JSON.parse(body) as Record<string, unknown> };
  }
  throw new Error('the upgrade was accepted');
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** PCM16 16 kHz of these words (plus trailing silence) as 20 ms frames. */
function frames(words: readonly string[], silenceMs = 0): Uint8Array[] {
  const { pcm } = synthesizeWords(words, 16_000);
  const all = new Int16Array(pcm.length + silenceMs * 16);
  all.set(pcm);
  const bytes = new Uint8Array(all.buffer);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 640) out.push(bytes.slice(i, Math.min(i + 640, bytes.length)));
  return out;
}

function sendAll(ws: WebSocket, chunks: readonly Uint8Array[]): void {
  for (const c of chunks) ws.send(c);
}

const results = (c: RawClient) => c.texts.filter((m) => m.type === 'Results') as {
  is_final: boolean;
  speech_final: boolean;
  from_finalize: boolean;
  start: number;
  duration: number;
  channel: { alternatives: { transcript: string; words: { word: string; start: number; end: number }[] }[] };
}[];
const transcript = (r: { channel: { alternatives: { transcript: string }[] } }) => r.channel.alternatives[0]!.transcript;

describe('deepgram fake: handshake', () => {
  it('refuses a wrong key with 401 and a Deepgram-like JSON body, and records the attempt', async () => {
    const server = await start();
    const refused = await refusal(connect(server, `/v1/listen?${NOVA_QUERY}`, { headers: { Authorization: 'Token wrong' } }));
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ err_code: 'INVALID_AUTH' });
    expect(server.connections).toHaveLength(1);
    expect(server.connections[0]).toMatchObject({ path: '/v1/listen', refusedStatus: 401 });
    // Bearer is for temporary tokens, not API keys.
    expect((await refusal(connect(server, `/v1/listen?${NOVA_QUERY}`, { headers: { Authorization: `Bearer ${server.apiKey}` } }))).status).toBe(401);
  });

  it('accepts the browser subprotocol pair `token, <key>`', async () => {
    const server = await start();
    const client = await connect(server, `/v1/listen?${NOVA_QUERY}`, { protocols: ['token', server.apiKey] });
    expect(client.ws.protocol).toBe('token');
    expect(server.connections[0]!.headers['sec-websocket-protocol']!.split(',').map((p) => p.trim())).toEqual(['token', server.apiKey]);
  });

  it('refuses the next upgrades on request (429, 503), then accepts', async () => {
    const server = await start();
    server.control.refuseNext(429);
    server.control.refuseNext(503);
    expect((await refusal(connect(server, `/v1/listen?${NOVA_QUERY}`))).status).toBe(429);
    expect((await refusal(connect(server, `/v1/listen?${NOVA_QUERY}`))).status).toBe(503);
    await connect(server, `/v1/listen?${NOVA_QUERY}`);
    expect(server.connections.map((c) => c.refusedStatus)).toEqual([429, 503, undefined]);
  });

  it('answers 400 to queries it cannot serve: a Flux model on v1, Nova on v2, another encoding, an unsupported speak rate', async () => {
    const server = await start();
    expect((await refusal(connect(server, '/v1/listen?model=flux-general-en&encoding=linear16&sample_rate=16000'))).status).toBe(400);
    expect((await refusal(connect(server, '/v2/listen?model=nova-3&encoding=linear16&sample_rate=16000'))).status).toBe(400);
    expect((await refusal(connect(server, '/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000'))).status).toBe(400);
    const speak = await refusal(connect(server, '/v1/speak?model=aura-2-thalia-en&encoding=linear16&sample_rate=44100'));
    expect(speak.status).toBe(400);
    expect(String(speak.body.err_msg)).toContain('44100');
    expect((await refusal(connect(server, '/v1/transcribe'))).status).toBe(404);
  });
});

describe('deepgram fake: Nova /v1/listen', () => {
  it('hears tone words: SpeechStarted, growing interims, then is_final + speech_final after 300 ms of silence, then UtteranceEnd', async () => {
    const server = await start();
    const client = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    const words = ['hello', 'what', 'is', 'the', 'weather'];
    sendAll(client.ws, frames(words, 1200));
    await until(() => client.texts.some((m) => m.type === 'UtteranceEnd'));
    const types = client.texts.map((m) => m.type);
    expect(types[0]).toBe('SpeechStarted');
    const all = results(client);
    const interims = all.filter((r) => !r.is_final).map(transcript);
    expect(interims).toEqual(['hello', 'hello what', 'hello what is', 'hello what is the', 'hello what is the weather']);
    const finals = all.filter((r) => r.is_final);
    expect(finals).toHaveLength(1);
    expect(transcript(finals[0]!)).toBe('hello what is the weather');
    expect(finals[0]!.speech_final).toBe(true);
    // Stream time: the spans of the synthesised words, within a frame or two.
    const { spans } = synthesizeWords(words, 16_000);
    const heard = finals[0]!.channel.alternatives[0]!.words;
    heard.forEach((w, i) => {
      expect(w.word).toBe(spans[i]!.word);
      expect(Math.abs(w.start * 1000 - spans[i]!.startMs)).toBeLessThanOrEqual(40);
      expect(Math.abs(w.end * 1000 - spans[i]!.endMs)).toBeLessThanOrEqual(40);
    });
    const lastEnd = spans.at(-1)!.endMs / 1000;
    expect(finals[0]!.start).toBe(0);
    expect(finals[0]!.start + finals[0]!.duration).toBeGreaterThanOrEqual(lastEnd + 0.3);
    expect(types.indexOf('UtteranceEnd')).toBeGreaterThan(types.lastIndexOf('Results'));
  });

  it('leaves SpeechStarted, interims and UtteranceEnd out when the query does not ask for them', async () => {
    const server = await start();
    const client = await connect(server, '/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&channels=1&interim_results=false&endpointing=300');
    sendAll(client.ws, frames(['tell', 'me', 'a', 'joke'], 1200));
    await until(() => results(client).some((r) => r.is_final));
    await new Promise((r) => setTimeout(r, 50));
    expect(client.texts.map((m) => m.type)).toEqual(['Results']);
    expect(transcript(results(client)[0]!)).toBe('tell me a joke');
  });

  it('Finalize turns buffered words into a final with from_finalize, before any silence', async () => {
    const server = await start();
    const client = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    sendAll(client.ws, frames(['stop', 'wait']));
    client.ws.send(JSON.stringify({ type: 'Finalize' }));
    await until(() => results(client).some((r) => r.is_final));
    const final = results(client).find((r) => r.is_final)!;
    expect(transcript(final)).toBe('stop wait');
    expect(final.from_finalize).toBe(true);
    expect(final.speech_final).toBe(false);
  });

  it('CloseStream sends the last final, then Metadata, then closes 1000', async () => {
    const server = await start();
    const client = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    sendAll(client.ws, frames(['thanks', 'goodbye']));
    client.ws.send(JSON.stringify({ type: 'CloseStream' }));
    const closed = await client.closed;
    expect(closed.code).toBe(1000);
    const last = client.texts.slice(-2);
    expect(last[0]).toMatchObject({ type: 'Results', is_final: true });
    expect(transcript(last[0] as never)).toBe('thanks goodbye');
    expect(last[1]).toMatchObject({ type: 'Metadata', channels: 1 });
    expect(server.connections[0]!.received.at(-1)).toBe('{"type":"CloseStream"}');
  });

  it('closes an idle stream with 1011 NET-0001; KeepAlive text frames keep it open', async () => {
    const server = await start({ idleCloseMs: 200 });
    const kept = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    const idle = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    const keepAlive = setInterval(() => kept.ws.send(JSON.stringify({ type: 'KeepAlive' })), 50);
    try {
      const closed = await idle.closed;
      expect(closed).toEqual({ code: 1011, reason: 'NET-0001' });
      await new Promise((r) => setTimeout(r, 250));
      expect(kept.ws.readyState).toBe(WebSocket.OPEN);
      // KeepAlive gets no reply.
      expect(kept.texts).toEqual([]);
    } finally {
      clearInterval(keepAlive);
    }
  });

  it('drops the connection (no close frame: 1006) after the asked number of words, sends raw frames, closes with a frame on request', async () => {
    const server = await start();
    const client = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    server.control.dropAfterWords(2);
    sendAll(client.ws, frames(['once', 'upon', 'a', 'time'], 400));
    expect((await client.closed).code).toBe(1006);
    expect(results(client).filter((r) => !r.is_final).map(transcript)).toEqual(['once', 'once upon']);
    expect(results(client).some((r) => r.is_final)).toBe(false);

    const raw = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    server.control.sendRaw('{"type":"no-such-message"}');
    server.control.sendRaw(new Uint8Array([1, 2]));
    await until(() => raw.texts.length === 1 && raw.binary.length === 1);
    expect(raw.texts[0]).toEqual({ type: 'no-such-message' });
    raw.ws.terminate();

    const other = await connect(server, `/v1/listen?${NOVA_QUERY}`);
    server.control.drop({ code: 1011, reason: 'NET-0000' });
    expect(await other.closed).toEqual({ code: 1011, reason: 'NET-0000' });
  });
});

describe('deepgram fake: Flux /v2/listen', () => {
  it('Connected first, StartOfTurn/Update per word, EndOfTurn (trigger model) after silence, increasing sequence ids', async () => {
    const server = await start();
    const client = await connect(server, `/v2/listen?${FLUX_QUERY}`);
    sendAll(client.ws, frames(['okay', 'hello', 'weather'], 500));
    await until(() => client.texts.some((m) => m.event === 'EndOfTurn'));
    expect(client.texts[0]).toMatchObject({ type: 'Connected', sequence_id: 0 });
    const ids = client.texts.map((m) => m.sequence_id as number);
    expect(ids).toEqual(ids.map((_, i) => i));
    const turn = client.texts.filter((m) => m.type === 'TurnInfo');
    expect(turn[0]).toMatchObject({ event: 'StartOfTurn', transcript: 'okay', turn_index: 0 });
    const end = turn.find((m) => m.event === 'EndOfTurn')!;
    expect(end).toMatchObject({ transcript: 'okay hello weather', trigger: 'model', turn_index: 0 });
    expect((end.words as unknown[]).length).toBe(3);

    // The next turn has the next index.
    sendAll(client.ws, frames(['hi'], 500));
    await until(() => client.texts.filter((m) => m.event === 'EndOfTurn').length === 2);
    expect(client.texts.filter((m) => m.event === 'EndOfTurn')[1]).toMatchObject({ transcript: 'hi', turn_index: 1 });
  });

  it('EagerEndOfTurn after a short pause, TurnResumed when speech comes back, with eager_eot_threshold', async () => {
    const server = await start();
    const client = await connect(server, `/v2/listen?${FLUX_QUERY}&eager_eot_threshold=0.5`);
    sendAll(client.ws, frames(['what', 'is'], 200));
    sendAll(client.ws, frames(['the', 'weather'], 500));
    await until(() => client.texts.some((m) => m.event === 'EndOfTurn'));
    const events = client.texts.filter((m) => m.type === 'TurnInfo').map((m) => m.event);
    expect(events.indexOf('EagerEndOfTurn')).toBeGreaterThan(0);
    expect(events.indexOf('TurnResumed')).toBeGreaterThan(events.indexOf('EagerEndOfTurn'));
    expect(client.texts.find((m) => m.event === 'EndOfTurn')).toMatchObject({ transcript: 'what is the weather' });
  });

  it('ForceEndTurn ends the turn at once with trigger manual; ignored without a turn', async () => {
    const server = await start();
    const client = await connect(server, `/v2/listen?${FLUX_QUERY}`);
    client.ws.send(JSON.stringify({ type: 'ForceEndTurn' }));
    sendAll(client.ws, frames(['sure', 'okay']));
    client.ws.send(JSON.stringify({ type: 'ForceEndTurn' }));
    await until(() => client.texts.some((m) => m.event === 'EndOfTurn'));
    const ends = client.texts.filter((m) => m.event === 'EndOfTurn');
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ transcript: 'sure okay', trigger: 'manual' });
  });

  it('CloseStream: Updates for what is left, no EndOfTurn, a close without status code', async () => {
    const server = await start();
    const client = await connect(server, `/v2/listen?${FLUX_QUERY}`);
    sendAll(client.ws, frames(['still', 'there']));
    client.ws.send(JSON.stringify({ type: 'CloseStream' }));
    const closed = await client.closed;
    expect(closed.code).toBe(1005);
    expect(client.texts.some((m) => m.event === 'EndOfTurn')).toBe(false);
    expect(client.texts.at(-1)).toMatchObject({ type: 'TurnInfo', transcript: 'still there' });
  });

  it('Configure → ConfigureSuccess echoing the thresholds', async () => {
    const server = await start();
    const client = await connect(server, `/v2/listen?${FLUX_QUERY}`);
    client.ws.send(JSON.stringify({ type: 'Configure', thresholds: { eot_threshold: 0.8, eot_timeout_ms: 3000 } }));
    await until(() => client.texts.some((m) => m.type === 'ConfigureSuccess'));
    expect(client.texts.find((m) => m.type === 'ConfigureSuccess')).toMatchObject({ thresholds: { eot_threshold: 0.8, eot_timeout_ms: 3000 }, sequence_id: 1 });
  });
});

describe('deepgram fake: Aura /v1/speak', () => {
  const SPEAK_QUERY = 'model=aura-2-thalia-en&encoding=linear16&sample_rate=16000';

  function pcmOf(chunks: readonly Uint8Array[]): Int16Array {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      bytes.set(c, offset);
      offset += c.length;
    }
    return new Int16Array(bytes.buffer, 0, total >> 1);
  }

  it('Metadata on open; Speak + Flush → binary audio that decodes to the words, then Flushed with sequence ids 0, 1', async () => {
    const server = await start({ speakPacing: { realtimeFactor: Infinity } });
    const client = await connect(server, `/v1/speak?${SPEAK_QUERY}`);
    await until(() => client.texts.length > 0);
    expect(client.texts[0]).toMatchObject({ type: 'Metadata', model_name: 'aura-2-thalia-en' });
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'Hello there. ' }));
    client.ws.send(JSON.stringify({ type: 'Flush' }));
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'What is the ' }));
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'weather today?' }));
    client.ws.send(JSON.stringify({ type: 'Flush' }));
    await until(() => client.texts.filter((m) => m.type === 'Flushed').length === 2);
    expect(client.texts.filter((m) => m.type === 'Flushed').map((m) => m.sequence_id)).toEqual([0, 1]);
    expect(decodeWords(pcmOf(client.binary), 16_000)).toEqual(['hello', 'there', 'what', 'is', 'the', 'weather', 'today']);
  });

  it('speaks μ-law at 8 kHz when asked', async () => {
    const server = await start({ speakPacing: { realtimeFactor: Infinity } });
    const client = await connect(server, '/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000');
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'okay sure' }));
    client.ws.send(JSON.stringify({ type: 'Flush' }));
    await until(() => client.texts.some((m) => m.type === 'Flushed'));
    const ulaw = new Uint8Array(client.binary.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of client.binary) {
      ulaw.set(c, offset);
      offset += c.length;
    }
    const pcm = new Int16Array(ulaw.length);
    mulawDecode(ulaw, pcm);
    // 8 kHz: 8 bytes per ms, the synthesised length exactly.
    expect(ulaw.length).toBe(synthesizeWords(['okay', 'sure'], 8000).pcm.length);
    expect(decodeWords(pcm, 8000)).toEqual(['okay', 'sure']);
  });

  it('paces audio in ~40 ms frames, and Clear stops it mid-sentence with Cleared and no Flushed', async () => {
    const server = await start({ speakPacing: { chunkMs: 40, realtimeFactor: 2 } });
    const client = await connect(server, `/v1/speak?${SPEAK_QUERY}`);
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'once upon a time there was a dragon' }));
    client.ws.send(JSON.stringify({ type: 'Flush' }));
    await until(() => client.binary.length >= 3);
    client.ws.send(JSON.stringify({ type: 'Clear' }));
    await until(() => client.texts.some((m) => m.type === 'Cleared'));
    const atClear = client.binary.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(client.binary.length).toBe(atClear);
    expect(client.binary[0]!.length).toBe(1280);
    const total = synthesizeWords('once upon a time there was a dragon'.split(' '), 16_000).pcm.length * 2;
    expect(atClear * 1280).toBeLessThan(total);
    expect(client.texts.some((m) => m.type === 'Flushed')).toBe(false);
    expect(client.texts.find((m) => m.type === 'Cleared')).toMatchObject({ sequence_id: 0 });
  });

  it('ignores a flush past the limit and says so in a Warning', async () => {
    const server = await start({ speakPacing: { realtimeFactor: Infinity }, flushLimit: { count: 2, windowMs: 60_000 } });
    const client = await connect(server, `/v1/speak?${SPEAK_QUERY}`);
    for (const word of ['hi', 'okay', 'sure']) {
      client.ws.send(JSON.stringify({ type: 'Speak', text: word }));
      client.ws.send(JSON.stringify({ type: 'Flush' }));
    }
    await until(() => client.texts.some((m) => m.type === 'Warning'));
    await new Promise((r) => setTimeout(r, 50));
    expect(client.texts.filter((m) => m.type === 'Flushed')).toHaveLength(2);
    expect(String(client.texts.find((m) => m.type === 'Warning')!.description)).toMatch(/flush/i);
  });

  it('Close finishes the queued audio, then closes 1000', async () => {
    const server = await start({ speakPacing: { realtimeFactor: 8 } });
    const client = await connect(server, `/v1/speak?${SPEAK_QUERY}`);
    client.ws.send(JSON.stringify({ type: 'Speak', text: 'goodbye' }));
    client.ws.send(JSON.stringify({ type: 'Flush' }));
    client.ws.send(JSON.stringify({ type: 'Close' }));
    expect((await client.closed).code).toBe(1000);
    expect(client.texts.some((m) => m.type === 'Flushed')).toBe(true);
    expect(decodeWords(pcmOf(client.binary), 16_000)).toEqual(['goodbye']);
  });
});
