import { afterEach, describe, expect, it } from 'vitest';
import { splitWords, synthesizeWords } from '../../fakes/tones';
import { startAssemblyAiFake, type AssemblyAiFakeOptions, type AssemblyAiFakeServer } from './assemblyai';
import { connectRaw, refusedWith, type RawClient } from './ws-test-client';

/** The AssemblyAI fake itself, through a raw `ws` client: it must be trustworthy before any adapter is judged by it. */

const QUERY = '/v3/ws?sample_rate=16000&encoding=pcm_s16le&speech_model=universal-streaming-english';
const BYTES_PER_MS = 32;
let fake: AssemblyAiFakeServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.close();
  fake = undefined;
});

async function start(options?: AssemblyAiFakeOptions): Promise<AssemblyAiFakeServer> {
  fake = await startAssemblyAiFake(options);
  return fake;
}

async function open(server: AssemblyAiFakeServer, query = QUERY, headers: Record<string, string> = { Authorization: server.apiKey }): Promise<RawClient> {
  const client = await connectRaw(`${server.endpoint}${query}`, headers);
  clients.push(client);
  return client;
}

/** Speech as PCM16 16 kHz followed by `silenceMs` of silence. */
function speech(text: string, silenceMs = 0): Uint8Array {
  const { pcm } = synthesizeWords(splitWords(text), 16000);
  const out = new Int16Array(pcm.length + (silenceMs * 16000) / 1000);
  out.set(pcm);
  return new Uint8Array(out.buffer);
}

/** Send in messages of `chunkMs` (the last one padded with silence to a whole message). */
function sendChunks(client: RawClient, audio: Uint8Array, chunkMs = 100): void {
  const bytes = chunkMs * BYTES_PER_MS;
  for (let at = 0; at < audio.length; at += bytes) {
    const chunk = new Uint8Array(bytes);
    chunk.set(audio.subarray(at, Math.min(audio.length, at + bytes)));
    client.send(chunk);
  }
}

type Json = Record<string, unknown>;
const turns = (client: RawClient) => client.messages.filter((m): m is Json => (m as Json)?.type === 'Turn');
const endOfTurns = (client: RawClient) => turns(client).filter((m) => m.end_of_turn === true);

describe('AssemblyAI fake: handshake', () => {
  it('accepts the raw Authorization key (and a token query), sends Begin, and records the upgrade', async () => {
    const server = await start();
    const client = await open(server);
    const begin = await client.waitFor((m) => m.type === 'Begin');
    expect(typeof begin.id).toBe('string');
    expect(typeof begin.expires_at).toBe('number');
    expect(server.connections[0]!.headers.authorization).toBe(server.apiKey);
    const byToken = await open(server, `${QUERY}&token=${server.apiKey}`, {});
    await byToken.waitFor((m) => m.type === 'Begin');
  });

  it('a wrong or missing key: accepted, then Error 1008 and close 1008 (v3), no Begin', async () => {
    const server = await start();
    for (const headers of [{ Authorization: 'wrong' }, {}] as Record<string, string>[]) {
      const client = await open(server, QUERY, headers);
      const error = await client.waitFor((m) => m.type === 'Error');
      expect(error.error_code).toBe(1008);
      expect(String(error.error)).toMatch(/Unauthorized Connection/);
      expect((await client.closed).code).toBe(1008);
      expect(client.messages.some((m) => (m as Json).type === 'Begin')).toBe(false);
    }
  });

  it('authFailure handshake: a wrong key is refused with 401', async () => {
    const server = await start({ authFailure: 'handshake' });
    expect((await refusedWith(`${server.endpoint}${QUERY}`, { Authorization: 'wrong' })).status).toBe(401);
    await open(server);
  });

  it('refuses a missing sample_rate or speech_model, an unknown model, another encoding or path with 400/404', async () => {
    const server = await start();
    const headers = { Authorization: server.apiKey };
    expect((await refusedWith(`${server.endpoint}/v3/ws?speech_model=universal-streaming-english`, headers)).status).toBe(400);
    expect((await refusedWith(`${server.endpoint}/v3/ws?sample_rate=16000`, headers)).status).toBe(400);
    expect((await refusedWith(`${server.endpoint}/v3/ws?sample_rate=16000&speech_model=nova-3`, headers)).status).toBe(400);
    expect((await refusedWith(`${server.endpoint}${QUERY.replace('pcm_s16le', 'pcm_mulaw')}`, headers)).status).toBe(400);
    expect((await refusedWith(`${server.endpoint}/v2/realtime/ws?sample_rate=16000`, headers)).status).toBe(404);
  });

  it('refuses upgrades on demand (429 then 503), then accepts', async () => {
    const server = await start();
    server.control.refuseNext(429);
    server.control.refuseNext(503);
    expect((await refusedWith(`${server.endpoint}${QUERY}`, { Authorization: server.apiKey })).status).toBe(429);
    expect((await refusedWith(`${server.endpoint}${QUERY}`, { Authorization: server.apiKey })).status).toBe(503);
    await open(server);
    expect(server.connections).toHaveLength(3);
  });
});

describe('AssemblyAI fake: turns', () => {
  it('hears tone words fed faster than real time: growing Turns with a non-final tail, then an end of turn after 400 ms of audio silence', async () => {
    const server = await start();
    const client = await open(server);
    sendChunks(client, speech('hello what is the weather', 500));
    const eot = await client.waitFor((m) => m.type === 'Turn' && m.end_of_turn === true);
    expect(eot).toMatchObject({ turn_order: 0, turn_is_formatted: false, transcript: 'hello what is the weather' });
    const partials = turns(client).filter((m) => m.end_of_turn === false);
    expect(partials.map((m) => m.transcript)).toEqual(['', 'hello', 'hello what', 'hello what is', 'hello what is the']);
    const last = partials.at(-1)!.words as { text: string; word_is_final: boolean }[];
    expect(last.map((w) => [w.text, w.word_is_final])).toEqual([
      ['hello', true],
      ['what', true],
      ['is', true],
      ['the', true],
      ['weather', false],
    ]);
    const words = eot.words as { text: string; start: number; end: number; word_is_final: boolean }[];
    expect(words.every((w) => w.word_is_final)).toBe(true);
    for (let i = 0; i < words.length; i++) {
      expect(words[i]!.end).toBeGreaterThan(words[i]!.start);
      if (i > 0) expect(words[i]!.start).toBeGreaterThanOrEqual(words[i - 1]!.end);
    }
    // Word times are ms of audio: "hello" is 170 ms of tone from 0.
    expect(words[0]!.start).toBe(0);
    expect(words[0]!.end).toBeGreaterThanOrEqual(160);
    expect(words[0]!.end).toBeLessThanOrEqual(200);
    const started = client.messages.findIndex((m) => (m as Json).type === 'SpeechStarted');
    expect(started).toBeGreaterThan(-1);
    expect(started).toBeLessThan(client.messages.findIndex((m) => (m as Json).type === 'Turn'));
  });

  it('does not end the turn before min_turn_silence (query) of audio silence', async () => {
    const server = await start();
    const client = await open(server, `${QUERY}&min_turn_silence=700`);
    sendChunks(client, speech('tell me a joke', 500));
    await client.waitFor((m) => m.type === 'Turn' && m.transcript === 'tell me a');
    await new Promise((r) => setTimeout(r, 100));
    expect(endOfTurns(client)).toHaveLength(0);
    sendChunks(client, speech('', 300));
    const eot = await client.waitFor((m) => m.type === 'Turn' && m.end_of_turn === true);
    expect(eot.transcript).toBe('tell me a joke');
  });

  it('format_turns=true: the unformatted end of turn, then a formatted one with the same turn_order; the next turn counts on', async () => {
    const server = await start();
    const client = await open(server, `${QUERY}&format_turns=true`);
    sendChunks(client, speech('is it sunny', 500));
    await client.waitFor((m) => m.type === 'Turn' && m.turn_is_formatted === true);
    expect(endOfTurns(client).map((m) => [m.turn_order, m.turn_is_formatted, m.transcript])).toEqual([
      [0, false, 'is it sunny'],
      [0, true, 'Is it sunny.'],
    ]);
    sendChunks(client, speech('thanks', 500));
    await client.waitFor((m) => m.type === 'Turn' && m.turn_is_formatted === true && m.turn_order === 1);
  });

  it('ForceEndpoint ends the turn at once, a word still sounding included; nothing when no word is pending', async () => {
    const server = await start();
    const client = await open(server);
    // 700 ms: "joke" (550–710 ms) is still sounding when the audio stops.
    sendChunks(client, speech('tell me a joke').subarray(0, 700 * BYTES_PER_MS));
    client.send({ type: 'ForceEndpoint' });
    const eot = await client.waitFor((m) => m.type === 'Turn' && m.end_of_turn === true);
    expect(eot.transcript).toBe('tell me a joke');
    client.send({ type: 'ForceEndpoint' });
    client.send({ type: 'KeepAlive' });
    await new Promise((r) => setTimeout(r, 100));
    expect(endOfTurns(client)).toHaveLength(1);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('Terminate: the pending turn ends, Termination, close 1000', async () => {
    const server = await start();
    const client = await open(server);
    sendChunks(client, speech('goodbye'));
    client.send({ type: 'Terminate' });
    const termination = await client.waitFor((m) => m.type === 'Termination');
    expect(typeof termination.audio_duration_seconds).toBe('number');
    expect(endOfTurns(client).map((m) => m.transcript)).toEqual(['goodbye']);
    const at = (type: string) => client.messages.findIndex((m) => (m as Json).type === type && (type !== 'Turn' || (m as Json).end_of_turn === true));
    expect(at('Turn')).toBeLessThan(at('Termination'));
    expect((await client.closed).code).toBe(1000);
  });

  it('UpdateConfiguration switches formatting on mid-stream', async () => {
    const server = await start();
    const client = await open(server);
    client.send({ type: 'UpdateConfiguration', format_turns: true });
    sendChunks(client, speech('hi', 500));
    const formatted = await client.waitFor((m) => m.type === 'Turn' && m.turn_is_formatted === true);
    expect(formatted.transcript).toBe('Hi.');
  });
});

describe('AssemblyAI fake: rules and errors', () => {
  it.each([
    ['20 ms', 20],
    ['1100 ms', 1100],
  ])('an audio message of %s: Error 3007 "Input duration violation" and close 3007', async (_label, ms) => {
    const server = await start();
    const client = await open(server);
    client.send(new Uint8Array(ms * BYTES_PER_MS));
    const error = await client.waitFor((m) => m.type === 'Error');
    expect(error.error_code).toBe(3007);
    expect(String(error.error)).toMatch(/Input duration violation: \d+ ms\. Expected between 50 and 1000 ms/);
    expect((await client.closed).code).toBe(3007);
  });

  it('50 and 1000 ms messages are accepted', async () => {
    const server = await start();
    const client = await open(server);
    client.send(new Uint8Array(50 * BYTES_PER_MS));
    client.send(new Uint8Array(1000 * BYTES_PER_MS));
    client.send({ type: 'Terminate' });
    await client.waitFor((m) => m.type === 'Termination');
    expect(client.messages.some((m) => (m as Json).type === 'Error')).toBe(false);
  });

  it('the real-time rule is off by default (8× real time is fine) and, when on, faster audio gets 3007 "Audio Transmission Rate Exceeded"', async () => {
    const relaxed = await start();
    const fast = await open(relaxed);
    sendChunks(fast, speech('', 3000));
    fast.send({ type: 'Terminate' });
    await fast.waitFor((m) => m.type === 'Termination');
    await relaxed.close();

    const strict = await start({ enforceRealTime: { toleranceMs: 300 } });
    const paced = await open(strict);
    // Paced at real time (100 ms per 100 ms, under the tolerance): no error.
    for (let i = 0; i < 5; i++) {
      paced.send(new Uint8Array(100 * BYTES_PER_MS));
      await new Promise((r) => setTimeout(r, 100));
    }
    const burst = await open(strict);
    sendChunks(burst, speech('', 2000));
    const error = await burst.waitFor((m) => m.type === 'Error');
    expect(error.error_code).toBe(3007);
    expect(String(error.error)).toMatch(/Audio Transmission Rate Exceeded: Received [\d.]+ sec\. audio in [\d.]+ sec/);
    expect((await burst.closed).code).toBe(3007);
    expect(paced.messages.some((m) => (m as Json).type === 'Error')).toBe(false);
  });

  it.each([
    ['{"type":', /Invalid JSON/],
    ['[]', /Invalid Message/],
    ['{"type":"Finalize"}', /Invalid Message Type: Finalize/],
  ])('a bad client message %s: Error 3006 and close 3006', async (message, text) => {
    const server = await start();
    const client = await open(server);
    client.send(message);
    const error = await client.waitFor((m) => m.type === 'Error');
    expect(error.error_code).toBe(3006);
    expect(String(error.error)).toMatch(text);
    expect((await client.closed).code).toBe(3006);
  });

  it('inactivity: no audio or KeepAlive for idleCloseMs → Termination and close 1000; KeepAlive holds the session', async () => {
    const server = await start({ idleCloseMs: 300 });
    const kept = await open(server);
    const idle = await open(server);
    for (let i = 0; i < 6; i++) {
      kept.send({ type: 'KeepAlive' });
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(kept.ws.readyState).toBe(kept.ws.OPEN);
    await idle.waitFor((m) => m.type === 'Termination');
    expect((await idle.closed).code).toBe(1000);
  });

  it('without idleCloseMs the inactivity timeout comes from the query (seconds); without either there is none', async () => {
    const server = await start();
    const none = await open(server);
    await new Promise((r) => setTimeout(r, 300));
    expect(none.ws.readyState).toBe(none.ws.OPEN);
    // Sub-second values are not something v3 accepts; the fake takes them to keep the test short.
    const timed = await open(server, `${QUERY}&inactivity_timeout=0.2`);
    await timed.waitFor((m) => m.type === 'Termination');
  });

  it.each([
    ['auth', 1008],
    ['bad-request', 3006],
    ['rate-limit', 3009],
    ['internal', 3005],
  ] as const)('errorAfterAccept(%s) sends Error %i then closes with the same code', async (kind, code) => {
    const server = await start();
    server.control.errorAfterAccept(kind);
    const client = await open(server);
    const error = await client.waitFor((m) => m.type === 'Error');
    expect(error.error_code).toBe(code);
    expect((await client.closed).code).toBe(code);
  });

  it('fail(code, message) ends open sessions with that Error; a long message gets the short close reason', async () => {
    const server = await start();
    const client = await open(server);
    await client.waitFor((m) => m.type === 'Begin');
    server.control.fail(3008, `Session Expired: Maximum session duration exceeded ${'x'.repeat(120)}`);
    expect((await client.waitFor((m) => m.type === 'Error')).error_code).toBe(3008);
    expect(await client.closed).toEqual({ code: 3008, reason: 'See Error message for details' });
  });

  it('dropAfterWords terminates mid-utterance (no close frame); sendRaw reaches the client as is', async () => {
    const server = await start();
    const client = await open(server);
    await client.waitFor((m) => m.type === 'Begin');
    server.control.sendRaw('{"type":');
    for (let i = 0; i < 100 && !client.messages.includes('{"type":'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(client.messages).toContain('{"type":');
    server.control.dropAfterWords(2);
    sendChunks(client, speech('once upon a time'));
    expect((await client.closed).code).toBe(1006);
    expect(turns(client).map((m) => m.words as unknown[]).at(-1)).toHaveLength(1);
    expect(server.connections[0]!.closeCode).toBe(1006);
  });
});
