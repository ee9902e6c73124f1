import { SocketConnectError } from '../../shared/providers/streaming/socket';
import type { ConnectRequest, ProviderSocket, SocketFactory, SocketHandlers } from '../../shared/providers/streaming/socket';

/** A refused upgrade's body is read for the error message only: vendors put the reason there, never much. */
const MAX_ERROR_BODY_BYTES = 4096;
/**
 * workerd reports a dropped connection as a 'close' event (1006), and a server close as 'close' then 'error'
 * ("Network connection lost."). An 'error' with no close yet waits this long for one before reporting 1006.
 */
const ERROR_CLOSE_GRACE_MS = 100;

/**
 * The part of workerd's WebSocket this factory uses (the project has no workers-types: the DOM lib's
 * WebSocket lacks `accept()`). `bufferedAmount` is optional on purpose: workerd does not implement it
 * (cloudflare/workerd#988, open), so the property is undefined there.
 */
export interface WorkerdWebSocket {
  accept(): void;
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { readonly code: number; readonly reason: string }) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
  binaryType?: string;
  readonly bufferedAmount?: number;
}

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/**
 * The workerd socket factory of the streaming providers: `fetch(url, { headers: { Upgrade: 'websocket' } })`
 * answered by 101 carries the socket in `response.webSocket` (reference/cloudflare.md §3). Web-standard APIs
 * only, so it also runs under Node with an injected `fetchImpl` (tests).
 *
 * The promise settles once, like the Node factory's: resolved when the upgrade completed; rejected with a
 * SocketConnectError otherwise (HTTP status and ≤ 4 KB of body for a refused upgrade; status undefined for
 * network errors; `timedOut` for the deadline), or with an AbortError when `signal` aborts first. `onClose`
 * fires once, only for a socket that opened: with the peer's code and reason, or 1006 when the connection
 * failed without a close frame.
 */
export function createFetchSocketFactory(fetchImpl: FetchLike = fetch): SocketFactory {
  return (request, handlers) => connectFetch(fetchImpl, request, handlers);
}

function connectFetch(fetchImpl: FetchLike, request: ConnectRequest, handlers: SocketHandlers): Promise<ProviderSocket> {
  return new Promise<ProviderSocket>((resolve, reject) => {
    const { signal } = request;
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    let url: string;
    try {
      url = fetchUrl(request.url);
    } catch (error) {
      reject(new SocketConnectError(`cannot connect to ${redact(request.url)}: ${messageOf(error)}`, undefined, '', false, { cause: error }));
      return;
    }

    // Aborts the fetch (and a refusal body being read) when the attempt fails for any reason.
    const attempt = new AbortController();
    let phase: 'connecting' | 'open' | 'closed' = 'connecting';
    let socket: ProviderSocket | undefined;
    const fail = (error: Error): void => {
      if (phase !== 'connecting') return;
      phase = 'closed';
      cleanup();
      attempt.abort(error);
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new SocketConnectError(`the handshake with ${redact(request.url)} did not finish within ${request.timeoutMs} ms`, undefined, '', true)),
      request.timeoutMs,
    );
    const onAbort = (): void => {
      if (phase === 'connecting') fail(abortError());
      else if (phase === 'open') socket?.close(1000, 'aborted');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    const headers = new Headers(request.headers);
    headers.set('Upgrade', 'websocket');
    if (request.protocols?.length) headers.set('Sec-WebSocket-Protocol', request.protocols.join(', '));

    let pending: Promise<Response>;
    try {
      pending = fetchImpl(url, { headers, signal: attempt.signal });
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      async (response) => {
        const ws = (response as Response & { webSocket?: WorkerdWebSocket | null }).webSocket ?? undefined;
        if (phase !== 'connecting') {
          // The attempt failed (deadline, abort) while the answer was on its way: release what came back.
          if (ws) abandon(ws);
          else void response.body?.cancel().catch(() => undefined);
          return;
        }
        if (response.status !== 101 || !ws) {
          if (response.status === 101) {
            fail(new SocketConnectError(`${redact(request.url)} answered 101 but the runtime gave no WebSocket (response.webSocket is a workerd API)`, undefined));
            return;
          }
          const status = response.status;
          const body = await readBoundedBody(response);
          fail(new SocketConnectError(`${redact(request.url)} refused the upgrade with HTTP ${status}${body ? `: ${body}` : ''}`, status, body));
          return;
        }
        phase = 'open';
        // The deadline is met; the signal stays watched while the socket lives (abort → close 1000).
        clearTimeout(timer);
        socket = openSocket(ws, handlers, () => {
          phase = 'closed';
          cleanup();
        });
        resolve(socket);
      },
      (error: unknown) => {
        if (phase !== 'connecting') return;
        fail(new SocketConnectError(`cannot connect to ${redact(request.url)}: ${messageOf(error)}`, undefined, '', false, { cause: error }));
      },
    );
  });
}

/** Accept the upgraded socket and adapt it to ProviderSocket; `onEnded` runs when the close is reported. */
function openSocket(ws: WorkerdWebSocket, handlers: SocketHandlers, onEnded: () => void): ProviderSocket {
  let open = true;
  let closeSeen = false;
  let closeReported = false;
  // Set once a Blob arrived: later messages and the close wait behind its read, so the order holds.
  let queue: Promise<void> | undefined;

  const reportClose = (code: number, reason: string): void => {
    if (closeReported) return;
    closeReported = true;
    open = false;
    onEnded();
    handlers.onClose(code, reason);
  };
  const inOrder = (step: () => void | Promise<void>): void => {
    if (queue) {
      queue = queue.then(step).catch(() => undefined);
      return;
    }
    const result = step();
    // From the first Blob on, everything goes through the queue (the Blob fallback only; see below).
    if (result instanceof Promise) queue = result.catch(() => undefined);
  };

  ws.addEventListener('message', (event) => {
    // Like the Node factory, frames that arrive after our close() and before the peer's Close still count.
    if (closeReported) return;
    const data = event.data;
    inOrder(() => {
      if (closeReported) return;
      if (typeof data === 'string') handlers.onMessage(data);
      else if (data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) handlers.onMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else if (typeof Blob !== 'undefined' && data instanceof Blob) {
        // binaryType 'blob' (workerd's default from compat date 2026-03-17) if setting 'arraybuffer' did not take.
        return data.arrayBuffer().then(
          (buffer) => {
            if (!closeReported) handlers.onMessage(new Uint8Array(buffer));
          },
          () => undefined,
        );
      }
    });
  });
  ws.addEventListener('close', (event) => {
    open = false;
    closeSeen = true;
    // workerd (compat ≥ 2026-04-07) answers a peer's Close by itself; for older dates the reciprocal close is
    // ours to send, and it is harmless when the runtime already did.
    reciprocate(ws, event.code, event.reason);
    inOrder(() => reportClose(event.code, event.reason ?? ''));
  });
  ws.addEventListener('error', (event) => {
    open = false;
    if (closeSeen) return;
    // An error is normally followed by a close event carrying the code; without one the connection dropped.
    const message = (event as { message?: unknown } | null)?.message;
    setTimeout(() => inOrder(() => reportClose(1006, typeof message === 'string' ? message : '')), ERROR_CLOSE_GRACE_MS);
  });

  // From compat date 2026-03-17 binary frames arrive as Blob unless asked otherwise (before accept()).
  ws.binaryType = 'arraybuffer';
  ws.accept();

  return {
    send(data) {
      if (!open) return;
      try {
        ws.send(data);
      } catch {
        // The socket closed under us; the close event reports it.
      }
    },
    get bufferedAmount() {
      // workerd's WebSocket has no bufferedAmount (cloudflare/workerd#988): it is undefined there, so adapters
      // see 0 and get no back-pressure signal from the edge. Where a runtime does expose it, it is used.
      return typeof ws.bufferedAmount === 'number' ? ws.bufferedAmount : 0;
    },
    get open() {
      return open;
    },
    close(code = 1000, reason = '') {
      if (!open) return;
      open = false;
      try {
        ws.close(code, reason);
      } catch {
        // An invalid close code (e.g. 1006 passed through) must still end the socket.
        try {
          ws.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

/** Send the reciprocal close for a peer-initiated close; any failure means the socket is already closed. */
function reciprocate(ws: WorkerdWebSocket, code: number, reason: string): void {
  try {
    if (code === 1000 || (code >= 3000 && code <= 4999)) ws.close(code, reason);
    else ws.close();
  } catch {
    // Already closed (the runtime replied itself, or the connection is gone).
  }
}

/** A socket that arrived after its attempt was given up: accept it only to close it. */
function abandon(ws: WorkerdWebSocket): void {
  try {
    ws.accept();
    ws.close(1000, 'connection attempt abandoned');
  } catch {
    // Nothing to release.
  }
}

/** fetch speaks http(s): ws:// and wss:// map onto them; anything else is refused before any I/O. */
function fetchUrl(url: string): string {
  const parsed = new URL(url);
  const scheme = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' }[parsed.protocol];
  if (!scheme) throw new TypeError(`unsupported scheme ${parsed.protocol} (use ws://, wss://, http:// or https://)`);
  parsed.protocol = scheme;
  return parsed.toString();
}

async function readBoundedBody(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ERROR_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = MAX_ERROR_BODY_BYTES - size;
      const chunk = value.byteLength > room ? value.subarray(0, room) : value;
      chunks.push(chunk);
      size += chunk.byteLength;
    }
  } catch {
    // A body that fails half way still gives what arrived.
  } finally {
    void reader.cancel().catch(() => undefined);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes).trim();
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
