import { afterEach, describe, expect, it } from 'vitest';
import { createFetchSocketFactory } from '../../../edge/providers/fetch-socket';
import type { WorkerdWebSocket } from '../../../edge/providers/fetch-socket';
import { SocketConnectError } from '../../../shared/providers/streaming/socket';
import type { SocketHandlers } from '../../../shared/providers/streaming/socket';

/**
 * The workerd socket factory under Node, with an injected fetch and a stand-in for workerd's WebSocket: the
 * paths that are awkward to provoke in real workerd (late sockets, Blob frames, error without close, throwing
 * close). test/workerd/providers.test.ts runs the same factory in workerd against real servers.
 */

type Listener = (event: never) => void;

class FakeWorkerdSocket implements WorkerdWebSocket {
  binaryType = 'blob';
  binaryTypeAtAccept: string | undefined;
  accepted = false;
  readonly sent: (string | number[])[] = [];
  readonly closeCalls: { code?: number; reason?: string }[] = [];
  bufferedAmount?: number;
  throwOnClose: ((code?: number) => boolean) | undefined;
  throwOnSend = false;
  private readonly listeners = new Map<string, Listener[]>();

  accept(): void {
    this.accepted = true;
    this.binaryTypeAtAccept = this.binaryType;
  }
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.throwOnSend) throw new TypeError("Can't call WebSocket send() after close().");
    if (typeof data === 'string') this.sent.push(data);
    else if (ArrayBuffer.isView(data)) this.sent.push([...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
    else this.sent.push([...new Uint8Array(data)]);
  }
  close(code?: number, reason?: string): void {
    if (this.throwOnClose?.(code)) throw new TypeError(`invalid close code ${code}`);
    this.closeCalls.push({ code, reason });
  }
  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  emit(type: 'message' | 'close' | 'error', event: object): void {
    for (const listener of this.listeners.get(type) ?? []) (listener as (e: object) => void)(event);
  }
}

interface FetchCall {
  readonly url: string;
  readonly headers: Headers;
  readonly signal: AbortSignal;
}

/** A fetch whose answer the test decides; every call is recorded. */
function stubFetch(answer: (call: FetchCall) => Promise<Response>) {
  const calls: FetchCall[] = [];
  const fetchImpl = (input: string, init: RequestInit): Promise<Response> => {
    const call = { url: input, headers: new Headers(init.headers), signal: init.signal! };
    calls.push(call);
    return answer(call);
  };
  return { calls, connect: createFetchSocketFactory(fetchImpl) };
}

const upgraded = (ws: FakeWorkerdSocket): Promise<Response> => Promise.resolve({ status: 101, webSocket: ws, body: null } as unknown as Response);

/** Never answers; rejects like fetch when its signal aborts. */
const hanging = (call: FetchCall): Promise<Response> =>
  new Promise((_resolve, reject) => call.signal.addEventListener('abort', () => reject(call.signal.reason), { once: true }));

function recorder() {
  const messages: (string | Uint8Array)[] = [];
  const closes: { code: number; reason: string }[] = [];
  const handlers: SocketHandlers = {
    onMessage: (data) => messages.push(typeof data === 'string' ? data : data.slice()),
    onClose: (code, reason) => closes.push({ code, reason }),
  };
  return { messages, closes, handlers };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('fetch socket factory (workerd), under Node with a stub fetch', () => {
  it('maps ws:// and wss:// to http(s):// and sends Upgrade, the headers and Sec-WebSocket-Protocol', async () => {
    const { calls, connect } = stubFetch(() => upgraded(new FakeWorkerdSocket()));
    await connect({ url: 'ws://127.0.0.1:9/v1/listen?model=nova-3', headers: { Authorization: 'Token abc' }, protocols: ['token', 'abc'], timeoutMs: 1000 }, recorder().handlers);
    await connect({ url: 'wss://api.deepgram.com/v1/speak', timeoutMs: 1000 }, recorder().handlers);
    expect(calls.map((c) => c.url)).toEqual(['http://127.0.0.1:9/v1/listen?model=nova-3', 'https://api.deepgram.com/v1/speak']);
    expect(calls[0]!.headers.get('upgrade')).toBe('websocket');
    expect(calls[0]!.headers.get('authorization')).toBe('Token abc');
    expect(calls[0]!.headers.get('sec-websocket-protocol')).toBe('token, abc');
    expect(calls[1]!.headers.has('sec-websocket-protocol')).toBe(false);
  });

  it('an unsupported scheme rejects without any fetch', async () => {
    const { calls, connect } = stubFetch(() => upgraded(new FakeWorkerdSocket()));
    const error = await connect({ url: 'ftp://example.test/', timeoutMs: 1000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined, timedOut: false });
    expect(calls).toHaveLength(0);
  });

  it('a refused upgrade rejects with the status and at most ~4 KB of the body, the query redacted', async () => {
    const { connect } = stubFetch(() => Promise.resolve(new Response('x'.repeat(100_000), { status: 503 })));
    const error = await connect({ url: 'wss://vendor.test/ws?api_key=secret-key', timeoutMs: 1000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: 503, timedOut: false });
    expect((error as SocketConnectError).body.length).toBeLessThanOrEqual(4096);
    expect((error as SocketConnectError).body.length).toBeGreaterThan(1000);
    expect((error as Error).message).not.toContain('secret-key');

    const { connect: connect401 } = stubFetch(() => Promise.resolve(new Response('{"err_code":"INVALID_AUTH"}', { status: 401 })));
    const refused = await connect401({ url: 'ws://vendor.test/', timeoutMs: 1000 }, recorder().handlers).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 401, body: '{"err_code":"INVALID_AUTH"}' });
  });

  it('a network failure rejects without a status, keeping the cause', async () => {
    const cause = new TypeError('Network connection lost.');
    const { connect } = stubFetch(() => Promise.reject(cause));
    const error = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined, timedOut: false });
    expect((error as Error).cause).toBe(cause);
  });

  it('a 101 without response.webSocket (not workerd) rejects without a status', async () => {
    const { connect } = stubFetch(() => Promise.resolve({ status: 101, webSocket: null, body: null } as unknown as Response));
    const error = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined });
  });

  it('times out a handshake that never completes and aborts the fetch', async () => {
    const { calls, connect } = stubFetch(hanging);
    const started = Date.now();
    const error = await connect({ url: 'ws://vendor.test/', timeoutMs: 120 }, recorder().handlers).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ status: undefined, timedOut: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(calls[0]!.signal.aborted).toBe(true);
  });

  it('a socket that arrives after the deadline is accepted and closed, never handed out', async () => {
    const late = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => delay(100).then(() => upgraded(late)));
    const r = recorder();
    const error = await connect({ url: 'ws://vendor.test/', timeoutMs: 20 }, r.handlers).catch((e: unknown) => e);
    expect(error).toMatchObject({ timedOut: true });
    await delay(150);
    expect(late.accepted).toBe(true);
    expect(late.closeCalls).toHaveLength(1);
    late.emit('message', { data: 'late' });
    late.emit('close', { code: 1000, reason: '' });
    expect(r.messages).toEqual([]);
    expect(r.closes).toEqual([]);
  });

  it('an aborted signal stops the attempt (AbortError), before or during the fetch', async () => {
    const { calls, connect } = stubFetch(hanging);
    const before = new AbortController();
    before.abort();
    expect(((await connect({ url: 'ws://vendor.test/', timeoutMs: 5000, signal: before.signal }, recorder().handlers).catch((e: unknown) => e)) as Error).name).toBe('AbortError');
    expect(calls).toHaveLength(0);
    const during = new AbortController();
    const pending = connect({ url: 'ws://vendor.test/', timeoutMs: 5000, signal: during.signal }, recorder().handlers);
    setTimeout(() => during.abort(), 20);
    expect(((await pending.catch((e: unknown) => e)) as Error).name).toBe('AbortError');
    expect(calls[0]!.signal.aborted).toBe(true);
  });

  it('accepts with binaryType arraybuffer; text stays text, ArrayBuffer and views arrive as plain Uint8Array', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    let rawBinary: Uint8Array | undefined;
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, {
      onMessage: (data) => {
        if (typeof data !== 'string') rawBinary = data;
        r.handlers.onMessage(data);
      },
      onClose: r.handlers.onClose,
    });
    expect(ws.accepted).toBe(true);
    expect(ws.binaryTypeAtAccept).toBe('arraybuffer');
    expect(socket.open).toBe(true);
    ws.emit('message', { data: '{"type":"Results"}' });
    ws.emit('message', { data: new Uint8Array([1, 2, 3, 250]).buffer });
    ws.emit('message', { data: new Uint8Array([0, 5, 6, 0]).subarray(1, 3) });
    expect(r.messages).toEqual(['{"type":"Results"}', new Uint8Array([1, 2, 3, 250]), new Uint8Array([5, 6])]);
    expect(Object.getPrototypeOf(rawBinary)).toBe(Uint8Array.prototype);
  });

  it('Blob frames (binaryType not honoured) are read and delivered in order, before the close', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, r.handlers);
    ws.emit('message', { data: 'first' });
    ws.emit('message', { data: new Blob([new Uint8Array([7, 7])]) });
    ws.emit('message', { data: 'third' });
    ws.emit('close', { code: 1000, reason: 'done' });
    await delay(20);
    expect(r.messages).toEqual(['first', new Uint8Array([7, 7]), 'third']);
    expect(r.closes).toEqual([{ code: 1000, reason: 'done' }]);
  });

  it('a peer close is reported once with its code and reason, answered, and a later error adds nothing', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, r.handlers);
    ws.emit('close', { code: 1011, reason: 'NET-0001' });
    // workerd fires 'error' ("Network connection lost.") right after a server close.
    ws.emit('error', { message: 'Network connection lost.' });
    ws.emit('message', { data: 'after close' });
    await delay(200);
    expect(r.closes).toEqual([{ code: 1011, reason: 'NET-0001' }]);
    expect(r.messages).toEqual([]);
    expect(socket.open).toBe(false);
    expect(ws.closeCalls).toHaveLength(1);
  });

  it('an error without a close is reported as 1006, once', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, r.handlers);
    ws.emit('error', { message: 'WebSocket protocol error' });
    expect(socket.open).toBe(false);
    await delay(200);
    ws.emit('error', { message: 'again' });
    await delay(200);
    expect(r.closes).toEqual([{ code: 1006, reason: 'WebSocket protocol error' }]);
  });

  it('an error followed by a close reports the close code', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, r.handlers);
    ws.emit('error', { message: 'protocol error' });
    await delay(10);
    ws.emit('close', { code: 1002, reason: 'protocol error' });
    await delay(200);
    expect(r.closes).toEqual([{ code: 1002, reason: 'protocol error' }]);
  });

  it('send passes text and views; close(code, reason) goes out once; nothing is sent after it', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const r = recorder();
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, r.handlers);
    socket.send('{"type":"KeepAlive"}');
    socket.send(new Uint8Array([9, 8, 7, 6]).subarray(1, 3));
    socket.close(1000, 'bye');
    socket.close(1000, 'again');
    socket.send('after close');
    expect(ws.sent).toEqual(['{"type":"KeepAlive"}', [8, 7]]);
    expect(ws.closeCalls).toEqual([{ code: 1000, reason: 'bye' }]);
    expect(socket.open).toBe(false);
    // Frames still in flight before the peer's Close are delivered; the peer's Close is the one report.
    ws.emit('message', { data: 'last words' });
    ws.emit('close', { code: 1000, reason: 'bye' });
    expect(r.messages).toEqual(['last words']);
    expect(r.closes).toEqual([{ code: 1000, reason: 'bye' }]);
  });

  it('an invalid close code still ends the socket; a send the runtime refuses does not throw', async () => {
    const ws = new FakeWorkerdSocket();
    ws.throwOnClose = (code) => code === 1006;
    const { connect } = stubFetch(() => upgraded(ws));
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, recorder().handlers);
    ws.throwOnSend = true;
    expect(() => socket.send('x')).not.toThrow();
    socket.close(1006, 'dropped');
    expect(ws.closeCalls).toEqual([{ code: undefined, reason: undefined }]);
  });

  it('bufferedAmount: 0 where the runtime has none (workerd), the runtime value where it has one', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000 }, recorder().handlers);
    expect(socket.bufferedAmount).toBe(0);
    ws.bufferedAmount = 640;
    expect(socket.bufferedAmount).toBe(640);
  });

  it('aborting the signal after open closes the socket with 1000', async () => {
    const ws = new FakeWorkerdSocket();
    const { connect } = stubFetch(() => upgraded(ws));
    const abort = new AbortController();
    cleanups.push(() => abort.abort());
    const socket = await connect({ url: 'ws://vendor.test/', timeoutMs: 1000, signal: abort.signal }, recorder().handlers);
    abort.abort();
    expect(ws.closeCalls).toEqual([{ code: 1000, reason: 'aborted' }]);
    expect(socket.open).toBe(false);
  });
});
