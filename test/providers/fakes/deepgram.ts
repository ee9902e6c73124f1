import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { FakeConnectionRecord, FakeProviderControl, FakeProviderServer } from '../conformance/fake-server';
import { createFluxSession } from './deepgram/flux';
import { createListenSession } from './deepgram/listen';
import type { FakeSession, SessionContext } from './deepgram/session';
import { createSpeakSession, speakFormat, type FlushLimit, type SpeakPacing } from './deepgram/speak';

/**
 * A local Deepgram for tests: /v1/listen (Nova), /v2/listen (Flux) and /v1/speak (Aura) on one port, written
 * from ../shared/reference/providers.md §1.1, §1.2, §2.1 and §6 (never from the adapter). Upgrades are
 * authenticated like Deepgram's (`Authorization: Token <key>`, or the browser subprotocol pair
 * `token, <key>`) and refused with real HTTP statuses and a JSON body like Deepgram's. The listen fakes
 * hear tone words in the linear16 16 kHz audio they receive; the speak fake voices text as tone words.
 */

export interface DeepgramFakeOptions {
  /** Listen sockets close with 1011 "NET-0001" after this long without audio or a message (Deepgram: 10 s). */
  readonly idleCloseMs?: number;
  readonly apiKey?: string;
  /** Speak audio pacing (default 40 ms chunks at 4× real time, so a cancel can land mid-sentence). */
  readonly speakPacing?: Partial<SpeakPacing>;
  /** Speak flush limit (Deepgram: 20 per 60 s). */
  readonly flushLimit?: FlushLimit;
}

export interface DeepgramConnectionRecord extends FakeConnectionRecord {
  /** Path of the upgrade request (`/v1/listen`, `/v2/listen`, `/v1/speak`). */
  readonly path: string;
  /** HTTP status of a refused upgrade (the socket never opened). */
  refusedStatus?: number;
}

export interface DeepgramFakeControl extends FakeProviderControl {
  dropAfterWords(words: number): void;
  sendRaw(data: string | Uint8Array): void;
}

export interface DeepgramFakeServer extends FakeProviderServer {
  readonly connections: readonly DeepgramConnectionRecord[];
  readonly control: DeepgramFakeControl;
}

const REFUSAL_BODIES: Readonly<Record<number, { err_code: string; err_msg: string }>> = {
  400: { err_code: 'Bad Request', err_msg: 'Bad Request: the request could not be processed.' },
  401: { err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.' },
  402: { err_code: 'ASR_PAYMENT_REQUIRED', err_msg: 'Project does not have enough credits for an ASR request.' },
  403: { err_code: 'INSUFFICIENT_PERMISSIONS', err_msg: 'Project does not have access to the requested model.' },
  404: { err_code: 'NOT_FOUND', err_msg: 'Not found.' },
  429: { err_code: 'TOO_MANY_REQUESTS', err_msg: 'Too many requests. Please try again later.' },
};

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

function rawBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export async function startDeepgramFake(options: DeepgramFakeOptions = {}): Promise<DeepgramFakeServer> {
  const apiKey = options.apiKey ?? `dg-fake-${randomUUID()}`;
  const idleCloseMs = options.idleCloseMs ?? 10_000;
  const pacing: SpeakPacing = { chunkMs: 40, realtimeFactor: 4, ...options.speakPacing };
  const flushLimit: FlushLimit = options.flushLimit ?? { count: 20, windowMs: 60_000 };
  const connections: DeepgramConnectionRecord[] = [];
  const refusals: number[] = [];
  const sockets = new Set<WebSocket>();
  let dropAfter: number | undefined;

  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'application/json' }).end(JSON.stringify({ err_code: 'UPGRADE_REQUIRED', err_msg: 'WebSocket only.' }));
  });
  // A subprotocol pair `token, <key>` must be answered with `token`, or the client drops the socket.
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('token') ? 'token' : false) });

  function refuse(socket: Duplex, status: number, record: DeepgramConnectionRecord, detail?: string): void {
    record.refusedStatus = status;
    const known = REFUSAL_BODIES[status] ?? { err_code: 'INTERNAL_SERVER_ERROR', err_msg: 'The service is unavailable.' };
    const body = JSON.stringify({ err_code: known.err_code, err_msg: detail ?? known.err_msg, request_id: randomUUID() });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  function authorised(req: IncomingMessage): boolean {
    if (headerText(req.headers.authorization) === `Token ${apiKey}`) return true;
    const protocols = headerText(req.headers['sec-websocket-protocol']).split(',').map((p) => p.trim());
    return protocols[0] === 'token' && protocols[1] === apiKey;
  }

  /** Why the query cannot be served (Deepgram answers 400), or undefined. */
  function queryProblem(path: string, q: URLSearchParams): string | undefined {
    const model = q.get('model') ?? '';
    if (path === '/v1/speak') {
      const format = speakFormat(q);
      return typeof format === 'string' ? format : undefined;
    }
    if (path === '/v2/listen' && !/^flux-/.test(model)) return `model "${model}" is not served on /v2/listen`;
    if (path === '/v1/listen' && /^flux-/.test(model)) return `model "${model}" is served on /v2/listen`;
    // This fake hears raw linear16 16 kHz mono only (what the pipeline sends).
    if (q.get('encoding') !== 'linear16' || q.get('sample_rate') !== '16000') return 'the fake needs encoding=linear16&sample_rate=16000';
    if ((q.get('channels') ?? '1') !== '1') return 'the fake hears one channel';
    return undefined;
  }

  function wordHeard(): boolean {
    if (dropAfter === undefined) return false;
    dropAfter--;
    if (dropAfter > 0) return false;
    dropAfter = undefined;
    return true;
  }

  function attach(ws: WebSocket, url: URL, record: DeepgramConnectionRecord): void {
    sockets.add(ws);
    const listening = url.pathname !== '/v1/speak';
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdle = () => {
      if (!listening) return;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => ws.readyState === ws.OPEN && ws.close(1011, 'NET-0001'), idleCloseMs);
    };
    const ctx: SessionContext = {
      url,
      requestId: randomUUID(),
      send: (message) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message)),
      sendBinary: (data) => ws.readyState === ws.OPEN && ws.send(data, { binary: true }),
      close: (code, reason) => (code === undefined ? ws.close() : ws.close(code, reason)),
      terminate: () => ws.terminate(),
      get open() {
        return ws.readyState === ws.OPEN;
      },
      wordHeard,
    };
    const session: FakeSession =
      url.pathname === '/v1/listen'
        ? createListenSession(ctx)
        : url.pathname === '/v2/listen'
          ? createFluxSession(ctx)
          : createSpeakSession(ctx, speakFormat(url.searchParams) as { encoding: string; sampleRate: number }, pacing, flushLimit);
    armIdle();
    ws.on('message', (data, isBinary) => {
      armIdle();
      if (isBinary) {
        const bytes = rawBytes(data);
        record.received.push(bytes.slice());
        session.onBinary(bytes);
      } else {
        const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(rawBytes(data)).toString('utf8');
        record.received.push(text);
        session.onText(text);
      }
    });
    ws.on('close', (code) => {
      record.closeCode = code;
      if (idleTimer) clearTimeout(idleTimer);
      sockets.delete(ws);
      session.onClose();
    });
    ws.on('error', () => undefined);
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'http://fake.deepgram');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) headers[name.toLowerCase()] = headerText(value);
    const record: DeepgramConnectionRecord = { url: req.url ?? '/', path: url.pathname, headers, received: [] };
    connections.push(record);
    const refusal = refusals.shift();
    if (refusal !== undefined) return refuse(socket, refusal, record);
    if (!authorised(req)) return refuse(socket, 401, record);
    if (!['/v1/listen', '/v2/listen', '/v1/speak'].includes(url.pathname)) return refuse(socket, 404, record);
    const problem = queryProblem(url.pathname, url.searchParams);
    if (problem) return refuse(socket, 400, record, problem);
    wss.handleUpgrade(req, socket, head, (ws) => attach(ws, url, record));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `ws://127.0.0.1:${port}`,
    apiKey,
    connections,
    control: {
      refuseNext(status, count = 1) {
        for (let i = 0; i < count; i++) refusals.push(status);
      },
      drop(close) {
        for (const ws of sockets) {
          if (!close || close.code === 1006) ws.terminate();
          else ws.close(close.code, close.reason);
        }
      },
      dropAfterWords(words) {
        dropAfter = words;
      },
      sendRaw(data) {
        for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(data, { binary: typeof data !== 'string' });
      },
    },
    async close() {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
