import { request as httpRequest } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createHealthClient, createHealthService, type HealthCheckResponse } from '../../media-node/grpc/health';
import { startListener, type FetchHandler, type Listener, type ListenerLog, type UpgradeHandler } from '../../media-node/listener';

const MAX_BODY_BYTES = 64 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small app: the routes the tests need, written against web Request/Response only. */
const app: FetchHandler = async (request) => {
  const url = new URL(request.url);
  if (url.pathname === '/hello') return new Response(`hello ${request.method} ${url.searchParams.get('name') ?? ''}`, { headers: { 'x-app': 'yes' } });
  if (url.pathname === '/echo' && request.method === 'POST') {
    const bytes = new Uint8Array(await request.arrayBuffer());
    return Response.json({ bytes: bytes.byteLength, type: request.headers.get('content-type'), text: new TextDecoder().decode(bytes.subarray(0, 32)) });
  }
  if (url.pathname === '/ignore-body') return new Response('ignored', { status: 202 });
  if (url.pathname === '/cookies') {
    const headers = new Headers();
    headers.append('set-cookie', 'a=1');
    headers.append('set-cookie', 'b=2');
    return new Response(null, { status: 204, headers });
  }
  if (url.pathname === '/throw') throw new Error('handler bug');
  if (url.pathname === '/endless') {
    // A response the client reads slowly: pull() is only called when the socket can take more.
    let produced = 0;
    endlessProduced = () => produced;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          produced += 64 * 1024;
          controller.enqueue(new Uint8Array(64 * 1024));
        },
      }),
    );
  }
  return new Response('not found', { status: 404 });
};
let endlessProduced = () => 0;

const onUpgrade: UpgradeHandler = async (request, accept, reject) => {
  if (request.url.pathname !== '/ws/echo') {
    reject(404, `no WebSocket endpoint at ${request.url.pathname}`);
    return;
  }
  const ws = await accept();
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
};

function rawExchange(port: number, bytes: string | Buffer, waitMs: number): Promise<{ text: string; closed: boolean; afterMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text, closed, afterMs: Date.now() - started });
    });
    socket.write(bytes);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false, afterMs: Date.now() - started });
    }, waitMs);
  });
}

function healthCheck(port: number, service = ''): Promise<HealthCheckResponse> {
  // A generic grpc-js client (makeGenericClientConstructor over the hand-written definition), plain h2c.
  const client = createHealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<HealthCheckResponse>((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + 3_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  }).finally(() => client.close());
}

function openWebSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe('one port for HTTP/1.1, WebSocket and gRPC', () => {
  const logs: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const log: ListenerLog = (level, message, fields) => logs.push({ level, message, fields });
  const grpcServer = new grpc.Server();
  const health = createHealthService();
  health.addToServer(grpcServer);
  let listener: Listener;
  let base: string;

  beforeAll(async () => {
    listener = await startListener({
      port: 0,
      host: '127.0.0.1',
      fetch: app,
      onUpgrade,
      grpcServer,
      maxBodyBytes: MAX_BODY_BYTES,
      sniffTimeoutMs: 300,
      headersTimeoutMs: 400,
      log,
    });
    base = listener.url;
  });
  afterAll(async () => {
    await listener.close();
    grpcServer.forceShutdown();
  });

  it('reports where it listens', () => {
    expect(listener.port).toBeGreaterThan(0);
    expect(listener.url).toBe(`http://127.0.0.1:${listener.port}`);
  });

  it('answers an HTTP/1.1 GET through the fetch handler, headers both ways', async () => {
    const response = await fetch(`${base}/hello?name=ada`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-app')).toBe('yes');
    expect(await response.text()).toBe('hello GET ada');
    expect((await fetch(`${base}/missing`)).status).toBe(404);
  });

  it('delivers a POST body to the handler', async () => {
    const response = await fetch(`${base}/echo`, { method: 'POST', body: 'twenty bytes of body', headers: { 'content-type': 'text/plain' } });
    expect(await response.json()).toEqual({ bytes: 20, type: 'text/plain', text: 'twenty bytes of body' });
  });

  it('delivers a streamed (chunked) body up to the limit', async () => {
    const chunks = [new Uint8Array(20_000).fill(65), new Uint8Array(20_000).fill(66), new Uint8Array(20_000).fill(67)];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const response = await fetch(`${base}/echo`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    expect(await response.json()).toMatchObject({ bytes: 60_000, text: 'A'.repeat(32) });
  });

  it('refuses a declared oversized body with 413 before reading it', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${base}/echo`, { method: 'POST', headers: { 'content-length': String(MAX_BODY_BYTES + 1) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders(); // headers only: the server must answer without waiting for the body
    });
    expect(status).toBe(413);
  });

  it('cuts a chunked body at the limit with 413', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${base}/echo`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < 4 * MAX_BODY_BYTES && !req.destroyed) {
          sent += 8 * 1024;
          if (!req.write(new Uint8Array(8 * 1024))) return void req.once('drain', pump);
        }
        if (!req.destroyed) req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: `the request body exceeds ${MAX_BODY_BYTES} bytes` } });
  });

  it('keeps a keep-alive connection usable when the handler ignores the body', async () => {
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(`${base}${path}`, { method: 'POST', agent }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end('x'.repeat(30_000));
      });
    expect(await post('/ignore-body')).toEqual({ status: 202, text: 'ignored' });
    expect((await post('/echo')).text).toContain('"bytes":30000');
    agent.destroy();
  });

  it('sends every Set-Cookie header separately', async () => {
    const headers = await new Promise<string[]>((resolve, reject) => {
      httpRequest(`${base}/cookies`, (res) => {
        res.resume();
        resolve(res.rawHeaders);
      })
        .on('error', reject)
        .end();
    });
    const cookies = headers.filter((_, i) => i % 2 === 1 && headers[i - 1]?.toLowerCase() === 'set-cookie');
    expect(cookies).toEqual(['a=1', 'b=2']);
  });

  it('answers 500 with a JSON error when the handler throws, and keeps serving', async () => {
    const response = await fetch(`${base}/throw`);
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ error: { code: 'INTERNAL' } });
    expect(logs.some((l) => l.level === 'error' && String(l.fields?.error).includes('handler bug'))).toBe(true);
    expect((await fetch(`${base}/hello`)).status).toBe(200);
  });

  it('streams a response only as fast as the client reads it (backpressure)', async () => {
    const controller = new AbortController();
    const response = await fetch(`${base}/endless`, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    await sleep(300); // the client stops reading; the server must stop pulling from the handler
    const produced = endlessProduced();
    await sleep(200);
    const producedLater = endlessProduced();
    controller.abort();
    await reader.cancel().catch(() => undefined);
    expect(producedLater).toBe(produced); // nothing pulled while the client was not reading
    expect(produced).toBeLessThan(64 * 1024 * 1024); // bounded by socket buffers, not the endless stream
  });

  it('accepts a WebSocket upgrade and echoes binary and text frames', async () => {
    const ws = await openWebSocket(`${base.replace('http', 'ws')}/ws/echo`);
    const received: { data: string; isBinary: boolean }[] = [];
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer, isBinary) => {
        received.push({ data: isBinary ? data.toString('hex') : data.toString(), isBinary });
        if (received.length === 2) resolve();
      }),
    );
    ws.send(Buffer.from([0, 1, 2, 255]));
    ws.send('hello text');
    await done;
    expect(received).toEqual([
      { data: '000102ff', isBinary: true },
      { data: 'hello text', isBinary: false },
    ]);
    expect(listener.connections().webSockets).toBe(1);
    ws.close();
    await new Promise((r) => ws.once('close', r));
  });

  it('rejects an upgrade the handler declines with its status, and a non-WebSocket upgrade with 400', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/nope`);
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', () => undefined);
    });
    expect(status).toBe(404);
    // `curl --http2` style h2c upgrade: must be answered, not left hanging (reference pitfall 3).
    const h2c = await rawExchange(
      listener.port,
      'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
      2_000,
    );
    expect(h2c.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(h2c.closed).toBe(true);
  });

  it('serves a gRPC health Check over h2c on the same port', async () => {
    expect(await healthCheck(listener.port)).toEqual({ status: 'SERVING' });
  });

  it('hands over an HTTP/2 preface that arrives in 3 TCP segments', async () => {
    // A proxy between a real grpc-js client and the listener splits the client's first bytes into 3 writes.
    const proxy: Server = createServer({ noDelay: true }, (client) => {
      const upstream = connect({ port: listener.port, host: '127.0.0.1', noDelay: true });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.pipe(client);
      client.once('data', (first: Buffer) => {
        client.pause();
        void (async () => {
          upstream.write(first.subarray(0, 5));
          await sleep(30);
          upstream.write(first.subarray(5, 14));
          await sleep(30);
          upstream.write(first.subarray(14));
          client.pipe(upstream);
        })();
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    logs.length = 0;
    try {
      const port = (proxy.address() as { port: number }).port;
      expect(await healthCheck(port)).toEqual({ status: 'SERVING' });
      expect(logs.find((l) => l.message === 'HTTP/2 connection handed to gRPC')?.fields?.reads).toBe(3);
    } finally {
      proxy.close();
    }
  });

  it('an HTTP/1.1 request arriving byte by byte still reaches the handler', async () => {
    const socket: Socket = connect(listener.port, '127.0.0.1');
    socket.setNoDelay(true);
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.write('G');
    await sleep(40);
    socket.write('ET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((r) => socket.once('close', r));
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('hello GET');
  });

  it('survives garbage, silence and half requests, and keeps serving', async () => {
    const results = await Promise.all([
      rawExchange(listener.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), 3_000), // a TLS ClientHello
      rawExchange(listener.port, 'PRI * HTTP/1.1\r\n\r\n', 3_000), // looks like the preface, is not
      rawExchange(listener.port, '', 3_000), // connects and says nothing
      rawExchange(listener.port, 'PRI * HT', 3_000), // a preface that never finishes
      rawExchange(listener.port, 'GET /hello HTTP/1.1\r\nHost: x\r\n', 3_000), // headers that never finish
      rawExchange(listener.port, 'NOT A REQUEST\r\n\r\n', 3_000),
      rawExchange(listener.port, 'GET /hello HTTP/1.0\r\n\r\n', 3_000), // HTTP/1.0: no Host header, still a URL
    ]);
    for (const r of results) expect(r.closed).toBe(true); // every one closed by the server, none left hanging
    expect(results[0]!.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(results[2]!.afterMs).toBeLessThan(1_500); // sniff timeout 300 ms
    expect(results[3]!.afterMs).toBeLessThan(1_500);
    expect(results[4]!.text).toMatch(/^HTTP\/1\.1 408 /); // headersTimeout 400 ms is enforced although the server never listened itself
    expect(results[4]!.afterMs).toBeLessThan(1_500);
    expect(results[5]!.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(results[6]!.text).toMatch(/^HTTP\/1\.1 200 [^]*hello GET $/);
    expect((await fetch(`${base}/hello`)).status).toBe(200);
    expect(await healthCheck(listener.port)).toEqual({ status: 'SERVING' });
  });
});

describe('long-lived connections', () => {
  it('HTTP request timeouts do not cut a WebSocket (a call lasts minutes)', async () => {
    const listener = await startListener({ port: 0, host: '127.0.0.1', fetch: app, onUpgrade, headersTimeoutMs: 100, requestTimeoutMs: 200, keepAliveTimeoutMs: 100 });
    try {
      const ws = await openWebSocket(`ws://127.0.0.1:${listener.port}/ws/echo`);
      await sleep(600); // three request timeouts, several sweeps
      const echoed = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
      ws.send('after the timeouts');
      expect(await echoed).toBe('after the timeouts');
      ws.close();
    } finally {
      await listener.close();
    }
  });
});

describe('closing the listener', () => {
  async function start(): Promise<Listener> {
    return startListener({ port: 0, host: '127.0.0.1', fetch: app, onUpgrade });
  }

  it('stops accepting at once, and a drain waits for an open WebSocket to end', async () => {
    const listener = await start();
    const ws = await openWebSocket(`ws://127.0.0.1:${listener.port}/ws/echo`);
    const started = Date.now();
    let closedAfterMs = -1;
    const closing = listener.close({ drainMs: 5_000 }).then(() => (closedAfterMs = Date.now() - started));
    await sleep(200);
    expect(closedAfterMs).toBe(-1); // still draining: the call goes on
    await expect(fetch(`${listener.url}/hello`)).rejects.toThrow(); // but no new connections
    const echoed = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
    ws.send('still here');
    expect(await echoed).toBe('still here');
    ws.close(1000);
    await closing;
    expect(closedAfterMs).toBeGreaterThanOrEqual(200);
    expect(closedAfterMs).toBeLessThan(1_500); // ended by the WebSocket closing, long before the 5 s bound
  });

  it('bounds the drain: a WebSocket still open at the deadline gets 1001', async () => {
    const listener = await start();
    const ws = await openWebSocket(`ws://127.0.0.1:${listener.port}/ws/echo`);
    const code = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    const started = Date.now();
    await listener.close({ drainMs: 300 });
    const tookMs = Date.now() - started;
    expect(await code).toBe(1001);
    expect(tookMs).toBeGreaterThanOrEqual(290);
    expect(tookMs).toBeLessThan(1_500);
  });

  it('without a drain, closes everything at once', async () => {
    const listener = await start();
    const ws = await openWebSocket(`ws://127.0.0.1:${listener.port}/ws/echo`);
    const code = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    const started = Date.now();
    await Promise.all([listener.close(), listener.close()]);
    expect(await code).toBe(1001);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(listener.connections()).toEqual({ sniffing: 0, http: 0, requestsInFlight: 0, webSockets: 0, grpc: 0 });
  });

  it('says clearly when the port is taken', async () => {
    const first = await start();
    await expect(startListener({ port: first.port, host: '127.0.0.1', fetch: app })).rejects.toThrow(/LISTEN_FAILED: port 127\.0\.0\.1:\d+ is already in use/);
    await first.close();
  });
});
