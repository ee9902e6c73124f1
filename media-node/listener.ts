import { STATUS_CODES, createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * One TCP port for everything a media node serves (the Go original's cmux): each connection's first bytes
 * decide where it goes.
 * - the HTTP/2 prior-knowledge preface → `@grpc/grpc-js` through `Server.createConnectionInjector` (h2c gRPC);
 * - anything else → a Node `http.Server` that never listens itself: HTTP/1.1 requests go to a fetch-style
 *   handler (web `Request` → `Response`, bodies streamed both ways with backpressure), WebSocket upgrades to
 *   `onUpgrade`, which accepts (`ws`) or rejects each one.
 * Design, pitfalls and measurements: shared/reference/verified-cmux-protobuf.md §1 and §3.
 */

export type FetchHandler = (request: Request, info: ConnectionInfo) => Response | Promise<Response>;

export interface ConnectionInfo {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

export interface UpgradeRequest extends ConnectionInfo {
  /** Absolute URL as requested (`http://{Host}{path}?{query}`); route on `url.pathname`. */
  readonly url: URL;
  readonly headers: IncomingHttpHeaders;
}

/** Completes the WebSocket handshake; rejects if the client went away or the handshake was invalid. */
export type AcceptUpgrade = () => Promise<WebSocket>;
/** Answers the upgrade request with a plain HTTP status (e.g. 404 for an unknown path) and closes it. */
export type RejectUpgrade = (status: number, message?: string) => void;
/**
 * Called for every WebSocket upgrade. Exactly one of `accept`/`reject` should be called (later calls are
 * ignored); a handler that throws gets 500, one that calls neither within `upgradeTimeoutMs` gets 503.
 */
export type UpgradeHandler = (request: UpgradeRequest, accept: AcceptUpgrade, reject: RejectUpgrade) => void | Promise<void>;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Adapts to pino as `(level, message, fields) => logger[level](fields ?? {}, message)`. */
export type ListenerLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface ListenerOptions {
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Default: every interface (Node's default, `::` where IPv6 exists). */
  readonly host?: string;
  readonly fetch: FetchHandler;
  /** Without it every WebSocket upgrade gets 404. */
  readonly onUpgrade?: UpgradeHandler;
  /** Without it an HTTP/2 connection is closed at once (REST is served over HTTP/1.1 only). */
  readonly grpcServer?: grpc.Server;
  /** Request bodies above this get 413 (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** WebSocket messages above this close the socket with 1009 (default 1 MiB). */
  readonly maxWebSocketMessageBytes?: number;
  /** A connection that has not shown its protocol after this long is closed (default 10 s). */
  readonly sniffTimeoutMs?: number;
  /** Complete request headers must arrive within this time, else 408 (default 20 s). */
  readonly headersTimeoutMs?: number;
  /** A complete request (headers and body) must arrive within this time, else 408 (default 60 s). */
  readonly requestTimeoutMs?: number;
  /** Idle HTTP keep-alive connections close after this (default 5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** `onUpgrade` must accept or reject within this time, else 503 (default 10 s). */
  readonly upgradeTimeoutMs?: number;
  /** WebSocket ping interval; a peer that missed the previous pong is terminated. 0 disables (default 30 s). */
  readonly webSocketPingIntervalMs?: number;
  readonly log?: ListenerLog;
}

export interface ConnectionCounts {
  /** Connected, protocol not known yet. */
  readonly sniffing: number;
  /** HTTP/1.1 connections (keep-alive included), WebSockets excluded. */
  readonly http: number;
  /** HTTP/1.1 requests whose response has not finished. */
  readonly requestsInFlight: number;
  readonly webSockets: number;
  /** HTTP/2 (gRPC) connections. */
  readonly grpc: number;
}

export interface CloseOptions {
  /**
   * How long to let running work finish (open WebSockets, requests in flight, gRPC streams) before it is
   * cut: WebSockets get close 1001, gRPC streams CANCELLED, sockets are destroyed. Default 0: cut at once.
   */
  readonly drainMs?: number;
}

export interface Listener {
  readonly port: number;
  readonly host: string;
  /** `http://host:port` of the bound address (IPv6 in brackets). */
  readonly url: string;
  readonly closing: boolean;
  connections(): ConnectionCounts;
  /** Stops accepting at once, then drains for up to `drainMs`. Idempotent: later calls share the first one's promise. */
  close(options?: CloseOptions): Promise<void>;
}

/** Errors raised by the listener itself; `code` is stable. */
export class ListenerError extends Error {
  override readonly name = 'ListenerError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** After close frames are sent at the end of a drain, how long a WebSocket peer gets to answer before terminate(). */
const WEBSOCKET_CLOSE_GRACE_MS = 500;

type SocketKind = 'sniffing' | 'http' | 'websocket' | 'grpc';

export async function startListener(options: ListenerOptions): Promise<Listener> {
  const log: ListenerLog = options.log ?? (() => undefined);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const sniffTimeoutMs = options.sniffTimeoutMs ?? 10_000;
  const headersTimeoutMs = options.headersTimeoutMs ?? 20_000;
  const requestTimeoutMs = Math.max(options.requestTimeoutMs ?? 60_000, headersTimeoutMs);
  const upgradeTimeoutMs = options.upgradeTimeoutMs ?? 10_000;
  const pingIntervalMs = options.webSocketPingIntervalMs ?? 30_000;

  const sockets = new Map<Socket, SocketKind>();
  const webSockets = new Set<WebSocket>();
  let requestsInFlight = 0;
  let closing: Promise<void> | undefined;
  /** Wakes a drain waiting for work to end. */
  let onWorkEnded: (() => void) | undefined;
  const workEnded = () => onWorkEnded?.();

  // gRPC: an http2 server inside grpc-js that never listens; no bindAsync/start needed (reference §1).
  const injector = options.grpcServer?.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  // HTTP/1.1: never listens either; the sniffer emits 'connection' on it.
  const httpServer = createHttpServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    // Timeouts are enforced by a periodic sweep (Node's default period is 30 s); sweep often enough to honour them.
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeoutMs / 4))),
  });
  httpServer.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxWebSocketMessageBytes ?? DEFAULT_MAX_BODY_BYTES, clientTracking: false });

  const netServer = createNetServer({ noDelay: true, allowHalfOpen: true }, onConnection);
  netServer.on('error', (error) => log('error', 'listener socket error', { error: String(error) }));

  function onConnection(socket: Socket): void {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.set(socket, 'sniffing');
    // Kept for the socket's whole life: a reset client must never become an uncaught 'error'.
    socket.on('error', (error: NodeJS.ErrnoException) => log('debug', 'connection error', { code: error.code, message: error.message, remoteAddress: socket.remoteAddress }));
    socket.once('close', () => {
      const kind = sockets.get(socket);
      sockets.delete(socket);
      if (kind !== 'sniffing') workEnded();
    });

    let buffered: Buffer = Buffer.alloc(0);
    let reads = 0;
    const timer = setTimeout(() => {
      log('debug', 'connection closed: no protocol within the sniff timeout', { sniffTimeoutMs, bytes: buffered.length, remoteAddress: socket.remoteAddress });
      socket.destroy();
    }, sniffTimeoutMs);
    timer.unref();

    const stopSniffing = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
    };
    const onEnd = () => {
      // The peer half-closed before its bytes named a protocol (nothing, or a strict prefix of the preface).
      stopSniffing();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      reads++;
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const compared = Math.min(buffered.length, HTTP2_PREFACE.length);
      const matches = buffered.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
      // A preface split across TCP segments is normal: decide at the first byte that differs or at 24 matching bytes.
      if (matches && compared < HTTP2_PREFACE.length) return;
      stopSniffing();
      socket.pause();
      socket.unshift(buffered);
      if (matches) handToGrpc(socket, reads);
      else handToHttp(socket);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  }

  function handToGrpc(socket: Socket, reads: number): void {
    if (!injector) {
      log('debug', 'HTTP/2 connection closed: no gRPC server on this listener', { remoteAddress: socket.remoteAddress });
      socket.destroy();
      return;
    }
    sockets.set(socket, 'grpc');
    log('debug', 'HTTP/2 connection handed to gRPC', { reads, remoteAddress: socket.remoteAddress });
    // No resume(): the Http2Session reads the unshifted preface itself; resuming here would lose it (reference §1).
    injector.injectConnection(socket);
  }

  function handToHttp(socket: Socket): void {
    sockets.set(socket, 'http');
    httpServer.emit('connection', socket);
    // Required: the HTTP parser takes over the handle, so the unshifted bytes only reach it as a 'data' event.
    socket.resume();
  }

  // ------------------------------------------------------------------------------------------- HTTP requests
  httpServer.on('request', (req: IncomingMessage, res: ServerResponse) => serve(req, res));
  httpServer.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // `Expect: 100-continue`: refuse an oversized body before the client sends it.
    if (declaredLength(req) > maxBodyBytes) {
      sendError(res, 413, 'PAYLOAD_TOO_LARGE', `the request body exceeds ${maxBodyBytes} bytes`);
      return;
    }
    res.writeContinue();
    serve(req, res);
  });

  /** Whatever goes wrong in one request ends that request, never the process. */
  function serve(req: IncomingMessage, res: ServerResponse): void {
    serveRequest(req, res).catch((error: unknown) => {
      log('error', 'request failed', { method: req.method, url: req.url, error: describeError(error) });
      if (res.headersSent) res.destroy();
      else sendError(res, 500, 'INTERNAL', 'the request could not be handled; see the server log');
    });
  }

  async function serveRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requestsInFlight++;
    res.once('close', () => {
      requestsInFlight--;
      workEnded();
    });
    const url = requestUrl(req);
    if (!url) {
      sendError(res, 400, 'BAD_REQUEST', 'the request target or Host header is not a valid URL');
      return;
    }
    if (declaredLength(req) > maxBodyBytes) {
      sendError(res, 413, 'PAYLOAD_TOO_LARGE', `the request body exceeds ${maxBodyBytes} bytes`);
      return;
    }

    let answered = false;
    const aborted = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) aborted.abort(new ListenerError('CLIENT_GONE', 'the client closed the connection before the response was complete'));
    });
    const body = hasBody(req)
      ? requestBodyStream(req, maxBodyBytes, () => {
          if (answered) return;
          answered = true;
          sendError(res, 413, 'PAYLOAD_TOO_LARGE', `the request body exceeds ${maxBodyBytes} bytes`);
        })
      : null;

    let request: Request;
    try {
      request = new Request(url, {
        method: req.method ?? 'GET',
        headers: requestHeaders(req),
        body,
        signal: aborted.signal,
        // Node's fetch requires this for a streamed body; DOM's RequestInit does not know it yet.
        ...(body ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (error) {
      // e.g. TRACE, which the Fetch standard forbids.
      answered = true;
      await body?.cancel().catch(() => undefined);
      sendError(res, 400, 'BAD_REQUEST', `the request cannot be served: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    let response: Response;
    try {
      response = await options.fetch(request, { remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort });
    } catch (error) {
      if (answered) return;
      answered = true;
      log('error', 'request handler failed', { method: req.method, path: url.pathname, error: describeError(error) });
      sendError(res, 500, 'INTERNAL', 'the request could not be handled; see the server log');
      return;
    }
    if (answered || res.destroyed) {
      await response.body?.cancel().catch(() => undefined);
      return;
    }
    answered = true;
    await writeResponse(req, res, response);
  }

  async function writeResponse(req: IncomingMessage, res: ServerResponse, response: Response): Promise<void> {
    const headers: string[] = [];
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') headers.push(name, value);
    });
    for (const cookie of response.headers.getSetCookie()) headers.push('set-cookie', cookie);
    try {
      res.writeHead(response.status, response.statusText || undefined, headers);
    } catch (error) {
      log('error', 'response headers were invalid', { status: response.status, error: describeError(error) });
      await response.body?.cancel().catch(() => undefined);
      sendError(res, 500, 'INTERNAL', 'the response could not be sent; see the server log');
      return;
    }
    const noBody = req.method === 'HEAD' || response.status === 204 || response.status === 304;
    if (!response.body || noBody) {
      await response.body?.cancel().catch(() => undefined);
      res.end();
      return;
    }
    const reader = response.body.getReader();
    const cancel = () => void reader.cancel().catch(() => undefined);
    res.once('close', cancel);
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done || res.destroyed) break;
        // Backpressure: wait for the socket to drain before pulling the next chunk from the handler.
        if (!res.write(value)) await drainOrClose(res);
      }
      if (!res.destroyed) res.end();
    } catch (error) {
      // Headers are gone already, so the only honest signal left is an aborted response.
      log('warn', 'response body stream failed', { status: response.status, error: describeError(error) });
      res.destroy();
    } finally {
      res.off('close', cancel);
    }
  }

  // ------------------------------------------------------------------------------------- WebSocket upgrades
  httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const raw = socket as Socket;
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    // Node routes every request with `Upgrade:` here; an h2c upgrade (`curl --http2`) would hang otherwise (reference pitfall 3).
    if (upgrade !== 'websocket') {
      rejectRawUpgrade(raw, 400, 'only WebSocket upgrades are served over HTTP/1.1; gRPC speaks HTTP/2 with prior knowledge');
      return;
    }
    if (closing) {
      rejectRawUpgrade(raw, 503, 'the server is shutting down');
      return;
    }
    const url = requestUrl(req);
    if (!url) {
      rejectRawUpgrade(raw, 400, 'the request target or Host header is not a valid URL');
      return;
    }
    if (!options.onUpgrade) {
      rejectRawUpgrade(raw, 404, `no WebSocket endpoint at ${url.pathname}`);
      return;
    }

    let settled = false;
    const timer = setTimeout(() => reject(503, 'the upgrade was not answered in time'), upgradeTimeoutMs);
    timer.unref();
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      return true;
    };
    const reject: RejectUpgrade = (status, message) => {
      if (settle()) rejectRawUpgrade(raw, status, message ?? STATUS_CODES[status] ?? 'rejected');
    };
    const accept: AcceptUpgrade = () => {
      if (!settle()) return Promise.reject(new ListenerError('UPGRADE_SETTLED', 'this upgrade was already accepted or rejected'));
      return new Promise<WebSocket>((resolve, rejectPromise) => {
        const gone = () => rejectPromise(new ListenerError('UPGRADE_ABORTED', 'the client went away or sent an invalid WebSocket handshake'));
        if (raw.destroyed) {
          gone();
          return;
        }
        raw.once('close', gone);
        wss.handleUpgrade(req, raw, head, (ws) => {
          raw.off('close', gone);
          sockets.set(raw, 'websocket');
          trackWebSocket(ws);
          resolve(ws);
        });
      });
    };

    const info: UpgradeRequest = { url, headers: req.headers, remoteAddress: raw.remoteAddress, remotePort: raw.remotePort };
    Promise.resolve()
      .then(() => options.onUpgrade?.(info, accept, reject))
      .catch((error: unknown) => {
        log('error', 'upgrade handler failed', { path: url.pathname, error: describeError(error) });
        reject(500, 'the upgrade could not be handled; see the server log');
      });
  });

  const alive = new WeakSet<WebSocket>();
  function trackWebSocket(ws: WebSocket): void {
    webSockets.add(ws);
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    // A protocol error or an oversized message must not become an uncaught 'error'; ws closes the socket itself.
    ws.on('error', (error) => log('debug', 'WebSocket error', { message: error.message }));
    ws.once('close', () => {
      webSockets.delete(ws);
      workEnded();
    });
  }

  const pingTimer =
    pingIntervalMs > 0
      ? setInterval(() => {
          for (const ws of webSockets) {
            if (!alive.has(ws)) {
              log('debug', 'WebSocket terminated: no pong since the last ping');
              ws.terminate();
              continue;
            }
            alive.delete(ws);
            ws.ping();
          }
        }, pingIntervalMs)
      : undefined;
  pingTimer?.unref();

  // ------------------------------------------------------------------------------------------------- listen
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const where = `${options.host ?? '*'}:${options.port}`;
      reject(
        new ListenerError(
          'LISTEN_FAILED',
          error.code === 'EADDRINUSE'
            ? `port ${where} is already in use; stop the other process or choose another PORT`
            : `cannot listen on ${where} (${error.code ?? error.message})`,
          { cause: error },
        ),
      );
    };
    netServer.once('error', onError);
    netServer.listen({ port: options.port, host: options.host }, () => {
      netServer.off('error', onError);
      resolve();
    });
  }).catch((error: unknown) => {
    if (pingTimer) clearInterval(pingTimer);
    injector?.destroy();
    throw error;
  });
  // An http.Server that never listened neither enforces its timeouts nor tracks connections for close();
  // 'listening' starts both (reference pitfall 2).
  httpServer.emit('listening');

  const address = netServer.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  function counts(): ConnectionCounts {
    let sniffing = 0;
    let http = 0;
    let grpcConnections = 0;
    for (const kind of sockets.values()) {
      if (kind === 'sniffing') sniffing++;
      else if (kind === 'http') http++;
      else if (kind === 'grpc') grpcConnections++;
    }
    return { sniffing, http, requestsInFlight, webSockets: webSockets.size, grpc: grpcConnections };
  }

  async function shutdown(drainMs: number): Promise<void> {
    const started = Date.now();
    const stopped = new Promise<void>((resolve) => netServer.close(() => resolve()));
    if (pingTimer) clearInterval(pingTimer);
    for (const [socket, kind] of sockets) if (kind === 'sniffing') socket.destroy();
    // Closes idle keep-alive connections now; busy ones are cut when the drain ends.
    httpServer.close();
    // GOAWAY: clients open no new streams here; running ones go on until the drain ends.
    injector?.drain(Math.max(1, drainMs));

    const busy = () => {
      const c = counts();
      return c.webSockets + c.requestsInFlight + c.grpc > 0;
    };
    await waitUntil(() => !busy(), drainMs);
    if (busy()) log('info', 'drain time is up; closing the remaining connections', { ...counts(), drainMs });

    for (const ws of webSockets) ws.close(1001, 'server shutting down');
    await waitUntil(() => webSockets.size === 0, WEBSOCKET_CLOSE_GRACE_MS);
    for (const ws of webSockets) ws.terminate();

    httpServer.closeAllConnections();
    injector?.destroy();
    for (const socket of sockets.keys()) socket.destroy();
    await stopped;
    log('info', 'listener closed', { port: address.port, tookMs: Date.now() - started });
  }

  function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done() || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        onWorkEnded = undefined;
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      // Close events arrive in a batch; check once they have all been delivered.
      onWorkEnded = () => setImmediate(() => done() && finish());
    });
  }

  return {
    port: address.port,
    host: address.address,
    url: `http://${urlHost}:${address.port}`,
    get closing() {
      return closing !== undefined;
    },
    connections: counts,
    close(closeOptions = {}) {
      closing ??= shutdown(Math.max(0, closeOptions.drainMs ?? 0));
      return closing;
    },
  };
}

// ------------------------------------------------------------------------------------------------- helpers

function requestUrl(req: IncomingMessage): URL | undefined {
  const socket = req.socket;
  const local = socket.localAddress ?? 'localhost';
  // HTTP/1.0 may omit Host: name the address the request came in on.
  const host = req.headers.host ?? `${local.includes(':') ? `[${local}]` : local}:${socket.localPort ?? 80}`;
  try {
    return new URL(req.url ?? '/', `http://${host}`);
  } catch {
    return undefined;
  }
}

function requestHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      headers.append(raw[i] as string, raw[i + 1] as string);
    } catch {
      // A header Node accepted but the Fetch spec does not; the handler cannot use it anyway.
    }
  }
  return headers;
}

/** Content-Length as declared (-1 when absent or unparsable: the body stream enforces the limit then). */
function declaredLength(req: IncomingMessage): number {
  const value = req.headers['content-length'];
  if (value === undefined) return -1;
  const n = Number(value);
  return Number.isFinite(n) ? n : -1;
}

function hasBody(req: IncomingMessage): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  return req.headers['transfer-encoding'] !== undefined || declaredLength(req) > 0;
}

/**
 * The request body as a web stream that reads from the socket only when the handler pulls (high-water mark 0),
 * so a slow handler slows the client down, and a handler that never reads leaves Node free to discard the body.
 */
function requestBodyStream(req: IncomingMessage, maxBytes: number, onTooLarge: () => void): ReadableStream<Uint8Array> {
  let received = 0;
  let attached = false;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (!attached) {
          attached = true;
          req.on('data', (chunk: Buffer) => {
            received += chunk.byteLength;
            if (received > maxBytes) {
              req.pause();
              req.removeAllListeners('data');
              controller.error(new ListenerError('PAYLOAD_TOO_LARGE', `the request body exceeds ${maxBytes} bytes`));
              onTooLarge();
              return;
            }
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            if ((controller.desiredSize ?? 0) <= 0) req.pause();
          });
          req.once('end', () => controller.close());
          req.once('error', (error) => controller.error(error));
          req.once('aborted', () => controller.error(new ListenerError('CLIENT_GONE', 'the client aborted the request body')));
        }
        req.resume();
      },
      cancel() {
        // The handler gave up on the body: let Node discard the rest so the connection can be reused.
        req.removeAllListeners('data');
        req.resume();
      },
    },
    { highWaterMark: 0 },
  );
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // The rest of an oversized or unreadable body is not worth reading: end this connection after the answer.
    ...(status === 413 || status === 400 ? { connection: 'close' } : {}),
  });
  res.end(body);
}

function rejectRawUpgrade(socket: Socket, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = Buffer.from(message, 'utf8');
  const reason = STATUS_CODES[status] ?? 'Rejected';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.byteLength}\r\n\r\n${message}`,
  );
}

function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
