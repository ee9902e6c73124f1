import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { SocketConnectError } from '../../shared/providers/streaming/socket';
import type { ConnectRequest, ProviderSocket, SocketFactory, SocketHandlers } from '../../shared/providers/streaming/socket';

/** A refused upgrade's body is read for the error message only: vendors put the reason there, never much. */
const MAX_ERROR_BODY_BYTES = 4096;

/**
 * The Node socket factory of the streaming providers, on `ws`. The promise settles once: resolved when the
 * upgrade completed, rejected with a SocketConnectError otherwise (HTTP status and body of a refused upgrade;
 * status undefined for network errors, `timedOut` for the deadline). `onClose` fires once, and only for a
 * socket that opened.
 */
export function createWsSocketFactory(): SocketFactory {
  return (request, handlers) => connectWs(request, handlers);
}

function connectWs(request: ConnectRequest, handlers: SocketHandlers): Promise<ProviderSocket> {
  return new Promise<ProviderSocket>((resolve, reject) => {
    const { signal } = request;
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(request.url, request.protocols ? [...request.protocols] : undefined, {
        headers: request.headers ? { ...request.headers } : undefined,
        // No compression: audio does not compress, and a deflating sender would queue our buffers by reference.
        perMessageDeflate: false,
        followRedirects: false,
      });
    } catch (error) {
      reject(new SocketConnectError(`cannot connect to ${redact(request.url)}: ${messageOf(error)}`, undefined, '', false, { cause: error }));
      return;
    }

    let phase: 'connecting' | 'open' | 'closed' = 'connecting';
    const fail = (error: Error): void => {
      if (phase !== 'connecting') return;
      phase = 'closed';
      cleanup();
      ws.terminate();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new SocketConnectError(`the handshake with ${redact(request.url)} did not finish within ${request.timeoutMs} ms`, undefined, '', true)),
      request.timeoutMs,
    );
    const onAbort = (): void => {
      if (phase === 'connecting') fail(abortError());
      else if (phase === 'open') socket.close(1000, 'aborted');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    const socket: ProviderSocket = {
      send(data) {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      },
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
      get open() {
        return ws.readyState === WebSocket.OPEN;
      },
      close(code = 1000, reason = '') {
        if (ws.readyState === WebSocket.CLOSED) return;
        try {
          ws.close(code, reason);
        } catch {
          // An invalid close code (e.g. 1006 passed through) must still end the socket.
          ws.terminate();
        }
      },
    };

    // Errors always come with a close; a listener must exist or `ws` would throw them.
    ws.on('error', (error) => fail(new SocketConnectError(`cannot connect to ${redact(request.url)}: ${error.message}`, undefined, '', false, { cause: error })));
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const status = res.statusCode;
      readBoundedBody(res, (body) =>
        fail(new SocketConnectError(`${redact(request.url)} refused the upgrade with HTTP ${status ?? '?'}${body ? `: ${body}` : ''}`, status, body)),
      );
    });
    ws.on('open', () => {
      if (phase !== 'connecting') return;
      phase = 'open';
      clearTimeout(timer);
      resolve(socket);
    });
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (phase !== 'open') return;
      const buffer = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? Buffer.from(data) : data;
      // A plain Uint8Array view (no copy): a Buffer would leak Node semantics (Buffer#slice is a view).
      handlers.onMessage(isBinary ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : buffer.toString('utf8'));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (phase === 'connecting') {
        fail(new SocketConnectError(`${redact(request.url)} closed during the handshake (${code})`, undefined));
        return;
      }
      if (phase !== 'open') return;
      phase = 'closed';
      cleanup();
      handlers.onClose(code, reason.toString('utf8'));
    });
  });
}

function readBoundedBody(res: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    res.removeAllListeners('data');
    done(Buffer.concat(chunks).toString('utf8').slice(0, MAX_ERROR_BODY_BYTES).trim());
  };
  res.on('data', (chunk: Buffer) => {
    if (finished) return;
    const room = MAX_ERROR_BODY_BYTES - size;
    chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    size += Math.min(chunk.length, room);
    if (size >= MAX_ERROR_BODY_BYTES) finish();
  });
  res.on('end', finish);
  res.on('error', finish);
  res.on('close', finish);
}

function abortError(): Error {
  return new DOMException('the connection attempt was aborted', 'AbortError');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Query strings may carry keys (browser-style fallbacks): never put them in messages. */
function redact(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}
