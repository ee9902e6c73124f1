import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis, ReplyError } from 'ioredis';
import { z } from 'zod';

/**
 * An Upstash-REST-compatible HTTP server over a REAL Redis (ioredis), for tests: the edge's @upstash/redis
 * client talks to it exactly as to Upstash, and the data lands in the same Redis the media nodes' ioredis
 * clients use, so a node registered through ioredis is read back through "Upstash".
 *
 * The subset of Upstash's REST protocol the client uses (POST with the command in the body):
 * - `POST /` with `["SET","k","v"]` → 200 `{"result": ...}`; a command Redis refuses → 400 `{"error": "..."}`;
 * - `POST /pipeline` with `[["SET","k","v"],["GET","k"]]` → 200 `[{"result": ...}, {"error": "..."}]`, one entry
 *   per command, run in order (not atomically);
 * - `POST /multi-exec`: the same body, run as one MULTI/EXEC transaction;
 * - `Authorization: Bearer <token>` on every request, else 401 `{"error": "Unauthorized"}`;
 * - `Upstash-Encoding: base64` (the client's default): every string in the result is base64 (UTF-8), except
 *   the status reply `OK`, which the client expects verbatim; integers stay JSON numbers, nil is null.
 * Not implemented: GET-style path commands, SSE subscriptions, read-your-writes sync tokens (the header is
 * accepted and ignored).
 */

export interface UpstashShim {
  /** `http://127.0.0.1:<port>` (UPSTASH_REDIS_REST_URL). */
  readonly url: string;
  /** The token it accepts (UPSTASH_REDIS_REST_TOKEN). */
  readonly token: string;
  /** Every request it answered, in order: path, status and the command names (never their arguments). */
  readonly requests: ReadonlyArray<{ readonly path: string; readonly status: number; readonly commands: readonly string[] }>;
  /** The Redis connection behind it (same database as `redisUrl`). */
  readonly redis: Redis;
  close(): Promise<void>;
}

export interface UpstashShimOptions {
  /** The real Redis to serve, e.g. TEST_REDIS_URL. */
  readonly redisUrl: string;
  /** Default: a random token. */
  readonly token?: string;
}

const MAX_BODY_BYTES = 1024 * 1024;
const Arg = z.union([z.string(), z.number(), z.boolean()]);
const Command = z.array(Arg).min(1, 'a command is a non-empty array: ["COMMAND", ...args]');
const Commands = z.array(Command).min(1, 'a pipeline holds at least one command');

type Reply = string | number | null | Reply[];

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startUpstashShim(options: UpstashShimOptions): Promise<UpstashShim> {
  const token = options.token ?? `shim-${crypto.randomUUID()}`;
  const redis = new Redis(options.redisUrl, { protocol: 2, maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  const requests: Array<{ path: string; status: number; commands: string[] }> = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { error: `shim failure: ${error instanceof Error ? error.message : String(error)}` });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://shim').pathname.replace(/\/+$/, '') || '/';
    const record = { path, status: 0, commands: [] as string[] };
    requests.push(record);
    const reply = (status: number, body: unknown) => {
      record.status = status;
      send(res, status, body);
    };
    if (req.headers.authorization !== `Bearer ${token}`) {
      req.resume();
      return reply(401, { error: 'Unauthorized' });
    }
    if (req.method !== 'POST') {
      req.resume();
      return reply(405, { error: 'only POST with the command in the body is supported here' });
    }
    const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
    const encode = (value: Reply): Reply => (base64 ? toBase64(value) : value);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (error) {
      return reply(error instanceof HttpError ? error.status : 400, { error: error instanceof HttpError ? error.message : 'ERR the body is not JSON' });
    }

    if (path === '/') {
      const command = Command.safeParse(body);
      if (!command.success) return reply(400, { error: `ERR ${command.error.issues[0]?.message ?? 'bad command'}` });
      record.commands.push(String(command.data[0]).toUpperCase());
      try {
        return reply(200, { result: encode(await run(command.data)) });
      } catch (error) {
        if (isReplyError(error)) return reply(400, { error: error.message });
        throw error;
      }
    }
    if (path === '/pipeline' || path === '/multi-exec') {
      const commands = Commands.safeParse(body);
      if (!commands.success) return reply(400, { error: `ERR ${commands.error.issues[0]?.message ?? 'bad pipeline'}` });
      record.commands.push(...commands.data.map((c) => String(c[0]).toUpperCase()));
      if (path === '/pipeline') {
        const results: Array<{ result?: Reply; error?: string }> = [];
        for (const command of commands.data) {
          try {
            results.push({ result: encode(await run(command)) });
          } catch (error) {
            if (!isReplyError(error)) throw error;
            results.push({ error: error.message });
          }
        }
        return reply(200, results);
      }
      const transaction = redis.multi();
      for (const [name, ...args] of commands.data) transaction.call(String(name), ...args.map(String));
      let outcome: Array<[Error | null, unknown]> | null;
      try {
        outcome = await transaction.exec();
      } catch (error) {
        // EXECABORT: a command was refused while queueing (unknown command, wrong arity).
        if (isReplyError(error)) return reply(400, { error: error.message });
        throw error;
      }
      if (!outcome) return reply(400, { error: 'EXECABORT the transaction was discarded' });
      return reply(
        200,
        outcome.map(([error, result]) => (error ? { error: error.message } : { result: encode(result as Reply) })),
      );
    }
    return reply(404, { error: `no such endpoint: ${path}` });
  }

  async function run([name, ...args]: z.output<typeof Command>): Promise<Reply> {
    return (await redis.call(String(name), ...args.map(String))) as Reply;
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    redis,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      redis.disconnect();
    },
  };
}

/** Redis refused the command (as opposed to the connection failing, which is the shim's own 500). */
function isReplyError(error: unknown): error is Error {
  return error instanceof ReplyError;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `ERR the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Upstash's base64 response encoding: strings (nested too) as base64 of their UTF-8, except `OK`. */
function toBase64(value: Reply): Reply {
  if (typeof value === 'string') return value === 'OK' ? value : Buffer.from(value, 'utf8').toString('base64');
  if (Array.isArray(value)) return value.map(toBase64);
  return value;
}
