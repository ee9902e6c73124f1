import { SocketConnectError, type SocketFactory } from '../../shared/providers/streaming/socket';

/**
 * Workers allow 6 simultaneous open outbound connections per invocation (fetch, TCP, outbound WebSocket;
 * reference/cloudflare.md §2). A browser call in a Durable Object needs, at most at once: the STT socket, the
 * TTS socket, the LLM stream, one database connection, the cache and a tool or knowledge request. Past the
 * limit the platform queues or fails connections on its own, far from the code that opened them; this
 * budget makes the limit explicit: every connection the session opens holds a slot until it is closed
 * (sockets) or its response body has ended (fetch).
 *
 * Decision: a connection over the limit waits (FIFO) up to `waitMs` for a slot, because the usual cause is a
 * socket whose close is still in flight while its replacement opens (a TTS cancel, an STT reconnect); after
 * that it is refused with EDGE_CONNECTION_BUDGET (retryable: the adapters' own retry logic takes over).
 */

export const EDGE_OUTBOUND_CONNECTION_LIMIT = 6;
const DEFAULT_WAIT_MS = 2_000;
/** After our own close(), the peer's close frame normally frees the slot; this long at most. */
const CLOSE_RELEASE_GRACE_MS = 1_000;

export class ConnectionBudgetError extends Error {
  override readonly name = 'ConnectionBudgetError';
  readonly code = 'EDGE_CONNECTION_BUDGET';
  readonly retryable = true;
  constructor(message: string) {
    super(`EDGE_CONNECTION_BUDGET: ${message}`);
  }
}

/** One held slot; `release` is idempotent. */
export interface ConnectionLease {
  readonly label: string;
  release(): void;
}

export interface ConnectionBudgetSnapshot {
  readonly limit: number;
  readonly inUse: number;
  /** The most slots held at once since the budget was created. */
  readonly peak: number;
  /** Connections refused after waiting `waitMs`. */
  readonly refused: number;
  /** Connections that had to wait for a slot. */
  readonly waited: number;
  /** Open connections by label (`stt`, `tts`, `llm`, `database`, `tools`, ...). */
  readonly open: Readonly<Record<string, number>>;
}

export interface ConnectionBudget {
  acquire(label: string, signal?: AbortSignal): Promise<ConnectionLease>;
  snapshot(): ConnectionBudgetSnapshot;
}

interface Waiter {
  readonly label: string;
  readonly grant: (lease: ConnectionLease) => void;
  readonly fail: (error: Error) => void;
}

export function createConnectionBudget(options: { limit?: number; waitMs?: number } = {}): ConnectionBudget {
  const limit = options.limit ?? EDGE_OUTBOUND_CONNECTION_LIMIT;
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
  const open = new Map<string, number>();
  const waiters: Waiter[] = [];
  let inUse = 0;
  let peak = 0;
  let refused = 0;
  let waited = 0;

  const describeOpen = () => [...open].filter(([, n]) => n > 0).map(([label, n]) => `${label} ${n}`).join(', ');

  function lease(label: string): ConnectionLease {
    inUse++;
    peak = Math.max(peak, inUse);
    open.set(label, (open.get(label) ?? 0) + 1);
    let held = true;
    return {
      label,
      release() {
        if (!held) return;
        held = false;
        inUse--;
        open.set(label, (open.get(label) ?? 1) - 1);
        const next = waiters.shift();
        if (next) next.grant(lease(next.label));
      },
    };
  }

  return {
    acquire(label, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason as Error);
      if (inUse < limit) return Promise.resolve(lease(label));
      waited++;
      return new Promise<ConnectionLease>((resolve, reject) => {
        const settle = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const index = waiters.indexOf(waiter);
          if (index !== -1) waiters.splice(index, 1);
        };
        const waiter: Waiter = {
          label,
          grant: (granted) => {
            settle();
            resolve(granted);
          },
          fail: (error) => {
            settle();
            reject(error);
          },
        };
        const onAbort = () => waiter.fail(signal!.reason as Error);
        const timer = setTimeout(() => {
          refused++;
          waiter.fail(new ConnectionBudgetError(`all ${limit} outbound connections of this session are open (${describeOpen()}); a ${label} connection waited ${waitMs} ms for one to close`));
        }, waitMs);
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    snapshot() {
      return { limit, inUse, peak, refused, waited, open: Object.fromEntries([...open].filter(([, n]) => n > 0)) };
    },
  };
}

/**
 * A socket factory whose sockets hold a slot from the connection attempt until the close is reported (or
 * shortly after our own close, should the peer never answer it). A refusal surfaces as a SocketConnectError
 * without status, which the streaming adapters treat like a network failure (retry, then fallback).
 */
export function budgetedSocketFactory(budget: ConnectionBudget, connect: SocketFactory, label: string): SocketFactory {
  return async (request, handlers) => {
    let slot: ConnectionLease;
    try {
      slot = await budget.acquire(label, request.signal);
    } catch (error) {
      if (error instanceof ConnectionBudgetError) throw new SocketConnectError(error.message, undefined, '', false, { cause: error });
      throw error;
    }
    let socket;
    try {
      socket = await connect(request, {
        onMessage: (data) => handlers.onMessage(data),
        onClose: (code, reason) => {
          slot.release();
          handlers.onClose(code, reason);
        },
      });
    } catch (error) {
      slot.release();
      throw error;
    }
    const opened = socket;
    return {
      send: (data) => opened.send(data),
      get bufferedAmount() {
        return opened.bufferedAmount;
      },
      get open() {
        return opened.open;
      },
      close(code, reason) {
        opened.close(code, reason);
        setTimeout(() => slot.release(), CLOSE_RELEASE_GRACE_MS);
      },
    };
  };
}

/** Responses that carry no body by definition (the Response constructor refuses one for them). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * `fetch` whose requests hold a slot until the response body has been read to the end, cancelled or has
 * failed (or, without a body, until the headers arrived). A refusal rejects with ConnectionBudgetError.
 * Not for WebSocket upgrades: those go through `budgetedSocketFactory`.
 */
export function budgetedFetch(budget: ConnectionBudget, fetchImpl: typeof fetch, label: string): typeof fetch {
  return async (input, init) => {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined) ?? undefined;
    const slot = await budget.acquire(label, signal);
    let response: Response;
    try {
      response = await fetchImpl(input, init);
    } catch (error) {
      slot.release();
      throw error;
    }
    const body = response.body;
    if (!body || NULL_BODY_STATUSES.has(response.status)) {
      slot.release();
      return response;
    }
    signal?.addEventListener('abort', () => slot.release(), { once: true });
    const reader = body.getReader();
    const tracked = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            slot.release();
            controller.close();
          } else controller.enqueue(value);
        } catch (error) {
          slot.release();
          controller.error(error);
        }
      },
      cancel(reason) {
        slot.release();
        return reader.cancel(reason);
      },
    });
    return new Response(tracked, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
