/**
 * The one thing provider adapters need from the runtime to talk WebSocket: open a client socket with headers.
 * Node implements it with `ws` (media-node/providers/ws-socket.ts); workerd with `fetch` + `Upgrade:
 * websocket` (edge). Adapters never import either, so the same vendor file runs on both.
 */

export interface ConnectRequest {
  readonly url: string;
  /** Handshake headers (auth, API version). Browsers cannot send these; server-side runtimes can. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly protocols?: readonly string[];
  /** The handshake must complete within this. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface SocketHandlers {
  /** Text frames arrive as string, binary frames as Uint8Array (valid only during the call: copy to keep). */
  onMessage(data: string | Uint8Array): void;
  /** The socket closed (by either side, or the connection dropped: code 1006). Called once. */
  onClose(code: number, reason: string): void;
}

export interface ProviderSocket {
  send(data: string | Uint8Array): void;
  /** Bytes queued but not yet written: the adapter's back-pressure signal. */
  readonly bufferedAmount: number;
  readonly open: boolean;
  close(code?: number, reason?: string): void;
}

/**
 * Why a connection could not be opened. `status` is the HTTP status of a refused upgrade (401, 403, 429,
 * 5xx), with the body the server sent; undefined for network errors and timeouts.
 */
export class SocketConnectError extends Error {
  override readonly name = 'SocketConnectError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly body: string = '',
    readonly timedOut = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type SocketFactory = (request: ConnectRequest, handlers: SocketHandlers) => Promise<ProviderSocket>;
