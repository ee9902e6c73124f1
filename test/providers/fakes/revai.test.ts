import { afterEach, describe, expect, it } from 'vitest';
import { splitWords, synthesizeWords } from '../../fakes/tones';
import { startRevAiFake, type RevAiFakeOptions, type RevAiFakeServer } from './revai';
import { connectRaw, refusedWith, type RawClient } from './ws-test-client';

/** The Rev.ai fake itself, through a raw `ws` client: it must be trustworthy before any adapter is judged by it. */

const CONTENT_TYPE = 'audio/x-raw;layout=interleaved;rate=16000;format=S16LE;channels=1';
let fake: RevAiFakeServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.close();
  fake = undefined;
});

async function start(options?: RevAiFakeOptions): Promise<RevAiFakeServer> {
  fake = await startRevAiFake(options);
  return fake;
}

const path = (server: RevAiFakeServer, over: Record<string, string> = {}) =>
  `/speechtotext/v1/stream?${new URLSearchParams({ access_token: server.apiKey, content_type: CONTENT_TYPE, ...over }).toString()}`;

async function open(server: RevAiFakeServer, over: Record<string, string> = {}): Promise<RawClient> {
  const client = await connectRaw(`${server.endpoint}${path(server, over)}`);
  clients.push(client);
  return client;
}

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
type Element = { type: string; value: string; ts?: number; end_ts?: number; confidence?: number };
const ofType = (client: RawClient, type: string) => client.messages.filter((m): m is Json => (m as Json)?.type === type);
const joined = (elements: Element[]) => elements.map((e) => e.value).join('');

describe('Rev.ai fake: handshake', () => {
  it('takes the token from access_token and answers connected; the content type arrives URL-encoded', async () => {
    const server = await start();
    const client = await open(server);
    const connected = await client.waitFor((m) => m.type === 'connected');
    expect(typeof connected.id).toBe('string');
    expect(server.connections[0]!.url).toContain('content_type=audio%2Fx-raw%3Blayout%3Dinterleaved');
  });

  it('refuses a missing or wrong token with 401 (default), or accepts and closes 4001 (authFailure close)', async () => {
    const server = await start();
    const refused = await refusedWith(`${server.endpoint}${path(server, { access_token: 'wrong' })}`);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ status: 401 });
    expect((await refusedWith(`${server.endpoint}/speechtotext/v1/stream?content_type=${encodeURIComponent(CONTENT_TYPE)}`)).status).toBe(401);
    await server.close();
    const closing = await start({ authFailure: 'close' });
    const client = await open(closing, { access_token: 'wrong' });
    expect((await client.closed).code).toBe(4001);
    expect(client.messages.some((m) => (m as Json).type === 'connected')).toBe(false);
  });

  it('a content type other than raw S16LE mono is accepted, then closed 4002; another path is 404', async () => {
    const server = await start();
    const client = await open(server, { content_type: 'audio/x-raw;layout=interleaved;rate=16000;format=F32LE;channels=1' });
    expect((await client.closed).code).toBe(4002);
    expect((await refusedWith(`${server.endpoint}/speechtotext/v2/stream?access_token=${server.apiKey}`)).status).toBe(404);
  });

  it('refuses upgrades on demand (429 then 503), then accepts', async () => {
    const server = await start();
    server.control.refuseNext(429);
    server.control.refuseNext(503);
    expect((await refusedWith(`${server.endpoint}${path(server)}`)).status).toBe(429);
    expect((await refusedWith(`${server.endpoint}${path(server)}`)).status).toBe(503);
    await open(server);
    expect(server.connections).toHaveLength(3);
  });
});

describe('Rev.ai fake: hypotheses', () => {
  it('hears tone words fed faster than real time in odd chunk sizes: a partial per word, a final after 300 ms of audio silence', async () => {
    const server = await start();
    const client = await open(server);
    sendInChunks(client, speech('hello what is the weather', 400), 1234);
    const final = await client.waitFor((m) => m.type === 'final');
    const elements = final.elements as Element[];
    expect(joined(elements)).toBe('Hello what is the weather.');
    expect(elements.filter((e) => e.type === 'punct').map((e) => e.value)).toEqual([' ', ' ', ' ', ' ', '.']);
    const words = elements.filter((e) => e.type === 'text');
    for (let i = 0; i < words.length; i++) {
      expect(words[i]!.end_ts!).toBeGreaterThan(words[i]!.ts!);
      expect(words[i]!.confidence).toBeGreaterThan(0);
      if (i > 0) expect(words[i]!.ts!).toBeGreaterThanOrEqual(words[i - 1]!.end_ts!);
    }
    expect(final.ts).toBe(0);
    expect(final.end_ts).toBe(words.at(-1)!.end_ts);
    const partials = ofType(client, 'partial').map((m) => (m.elements as Element[]).map((e) => e.value).join(' '));
    expect(partials).toEqual(['hello', 'hello what', 'hello what is', 'hello what is the', 'hello what is the weather']);
    expect(ofType(client, 'partial').every((m) => (m.elements as Element[]).every((e) => e.type === 'text'))).toBe(true);
  });

  it('does not finalise before 300 ms of silence; a second segment starts its own times', async () => {
    const server = await start();
    const client = await open(server);
    sendInChunks(client, speech('tell me a joke', 200), 3200);
    await client.waitFor((m) => m.type === 'partial' && (m.elements as Element[]).length === 4);
    await new Promise((r) => setTimeout(r, 100));
    expect(ofType(client, 'final')).toHaveLength(0);
    sendInChunks(client, speech('', 200), 3200);
    await client.waitFor((m) => m.type === 'final');
    const before = client.messages.length;
    sendInChunks(client, speech('thanks', 400), 3200);
    const second = await client.waitFor((m) => m.type === 'final', 3000, before);
    expect(joined(second.elements as Element[])).toBe('Thanks.');
    expect(second.ts as number).toBeGreaterThan(1);
  });

  it('EOS: the pending final (a word still sounding included), then close 1000', async () => {
    const server = await start();
    const client = await open(server);
    client.send(speech('goodbye').subarray(0, 180 * 32));
    client.send('EOS');
    const final = await client.waitFor((m) => m.type === 'final');
    expect(joined(final.elements as Element[])).toBe('Goodbye.');
    expect((await client.closed).code).toBe(1000);
  });

  it('any other text frame closes 4002', async () => {
    const server = await start();
    const client = await open(server);
    client.send('{"type":"KeepAlive"}');
    expect((await client.closed).code).toBe(4002);
  });
});

describe('Rev.ai fake: controls', () => {
  it('closes 1000 after idleCloseMs without audio; audio holds the session', async () => {
    const server = await start({ idleCloseMs: 300 });
    const fed = await open(server);
    const idle = await open(server);
    for (let i = 0; i < 6; i++) {
      fed.send(new Uint8Array(3200));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(fed.ws.readyState).toBe(fed.ws.OPEN);
    expect(await idle.closed).toEqual({ code: 1000, reason: 'idle timeout: no audio received' });
  });

  it.each([
    ['auth', 4001],
    ['bad-request', 4002],
    ['rate-limit', 4013],
    ['internal', 1011],
  ] as const)('errorAfterAccept(%s) closes %i', async (kind, code) => {
    const server = await start();
    server.control.errorAfterAccept(kind);
    const client = await open(server);
    expect((await client.closed).code).toBe(code);
  });

  it('closeAfterAccept closes the next connection with any code (4003 insufficient credits)', async () => {
    const server = await start();
    server.control.closeAfterAccept(4003, 'Insufficient credits');
    const client = await open(server);
    expect(await client.closed).toEqual({ code: 4003, reason: 'Insufficient credits' });
    await open(server).then((c) => c.waitFor((m) => m.type === 'connected'));
  });

  it('dropAfterWords terminates mid-utterance (1006); sendRaw reaches the client as is', async () => {
    const server = await start();
    const client = await open(server);
    await client.waitFor((m) => m.type === 'connected');
    server.control.sendRaw('not json');
    for (let i = 0; i < 100 && !client.messages.includes('not json'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(client.messages).toContain('not json');
    server.control.dropAfterWords(2);
    sendInChunks(client, speech('once upon a time'), 3200);
    expect((await client.closed).code).toBe(1006);
    expect(ofType(client, 'partial')).toHaveLength(1);
  });
});
