import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type WebSocket from 'ws';
import { createWsSocketFactory } from '../../../media-node/providers/ws-socket';
import { SocketConnectError } from '../../../shared/providers/streaming/socket';
import type { SocketHandlers } from '../../../shared/providers/streaming/socket';

const connect = createWsSocketFactory();
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An HTTP server on a free port whose upgrades the test handles. */
async function server(onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): Promise<{ url: string; http: Server }> {
  const http = createServer((_req, res) => res.writeHead(404).end());
  // Upgraded sockets leave the server's bookkeeping: track them so cleanup can end them.
  const sockets = new Set<Duplex>();
  http.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  );
  return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, http };
}

/** A WebSocket server; `onConnection` gets each accepted socket and its upgrade request. */
async function wsServer(onConnection: (ws: WebSocket, req: IncomingMessage) => void) {
  const wss = new WebSocketServer({ noServer: true });
  cleanups.push(() => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });
  return server((req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req)));
}

function recorder() {
  const messages: (string | Uint8Array)[] = [];
  const closes: { code: number; reason: string }[] = [];
  const handlers: SocketHandlers = {
    onMessage: (data) => messages.push(typeof data === 'string' ? data : data.slice()),
    onClose: (code, reason) => closes.push({ code, reason }),
  };
  return { messages, closes, handlers };
}

const until = async (condition: () => boolean, timeoutMs = 3000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('ws socket factory', () => {
  it('sends the handshake headers and protocols', async () => {
    let seen: IncomingHttpHeaders | undefined;
    const { url } = await wsServer((_ws, req) => (seen = req.headers));
    const { handlers } = recorder();
    const socket = await connect({ url: `${url}/v1/listen?x=1`, headers: { Authorization: 'Token abc', 'X-Version': '7' }, protocols: ['token', 'abc'], timeoutMs: 2000 }, handlers);
    cleanups.push(() => socket.close());
    expect(socket.open).toBe(true);
    expect(seen?.authorization).toBe('Token abc');
    expect(seen?.['x-version']).toBe('7');
    expect(seen?.['sec-websocket-protocol']).toBe('token,abc');
  });

  it('a refused upgrade rejects with the HTTP status and the body', async () => {
    const { url } = await server((_req, socket) => {
      const body = '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}';
      socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    const { handlers, closes } = recorder();
    const error = await connect({ url: `${url}/?token=secret-key`, timeoutMs: 2000 }, handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: 401, body: '{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}', timedOut: false });
    expect((error as Error).message).not.toContain('secret-key');
    expect(closes).toEqual([]);
  });

  it('reads at most ~4 KB of a refused upgrade body', async () => {
    const { url } = await server((_req, socket) => {
      const body = 'x'.repeat(100_000);
      socket.end(`HTTP/1.1 503 Busy\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    const error = await connect({ url, timeoutMs: 2000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 503 });
    expect((error as SocketConnectError).body.length).toBeLessThanOrEqual(4096);
    expect((error as SocketConnectError).body.length).toBeGreaterThan(1000);
  });

  it('times out a handshake that never completes', async () => {
    const { url } = await server(() => {
      // Accept the TCP connection, never answer the upgrade.
    });
    const started = Date.now();
    const error = await connect({ url, timeoutMs: 150 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined, timedOut: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a network error rejects without a status', async () => {
    const { url, http } = await server(() => {});
    await new Promise<void>((resolve) => http.close(() => resolve()));
    const error = await connect({ url, timeoutMs: 2000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined, timedOut: false });
  });

  it('an aborted signal stops the attempt', async () => {
    const { url } = await server(() => {});
    const abort = new AbortController();
    const pending = connect({ url, timeoutMs: 5000, signal: abort.signal }, recorder().handlers);
    setTimeout(() => abort.abort(), 20);
    const error = await pending.catch((e: unknown) => e);
    expect((error as Error).name).toBe('AbortError');
  });

  it('text frames arrive as strings, binary frames as plain Uint8Arrays', async () => {
    const { url } = await wsServer((ws) => {
      ws.send('{"type":"Results"}');
      ws.send(Buffer.from([1, 2, 3, 250]), { binary: true });
    });
    const r = recorder();
    let rawBinary: Uint8Array | undefined;
    const socket = await connect({ url, timeoutMs: 2000 }, {
      onMessage: (data) => {
        if (typeof data !== 'string') rawBinary = data;
        r.handlers.onMessage(data);
      },
      onClose: r.handlers.onClose,
    });
    cleanups.push(() => socket.close());
    await until(() => r.messages.length === 2);
    expect(r.messages[0]).toBe('{"type":"Results"}');
    expect([...(r.messages[1] as Uint8Array)]).toEqual([1, 2, 3, 250]);
    expect(Object.getPrototypeOf(rawBinary)).toBe(Uint8Array.prototype);
  });

  it('sends text and binary, and closes with the code given; onClose fires once', async () => {
    const received: (string | number[])[] = [];
    let serverClose: number | undefined;
    const { url } = await wsServer((ws) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => received.push(isBinary ? [...data] : data.toString()));
      ws.on('close', (code) => (serverClose = code));
    });
    const r = recorder();
    const socket = await connect({ url, timeoutMs: 2000 }, r.handlers);
    const audio = new Uint8Array([9, 8, 7, 6]);
    socket.send('{"type":"KeepAlive"}');
    socket.send(audio.subarray(1, 3));
    await until(() => received.length === 2);
    expect(received).toEqual(['{"type":"KeepAlive"}', [8, 7]]);
    expect([...audio]).toEqual([9, 8, 7, 6]);
    socket.close(1000, 'bye');
    socket.close(1000, 'again');
    await until(() => r.closes.length === 1 && serverClose !== undefined);
    expect(serverClose).toBe(1000);
    expect(r.closes).toEqual([{ code: 1000, reason: 'bye' }]);
    expect(socket.open).toBe(false);
    socket.send('after close');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.closes).toHaveLength(1);
  });

  it('a dropped TCP connection closes with 1006, once', async () => {
    const { url } = await wsServer((ws) => setTimeout(() => ws.terminate(), 20));
    const r = recorder();
    await connect({ url, timeoutMs: 2000 }, r.handlers);
    await until(() => r.closes.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.closes).toEqual([{ code: 1006, reason: '' }]);
  });

  it('passes the server close code and reason through', async () => {
    const { url } = await wsServer((ws) => ws.close(1011, 'NET-0001'));
    const r = recorder();
    await connect({ url, timeoutMs: 2000 }, r.handlers);
    await until(() => r.closes.length === 1);
    expect(r.closes).toEqual([{ code: 1011, reason: 'NET-0001' }]);
  });
});
