import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * The HTTP side shared by the LLM fakes: a node:http server on 127.0.0.1:0 that records every request
 * (path, lower-cased headers, parsed JSON body) and whether the client hung up before the answer was
 * complete, plus a writer that sends a byte stream in small pieces with pauses in between, so the client's
 * reads end at awkward places (mid-line, mid-UTF-8, between CR and LF).
 */

export interface RecordedRequest {
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  /** True once the client closed the connection before the fake finished answering. */
  closedEarly: boolean;
  /** Resolves when the exchange is over (answer finished or connection closed). */
  readonly settled: Promise<void>;
}

export type LlmScript =
  | {
      readonly type: 'reply';
      /** Sent as one text delta per word (whitespace kept). */
      readonly text?: string;
      /** Tool calls; their argument text is sent in `fragmentChars`-sized fragments (split mid-JSON). */
      readonly toolCalls?: readonly { readonly id?: string; readonly name: string; readonly arguments: string }[];
      readonly usage?: { readonly input: number; readonly output: number; readonly cached?: number };
      /** The vendor's finish reason (default: stop, or the tool-call reason when there are calls). */
      readonly finish?: string;
      readonly firstTokenDelayMs?: number;
      readonly tokenDelayMs?: number;
      /** After this many text tokens the vendor's mid-stream error event is sent and the stream ends. */
      readonly errorAfterTokens?: number;
      /** The stream ends (body closes cleanly) after this many text tokens, without the vendor's end. */
      readonly endAfterTokens?: number;
    }
  | { readonly type: 'status'; readonly status: number; readonly body?: string; readonly headers?: Readonly<Record<string, string>> };

export interface WriteOptions {
  /** Bytes per write (default 7: an odd size, so multi-byte characters and CRLFs get split). */
  readonly splitBytes?: number;
  /** Pause between writes (default 1 ms), so the pieces reach the client as separate reads. */
  readonly pauseMs?: number;
}

export interface SseHost {
  readonly endpoint: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export type Handler = (request: RecordedRequest, res: ServerResponse, raw: IncomingMessage) => Promise<void>;

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export async function startSseHost(handle: Handler): Promise<SseHost> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name] = value;
      let settle!: () => void;
      const record: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers, body, closedEarly: false, settled: new Promise((resolve) => (settle = resolve)) };
      requests.push(record);
      res.on('close', () => {
        if (!res.writableFinished) record.closedEarly = true;
        settle();
      });
      handle(record, res, req).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`fake failed: ${String(error)}`);
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Write `text` in small pieces; false when the client went away meanwhile. */
export async function writeSplit(res: ServerResponse, text: string, options: WriteOptions = {}): Promise<boolean> {
  const bytes = Buffer.from(text, 'utf8');
  const step = Math.max(1, options.splitBytes ?? 7);
  for (let offset = 0; offset < bytes.length; offset += step) {
    if (res.destroyed || res.writableEnded) return false;
    res.write(bytes.subarray(offset, offset + step));
    await pause(options.pauseMs ?? 1);
  }
  return !res.destroyed;
}

export function sendStatus(res: ServerResponse, script: { status: number; body?: string; headers?: Readonly<Record<string, string>> }): void {
  res.writeHead(script.status, { 'content-type': 'application/json', ...script.headers });
  res.end(script.body ?? '');
}

export function startEventStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
}

/** Words with their trailing whitespace: the token stream of a text. */
export function tokens(text: string | undefined): string[] {
  return text ? (text.match(/\s*\S+\s*/g) ?? []) : [];
}

/** Fixed-size fragments of a tool call's argument text (split anywhere, mid-JSON included). */
export function fragments(text: string, size: number): string[] {
  const out: string[] = [];
  const chars = [...text];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

/** A queue of scripts for the next requests; `fallback` answers when it is empty. */
export function createScriptQueue(fallback: LlmScript) {
  const queue: LlmScript[] = [];
  return {
    push: (...scripts: LlmScript[]) => void queue.push(...scripts),
    next: (): LlmScript => queue.shift() ?? fallback,
  };
}
