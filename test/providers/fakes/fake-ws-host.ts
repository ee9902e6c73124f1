import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FakeConnectionRecord } from '../conformance/fake-server';

/**
 * The plumbing every vendor fake of this directory shares (used by the Cartesia and ElevenLabs fakes): an
 * HTTP server on 127.0.0.1:0 whose upgrades go to a `noServer` WebSocketServer, so an upgrade can be
 * refused with a real HTTP status and body; a record of every connection and frame; `refuseNext` and `drop`.
 * The vendor protocol itself lives in the fake that uses it.
 */

export interface Refusal {
  readonly status: number;
  readonly body: string;
}

export interface FakeWsHostOptions {
  /** The vendor's own checks (path, key, query): a refusal, or undefined to accept. */
  checkUpgrade(request: IncomingMessage, url: URL): Refusal | undefined;
  /** Body of a refusal forced through `refuseNext`. */
  refusalBody(status: number): string;
  /** An accepted socket: the vendor protocol takes over. Frames are recorded before it sees them. */
  onConnection(socket: WebSocket, record: FakeConnectionRecord, url: URL): void;
}

export interface FakeWsHost {
  readonly endpoint: string;
  readonly connections: FakeConnectionRecord[];
  refuseNext(status: number, count?: number): void;
  drop(close?: { code: number; reason: string }): void;
  /** Open sockets, oldest first. */
  openSockets(): WebSocket[];
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

function refuse(socket: Socket, refusal: Refusal): void {
  const body = Buffer.from(refusal.body, 'utf8');
  socket.end(
    `HTTP/1.1 ${refusal.status} ${REASONS[refusal.status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${body.length}\r\n` +
      'Connection: close\r\n\r\n' +
      body.toString('utf8'),
  );
}

function lowerCaseHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

export async function startFakeWsHost(options: FakeWsHostOptions): Promise<FakeWsHost> {
  const connections: FakeConnectionRecord[] = [];
  const open = new Set<WebSocket>();
  const rawSockets = new Set<Socket>();
  const refusals: number[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const http = createServer((_req, res) => {
    res.statusCode = 426;
    res.end('WebSocket only');
  });
  http.on('connection', (socket) => {
    rawSockets.add(socket);
    socket.on('close', () => rawSockets.delete(socket));
  });

  http.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const record: FakeConnectionRecord = { url: request.url ?? '/', headers: lowerCaseHeaders(request), received: [] };
    connections.push(record);
    const forced = refusals.shift();
    if (forced !== undefined) return refuse(socket, { status: forced, body: options.refusalBody(forced) });
    const refusal = options.checkUpgrade(request, url);
    if (refusal) return refuse(socket, refusal);
    wss.handleUpgrade(request, socket, head, (ws) => {
      open.add(ws);
      ws.on('message', (data, isBinary) => {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        record.received.push(isBinary ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes.toString('utf8'));
      });
      ws.on('close', (code) => {
        record.closeCode = code;
        open.delete(ws);
      });
      ws.on('error', () => {});
      options.onConnection(ws, record, url);
    });
  });

  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  return {
    endpoint: `ws://127.0.0.1:${port}`,
    connections,
    refuseNext(status, count = 1) {
      for (let i = 0; i < count; i++) refusals.push(status);
    },
    drop(close) {
      for (const ws of [...open]) {
        if (close) ws.close(close.code, close.reason);
        else ws.terminate(); // TCP destroyed, no close frame: the client sees 1006.
      }
    },
    openSockets: () => [...open],
    async close() {
      for (const ws of open) ws.terminate();
      for (const socket of rawSockets) socket.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
