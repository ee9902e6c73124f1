import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWorker } from './bundle';
import { WebSocketServer } from 'ws';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { startCartesiaFake, type CartesiaFakeServer } from '../providers/fakes/cartesia';
import { startDeepgramFake, type DeepgramFakeServer } from '../providers/fakes/deepgram';
import type { ProvidersJob, ProvidersResult } from './providers-worker';

/**
 * The cloud speech adapters inside real workerd (miniflare), on edge/providers/fetch-socket.ts, against the
 * Deepgram and Cartesia fakes served by this Node process on 127.0.0.1 (workerd's outbound fetch reaches
 * loopback locally; production refuses private addresses). No nodejs_compat: the bundle is web-standard.
 */

const SPOKEN = ['hello', 'what', 'is', 'the', 'weather', 'today'];
const TEXT = 'hello there. what is the weather today';

let outDir: string;
let mf: Miniflare | undefined;
let deepgram: DeepgramFakeServer;
let cartesia: CartesiaFakeServer;
let raw: Awaited<ReturnType<typeof startRawServer>>;
let result: ProvidersResult & { error?: string };
let status: number;

interface RawRecord {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly received: (string | number[])[];
  closeCode?: number;
}

/** Plain servers for the factory's own cases: echo, refuse (503 + 100 KB), hang, drop (no Close), close 1011. */
async function startRawServer() {
  const records: RawRecord[] = [];
  const sockets = new Set<Duplex>();
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('token') ? 'token' : false) });
  const http: Server = createServer((_req, res) => res.writeHead(426).end());
  http.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    const path = new URL(req.url ?? '/', 'http://raw').pathname;
    const record: RawRecord = { path: req.url ?? '/', headers: req.headers, received: [] };
    records.push(record);
    if (path === '/refuse') {
      const body = 'x'.repeat(100_000);
      socket.end(`HTTP/1.1 503 Busy\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    if (path === '/hang') return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        record.received.push(isBinary ? [...data] : data.toString('utf8'));
        if (path === '/echo') ws.send(data, { binary: isBinary });
      });
      ws.on('close', (code) => (record.closeCode = code));
      ws.on('error', () => undefined);
      if (path === '/drop') setTimeout(() => ws.terminate(), 50);
      if (path === '/close') setTimeout(() => ws.close(1011, 'NET-0001'), 50);
    });
  });
  await new Promise<void>((done) => http.listen(0, '127.0.0.1', done));
  const base = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;

  // A port nothing listens on: bind one, then release it.
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((done) => probe.close(() => done()));

  return {
    records,
    urls: {
      echoUrl: base,
      refuseUrl: `${base}/refuse`,
      hangUrl: `${base}/hang`,
      deadUrl: `ws://127.0.0.1:${deadPort}/`,
      dropUrl: `${base}/drop`,
      closeUrl: `${base}/close`,
    },
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        for (const client of wss.clients) client.terminate();
        wss.close();
        http.closeAllConnections();
        http.close(() => done());
      }),
  };
}

beforeAll(async () => {
  [deepgram, cartesia, raw] = await Promise.all([startDeepgramFake(), startCartesiaFake(), startRawServer()]);
  outDir = await mkdtemp(join(tmpdir(), 'workerd-providers-'));
  await bundleWorker({ worker: join(import.meta.dirname, 'providers-worker.ts') }, outDir);
  mf = new Miniflare({ modules: true, scriptPath: join(outDir, 'worker.js'), modulesRoot: outDir, compatibilityDate: '2026-04-20', cf: false });
  await mf.ready;

  const job: ProvidersJob = {
    deepgramEndpoint: deepgram.endpoint,
    deepgramKey: deepgram.apiKey,
    cartesiaEndpoint: cartesia.endpoint,
    cartesiaKey: cartesia.apiKey,
    pcmBase64: Buffer.from(pcmBytes(synthesizeWords(SPOKEN, 16_000).pcm)).toString('base64'),
    text: TEXT,
    raw: raw.urls,
  };
  const response = await mf.dispatchFetch('http://providers.test/', { method: 'POST', body: JSON.stringify(job) });
  status = response.status;
  result = (await response.json()) as ProvidersResult & { error?: string };
}, 90_000);

afterAll(async () => {
  await mf?.dispose();
  await Promise.all([deepgram?.close(), cartesia?.close(), raw?.close()]);
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

function pcmBytes(pcm: Int16Array): Uint8Array {
  return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

function wordsOf(base64: string): string[] {
  const bytes = Buffer.from(base64, 'base64');
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  return decodeWords(new Int16Array(aligned.buffer, 0, aligned.byteLength >> 1), 16_000);
}

describe('cloud speech adapters inside workerd (miniflare), on the fetch socket factory', () => {
  it('the worker ran in workerd and finished', () => {
    expect(result.error).toBeUndefined();
    expect(status).toBe(200);
    expect(result.userAgent).toBe('Cloudflare-Workers');
  });

  it('Deepgram Nova: the finals hold the spoken words; the key went as `Authorization: Token`', () => {
    expect(splitWords(result.finals.join(' '))).toEqual(SPOKEN);
    expect(result.sttErrors).toEqual([]);
    expect(result.sttEventsAfterClose).toBe(0);
    const listens = deepgram.connections.filter((c) => c.path === '/v1/listen' && c.refusedStatus === undefined);
    expect(listens).toHaveLength(1);
    const listen = listens[0]!;
    expect(listen.headers.authorization).toBe(`Token ${deepgram.apiKey}`);
    expect(listen.headers.upgrade?.toLowerCase()).toBe('websocket');
    // Every frame the worker wrote reached the fake as binary; the close was graceful.
    const audioBytes = listen.received.reduce((n, frame) => n + (typeof frame === 'string' ? 0 : frame.byteLength), 0);
    const spokenBytes = synthesizeWords(SPOKEN, 16_000).pcm.byteLength;
    expect(audioBytes).toBeGreaterThanOrEqual(spokenBytes + 600 * 32);
    expect(listen.received.some((frame) => typeof frame === 'string' && frame.includes('CloseStream'))).toBe(true);
    expect(listen.closeCode).toBe(1000);
  });

  it('Cartesia Sonic (text frames, base64 audio): the audio decodes to the words of the text; X-API-Key sent', () => {
    expect(result.ttsEvents).toContain('done');
    expect(result.ttsEvents).not.toContain('error');
    expect(wordsOf(result.ttsAudioBase64)).toEqual(splitWords(TEXT));
    expect(cartesia.connections).toHaveLength(1);
    expect(cartesia.connections[0]!.url).toMatch(/^\/tts\/websocket/);
    expect(cartesia.connections[0]!.headers['x-api-key']).toBe(cartesia.apiKey);
    expect(cartesia.connections[0]!.headers['cartesia-version']).toBeTruthy();
  });

  it('Deepgram Aura (binary audio frames): the audio decodes to the words of the text', () => {
    expect(result.auraEvents).toContain('done');
    expect(result.auraEvents).not.toContain('error');
    expect(wordsOf(result.auraAudioBase64)).toEqual(splitWords(TEXT));
    const speaks = deepgram.connections.filter((c) => c.path === '/v1/speak');
    expect(speaks).toHaveLength(1);
    expect(speaks[0]!.headers.authorization).toBe(`Token ${deepgram.apiKey}`);
  });

  it('a wrong Deepgram key: open rejects with a non-retryable auth ProviderError after one refused upgrade', () => {
    expect(result.authError).toMatchObject({ isProviderError: true, retryable: false, kind: 'auth' });
    expect(result.authError?.code).toMatch(/^DEEPGRAM_/);
    const refused = deepgram.connections.filter((c) => c.refusedStatus !== undefined);
    expect(refused.map((c) => c.refusedStatus)).toEqual([401]);
    expect(refused[0]!.headers.authorization).toBe(`Token wrong-${deepgram.apiKey}`);
  });

  it('the factory: handshake headers and protocols, text/binary frames, send of a subarray, close once', () => {
    const echo = result.raw.echo as {
      openAfterConnect: boolean;
      openAfterClose: boolean;
      bufferedAmount: number;
      messages: { type: string; proto: string; value: string | number[] }[];
      closes: { code: number; reason: string }[];
    };
    const record = raw.records.find((r) => r.path === '/echo?x=1');
    expect(record?.headers.authorization).toBe('Token abc');
    expect(record?.headers['x-version']).toBe('7');
    expect(record?.headers['sec-websocket-protocol']).toBe('token, abc');
    expect(echo.openAfterConnect).toBe(true);
    // workerd's WebSocket has no bufferedAmount (cloudflare/workerd#988): the factory reports 0.
    expect(echo.bufferedAmount).toBe(0);
    expect(echo.messages).toEqual([
      { type: 'string', proto: 'String', value: '{"type":"KeepAlive"}' },
      { type: 'binary', proto: 'Uint8Array', value: [8, 7] },
    ]);
    expect(record?.received).toEqual(['{"type":"KeepAlive"}', [8, 7]]);
    expect(echo.openAfterClose).toBe(false);
    expect(echo.closes).toEqual([{ code: 1000, reason: 'bye' }]);
    expect(record?.closeCode).toBe(1000);
  });

  it('the factory: refused upgrade → status and ≤ 4 KB of body, key redacted; timeout; network error; abort', () => {
    const { refused, timeout, dead, aborted } = result.raw as Record<string, { [key: string]: unknown }>;
    expect(refused).toMatchObject({ isSocketConnectError: true, status: 503, timedOut: false });
    expect(refused!.bodyLength as number).toBeLessThanOrEqual(4096);
    expect(refused!.bodyLength as number).toBeGreaterThan(1000);
    expect(refused!.message as string).not.toContain('secret-key');
    expect(timeout).toMatchObject({ isSocketConnectError: true, status: null, timedOut: true });
    expect(timeout!.elapsedMs as number).toBeGreaterThanOrEqual(250);
    expect(timeout!.elapsedMs as number).toBeLessThan(2000);
    expect(dead).toMatchObject({ isSocketConnectError: true, status: null, timedOut: false });
    expect(aborted).toMatchObject({ name: 'AbortError', isSocketConnectError: false });
    expect(aborted!.elapsedMs as number).toBeLessThan(2000);
  });

  it('the factory: a dropped connection closes with 1006 once; a server close passes code and reason once', () => {
    const { drop, serverClose } = result.raw as Record<string, { closes: { code: number; reason: string }[]; openAfter: boolean }>;
    expect(drop!.closes).toHaveLength(1);
    expect(drop!.closes[0]!.code).toBe(1006);
    expect(drop!.openAfter).toBe(false);
    expect(serverClose!.closes).toEqual([{ code: 1011, reason: 'NET-0001' }]);
    expect(serverClose!.openAfter).toBe(false);
  });
});
