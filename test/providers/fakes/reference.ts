/**
 * The fake server of the "reference protocol": a minimal streaming STT/TTS protocol that exists only so the
 * shared socket base and the conformance suites can test themselves before (and besides) the vendor fakes.
 *
 * Handshake: `GET /ref/stt?...` or `/ref/tts?encoding=pcm16|mulaw&rate=16000[&binary=1]`, key in the
 * `x-api-key` header (or the `api_key` query parameter, the browser fallback). A bad key is refused with
 * HTTP 401 and a JSON body, or (authMode 'frame') accepted, answered with an error message and closed 4001.
 *
 * STT: binary frames of PCM16 16 kHz in; words are heard with the tone decoder. Text frames in:
 * `{"type":"finalize"}`, `{"type":"keepalive"}`, `{"type":"close"}`. Out: `{"type":"interim","text"}` after
 * each word, `{"type":"final","text","end_ms"}` after 300 ms of silent audio (stream time, not wall time) or
 * on finalize (then `{"type":"finalized"}`), `{"type":"closed"}` then close 1000 after close.
 *
 * TTS: text frames in: `begin|text|end|cancel` with a `context` (text carries `text` and `index`),
 * `keepalive`. Out, per context: `words` (timings from the synthesis), audio (binary frames when `binary=1`,
 * else `{"type":"audio","context","index","data":base64}`), `piece_done` after each piece, `done` after
 * `end`, `cancelled` after `cancel`. Audio is paced at `ttsSpeedup` × real time in 20 ms chunks.
 *
 * Errors: `{"type":"error","kind","message"}`. Idle sockets (no client frame for `idleCloseMs`) close 1011.
 */
import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type WebSocket from 'ws';
import { mulawEncode } from '../../../shared/audio/g711';
import type { FakeConnectionRecord, FakeProviderControl, FakeProviderServer, FakeStarter } from '../conformance/fake-server';
import { createToneDecoder, splitWords, synthesizeWords } from '../../fakes/tones';

export interface ReferenceFakeOptions {
  readonly idleCloseMs?: number;
  /** How a bad key is reported: a refused upgrade (default) or an error message on an accepted socket. */
  readonly authMode?: 'handshake' | 'frame';
  /** TTS audio pace relative to real time (default 10). */
  readonly ttsSpeedup?: number;
}

export const REFERENCE_API_KEY = 'reference-test-key';
const STT_RATE_HZ = 16_000;
const STT_FRAME_BYTES = 640;
const FINAL_SILENCE_MS = 300;

export function referenceFakeStarter(defaults: ReferenceFakeOptions = {}): FakeStarter {
  return (options) => startReferenceFake({ ...defaults, ...options });
}

export const startReferenceFakeServer: FakeStarter = referenceFakeStarter();

interface Live {
  readonly ws: WebSocket;
  readonly record: FakeConnectionRecord;
}

export async function startReferenceFake(options: ReferenceFakeOptions = {}): Promise<FakeProviderServer> {
  const connections: FakeConnectionRecord[] = [];
  const live = new Set<Live>();
  const refusals: number[] = [];
  const acceptErrors: string[] = [];
  const dropArm = { words: 0 };
  const wss = new WebSocketServer({ noServer: true });
  const http = createServer((_req, res) => res.writeHead(404).end());

  const sockets = new Set<Duplex>();
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Upgrade sockets leave the HTTP server's bookkeeping: tracked so close() ends them; errors are the client's business.
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    const record: FakeConnectionRecord = { url: req.url ?? '/', headers: flatHeaders(req), received: [] };
    connections.push(record);
    const url = new URL(req.url ?? '/', 'ws://fake');
    const refused = refusals.shift();
    if (refused !== undefined) return refuse(socket, refused, { error: `refused with ${refused} by the test` });
    const key = record.headers['x-api-key'] ?? url.searchParams.get('api_key');
    const badKey = key !== REFERENCE_API_KEY;
    if (badKey && options.authMode !== 'frame') return refuse(socket, 401, { error: 'invalid api key' });
    if (url.pathname !== '/ref/stt' && url.pathname !== '/ref/tts') return refuse(socket, 404, { error: `no route ${url.pathname}` });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: Live = { ws, record };
      live.add(connection);
      ws.on('close', (code) => {
        record.closeCode = code;
        live.delete(connection);
      });
      ws.on('error', () => {});
      const errorKind = badKey ? 'auth' : acceptErrors.shift();
      if (errorKind) {
        ws.send(JSON.stringify({ type: 'error', kind: errorKind, message: `${errorKind} error from the fake` }));
        ws.close(errorKind === 'auth' ? 4001 : 1011, errorKind);
        return;
      }
      const idle = idleCloser(ws, options.idleCloseMs);
      const session = url.pathname === '/ref/stt' ? sttSession(ws, dropArm) : ttsSession(ws, url.searchParams, options.ttsSpeedup ?? 10);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const frame = isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() : data.toString('utf8');
        record.received.push(frame);
        idle.touch();
        session.receive(frame);
      });
      ws.on('close', () => {
        idle.stop();
        session.stop();
      });
    });
  });

  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  const control: FakeProviderControl = {
    refuseNext(status, count = 1) {
      for (let i = 0; i < count; i++) refusals.push(status);
    },
    drop(close) {
      for (const { ws } of live) {
        if (close) ws.close(close.code, close.reason);
        else ws.terminate();
      }
    },
    dropAfterWords(words) {
      dropArm.words = words;
    },
    errorAfterAccept(kind) {
      acceptErrors.push(kind);
    },
    sendRaw(data) {
      for (const { ws } of live) ws.send(data, { binary: typeof data !== 'string' });
    },
  };

  return {
    endpoint: `ws://127.0.0.1:${port}`,
    apiKey: REFERENCE_API_KEY,
    connections,
    control,
    async close() {
      for (const { ws } of live) ws.terminate();
      for (const socket of sockets) socket.destroy();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

function refuse(socket: Duplex, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  return headers;
}

function idleCloser(ws: WebSocket, idleCloseMs: number | undefined) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const touch = (): void => {
    if (!idleCloseMs) return;
    clearTimeout(timer);
    timer = setTimeout(() => ws.close(1011, 'idle timeout'), idleCloseMs);
  };
  touch();
  return { touch, stop: () => clearTimeout(timer) };
}

interface Session {
  receive(frame: string | Uint8Array): void;
  stop(): void;
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

// ---- STT -------------------------------------------------------------------------------------------------

function sttSession(ws: WebSocket, dropArm: { words: number }): Session {
  let pending: string[] = [];
  let streamMs = 0;
  let silenceMs = 0;
  let dead = false;
  const frame = new Uint8Array(STT_FRAME_BYTES);
  let filled = 0;
  const send = (message: unknown): void => {
    if (!dead) ws.send(JSON.stringify(message));
  };
  const decoder = createToneDecoder(STT_RATE_HZ, (word) => {
    if (dead) return;
    pending.push(word);
    send({ type: 'interim', text: pending.join(' ') });
    if (dropArm.words > 0 && --dropArm.words === 0) {
      // Mid-utterance loss: everything this connection heard but did not finalise is gone.
      dead = true;
      ws.terminate();
    }
  });
  const emitFinal = (): void => {
    if (!pending.length) return;
    send({ type: 'final', text: pending.join(' '), end_ms: streamMs });
    pending = [];
  };
  const pushFrame = (): void => {
    decoder.push(new Int16Array(frame.buffer, 0, STT_FRAME_BYTES / 2));
    streamMs += 20;
    silenceMs = decoder.inWord ? 0 : silenceMs + 20;
    if (pending.length && silenceMs >= FINAL_SILENCE_MS) emitFinal();
  };
  return {
    receive(data) {
      if (dead) return;
      if (typeof data !== 'string') {
        for (let offset = 0; offset < data.byteLength && !dead; ) {
          const n = Math.min(STT_FRAME_BYTES - filled, data.byteLength - offset);
          frame.set(data.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === STT_FRAME_BYTES) {
            filled = 0;
            pushFrame();
          }
        }
        return;
      }
      const message = parse(data);
      if (message?.type === 'finalize') {
        decoder.flush();
        emitFinal();
        send({ type: 'finalized' });
      } else if (message?.type === 'close') {
        decoder.flush();
        emitFinal();
        send({ type: 'closed' });
        ws.close(1000, 'done');
      } else if (message?.type !== 'keepalive') {
        send({ type: 'error', kind: 'bad-request', message: `unknown message ${data.slice(0, 60)}` });
      }
    },
    stop() {
      dead = true;
    },
  };
}

// ---- TTS -------------------------------------------------------------------------------------------------

interface Context {
  readonly id: string;
  readonly pieces: { text: string; index: number }[];
  ended: boolean;
  cancelled: boolean;
  busy: boolean;
  /** Stream time of this context's audio so far (word timings are relative to its start). */
  offsetMs: number;
}

function ttsSession(ws: WebSocket, query: URLSearchParams, speedup: number): Session {
  const mulaw = query.get('encoding') === 'mulaw';
  const rateHz = Number(query.get('rate') ?? (mulaw ? 8000 : 16000));
  const binary = query.get('binary') === '1';
  const contexts = new Map<string, Context>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let stopped = false;
  const send = (message: unknown): void => {
    if (!stopped) ws.send(JSON.stringify(message));
  };
  const later = (ms: number, run: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
  };

  const encode = (pcm: Int16Array): Uint8Array => {
    if (!mulaw) return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
    const out = new Uint8Array(pcm.length);
    mulawEncode(pcm, out);
    return out;
  };

  /** Speak the context's pieces one after the other, in 20 ms chunks, until ended or cancelled. */
  const pump = (ctx: Context): void => {
    if (ctx.busy || stopped || ctx.cancelled) return;
    const piece = ctx.pieces.shift();
    if (!piece) {
      if (ctx.ended) {
        send({ type: 'done', context: ctx.id });
        contexts.delete(ctx.id);
      }
      return;
    }
    ctx.busy = true;
    const { pcm, spans } = synthesizeWords(splitWords(piece.text), rateHz);
    send({ type: 'words', context: ctx.id, words: spans.map((s) => ({ word: s.word, start_ms: s.startMs + ctx.offsetMs, end_ms: s.endMs + ctx.offsetMs })) });
    ctx.offsetMs += (pcm.length / rateHz) * 1000;
    const audio = encode(pcm);
    const chunk = (rateHz / 50) * (mulaw ? 1 : 2);
    let offset = 0;
    const next = (): void => {
      if (stopped || ctx.cancelled) return;
      const data = audio.subarray(offset, offset + chunk);
      offset += chunk;
      if (binary) ws.send(data, { binary: true });
      else send({ type: 'audio', context: ctx.id, index: piece.index, data: Buffer.from(data).toString('base64') });
      if (offset < audio.length) return later(20 / speedup, next);
      send({ type: 'piece_done', context: ctx.id });
      ctx.busy = false;
      pump(ctx);
    };
    next();
  };

  return {
    receive(data) {
      const message = typeof data === 'string' ? parse(data) : undefined;
      const id = typeof message?.context === 'string' ? message.context : '';
      if (message?.type === 'keepalive') return;
      if (message?.type === 'begin' && id && !contexts.has(id)) {
        contexts.set(id, { id, pieces: [], ended: false, cancelled: false, busy: false, offsetMs: 0 });
        return;
      }
      const ctx = contexts.get(id);
      if (!message || !ctx) return send({ type: 'error', context: id || undefined, kind: 'bad-request', message: 'unknown message or context' });
      if (message.type === 'text' && typeof message.text === 'string' && typeof message.index === 'number') {
        ctx.pieces.push({ text: message.text, index: message.index });
        pump(ctx);
      } else if (message.type === 'end') {
        ctx.ended = true;
        pump(ctx);
      } else if (message.type === 'cancel') {
        ctx.cancelled = true;
        contexts.delete(id);
        send({ type: 'cancelled', context: id });
      } else {
        send({ type: 'error', context: id, kind: 'bad-request', message: `unknown message type ${String(message.type)}` });
      }
    },
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
