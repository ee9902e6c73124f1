import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { assertLimit, assertScore, assertTtlMs, CacheError, type KeyValueCache } from '../../shared/cache/key-value-cache';
import { INCR_WITH_TTL, scoreBound, ZADD_WITH_TTL, ZADD_WITHIN_LIMIT } from '../../shared/cache/scripts';

export interface RedisCacheOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` (TLS): the media node's REDIS_URL. */
  url: string;
  /**
   * Prepended to every key. Empty by default, and it must stay empty in production: the registry keys are
   * exactly `voice:node:{id}` / `voice:nodes` because the edge reads them. Tests set one per test so runs
   * sharing a Redis database never see each other's keys (and nothing has to be flushed).
   */
  keyPrefix?: string;
  /** Initial connection (TCP + handshake). Default 5 s. */
  connectTimeoutMs?: number;
  /** A command without a reply after this fails with CACHE_UNAVAILABLE instead of hanging. Default 5 s. */
  commandTimeoutMs?: number;
  /** Connection errors after start-up (ioredis reconnects by itself); for the node's logger. */
  onError?: (error: Error) => void;
  /** Shown in `CLIENT LIST`. */
  connectionName?: string;
}

/**
 * `KeyValueCache` over ioredis. Values are written as strings (numbers as decimal strings), so the edge's
 * @upstash/redis client with `automaticDeserialization: false` reads exactly what a node wrote. Compound
 * operations run the Lua scripts of shared/cache/scripts.ts (EVALSHA, falling back to EVAL after a script
 * cache flush); `hset` with a TTL is a MULTI transaction.
 *
 * Connect with `connectRedisCache` (lazyConnect, then one explicit connect + PING so a wrong REDIS_URL
 * fails at start-up with a message that says so). After that, a lost connection is retried in the
 * background; commands issued meanwhile fail fast with a retryable `CACHE_UNAVAILABLE` error.
 */
export class RedisCache implements KeyValueCache {
  private readonly shas = new Map<string, string>();

  constructor(
    private readonly client: Redis,
    private readonly keyPrefix = '',
    private readonly target = 'Redis',
  ) {}

  async get(key: string): Promise<string | null> {
    return this.run('GET', () => this.client.get(this.k(key)));
  }

  async set(key: string, value: string, options: { ttlMs?: number; ifAbsent?: boolean } = {}): Promise<boolean> {
    const k = this.k(key);
    const { ttlMs, ifAbsent } = options;
    if (ttlMs !== undefined) assertTtlMs(ttlMs);
    const reply = await this.run('SET', () => {
      if (ttlMs !== undefined && ifAbsent) return this.client.set(k, value, 'PX', ttlMs, 'NX');
      if (ttlMs !== undefined) return this.client.set(k, value, 'PX', ttlMs);
      if (ifAbsent) return this.client.set(k, value, 'NX');
      return this.client.set(k, value);
    });
    return reply === 'OK';
  }

  async del(key: string): Promise<boolean> {
    return (await this.run('DEL', () => this.client.del(this.k(key)))) > 0;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    const by = options.by ?? 1;
    if (!Number.isSafeInteger(by)) throw new CacheError('BAD_ARGUMENT', `incr by must be an integer, got ${by}`, false);
    if (options.ttlMs !== undefined) assertTtlMs(options.ttlMs);
    const reply = await this.script('INCR', INCR_WITH_TTL, [this.k(key)], [String(by), String(options.ttlMs ?? 0)]);
    return toInteger(reply, 'INCR');
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    return (await this.run('PEXPIRE', () => this.client.pexpire(this.k(key), ttlMs))) === 1;
  }

  async hset(key: string, fields: Readonly<Record<string, string>>, options: { ttlMs?: number } = {}): Promise<void> {
    if (Object.keys(fields).length === 0) throw new CacheError('BAD_ARGUMENT', `hset ${key} needs at least one field`, false);
    const k = this.k(key);
    const { ttlMs } = options;
    if (ttlMs === undefined) {
      await this.run('HSET', () => this.client.hset(k, fields));
      return;
    }
    assertTtlMs(ttlMs);
    const results = await this.run('MULTI HSET PEXPIRE', () => this.client.multi().hset(k, fields).pexpire(k, ttlMs).exec());
    if (!results) throw new CacheError('CACHE_FAILED', `the HSET/PEXPIRE transaction on ${key} was discarded`, true);
    for (const [error] of results) if (error) throw this.wrap('MULTI HSET PEXPIRE', error);
  }

  async hgetall(key: string): Promise<Record<string, string> | null> {
    const hash = await this.run('HGETALL', () => this.client.hgetall(this.k(key)));
    return Object.keys(hash).length === 0 ? null : hash;
  }

  async zadd(key: string, member: string, score: number, options: { onlyIfExists?: boolean; keyTtlMs?: number } = {}): Promise<boolean> {
    assertScore(score);
    if (options.keyTtlMs !== undefined) assertTtlMs(options.keyTtlMs, 'keyTtlMs');
    if (!options.onlyIfExists && options.keyTtlMs === undefined) {
      await this.run('ZADD', () => this.client.zadd(this.k(key), String(score), member));
      return true;
    }
    const reply = await this.script('ZADD', ZADD_WITH_TTL, [this.k(key)], [member, String(score), options.onlyIfExists ? '1' : '0', String(options.keyTtlMs ?? 0)]);
    return toInteger(reply, 'ZADD') === 1;
  }

  async zaddWithinLimit(
    key: string,
    member: string,
    score: number,
    options: { limit: number; pruneMaxScore: number; keyTtlMs?: number },
  ): Promise<{ added: boolean; count: number }> {
    assertScore(score);
    assertScore(options.pruneMaxScore, 'pruneMaxScore', true);
    assertLimit(options.limit);
    if (options.keyTtlMs !== undefined) assertTtlMs(options.keyTtlMs, 'keyTtlMs');
    const reply = await this.script('ZADD within limit', ZADD_WITHIN_LIMIT, [this.k(key)], [
      member,
      String(score),
      String(options.limit),
      scoreBound(options.pruneMaxScore),
      String(options.keyTtlMs ?? 0),
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) throw new CacheError('CACHE_FAILED', `unexpected reply to ZADD within limit: ${JSON.stringify(reply)}`, false);
    return { added: toInteger(reply[0], 'ZADD within limit') === 1, count: toInteger(reply[1], 'ZADD within limit') };
  }

  async zrangeByScore(key: string, min: number, max: number): Promise<Array<{ member: string; score: number }>> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    const reply: unknown = await this.run('ZRANGEBYSCORE', () => this.client.zrangebyscore(this.k(key), scoreBound(min), scoreBound(max), 'WITHSCORES'));
    return parseScored(reply);
  }

  async zrem(key: string, member: string): Promise<boolean> {
    return (await this.run('ZREM', () => this.client.zrem(this.k(key), member))) > 0;
  }

  async zremRangeByScore(key: string, min: number, max: number): Promise<number> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    return this.run('ZREMRANGEBYSCORE', () => this.client.zremrangebyscore(this.k(key), scoreBound(min), scoreBound(max)));
  }

  async ping(): Promise<void> {
    const reply = await this.run('PING', () => this.client.ping());
    if (reply !== 'PONG') throw new CacheError('CACHE_FAILED', `${this.target} answered PING with ${JSON.stringify(reply)}`, true);
  }

  /** Closes the connection (QUIT, or a hard disconnect when the server is gone). */
  async close(): Promise<void> {
    try {
      if (this.client.status === 'ready') await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }

  private k(key: string): string {
    return this.keyPrefix + key;
  }

  private async script(what: string, source: string, keys: string[], args: string[]): Promise<unknown> {
    let sha = this.shas.get(source);
    if (!sha) {
      sha = createHash('sha1').update(source).digest('hex');
      this.shas.set(source, sha);
    }
    const evalsha = sha;
    try {
      return await this.client.evalsha(evalsha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw this.wrap(what, error);
    }
    return this.run(what, () => this.client.eval(source, keys.length, ...keys, ...args));
  }

  private async run<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw this.wrap(what, error);
    }
  }

  private wrap(what: string, error: unknown): CacheError {
    if (error instanceof CacheError) return error;
    const message = error instanceof Error ? error.message : String(error);
    if (message.includes('WRONGTYPE')) return new CacheError('WRONGTYPE', `${what}: ${message}`, false, { cause: error });
    if (isConnectionError(error)) {
      return new CacheError('CACHE_UNAVAILABLE', `${what} failed: ${this.target} is unreachable (${message}). Check REDIS_URL and that Redis is up.`, true, { cause: error });
    }
    return new CacheError('CACHE_FAILED', `${what} failed on ${this.target}: ${message}`, false, { cause: error });
  }
}

/**
 * Connects to REDIS_URL and proves it with a PING. Rejects with `CACHE_UNAVAILABLE` naming the (redacted)
 * URL and the cause, and leaves no reconnect loop running behind.
 */
export async function connectRedisCache(options: RedisCacheOptions): Promise<RedisCache> {
  const target = describeRedisUrl(options.url);
  const client = new Redis(options.url, {
    lazyConnect: true,
    protocol: 2, // plain RESP2 replies, as every Redis-compatible server (and Upstash's TCP endpoint) speaks
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    commandTimeout: options.commandTimeoutMs ?? 5_000,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...(options.connectionName ? { connectionName: options.connectionName } : {}),
  });
  let lastError: Error | undefined;
  client.on('error', (error: Error) => {
    lastError = error;
    options.onError?.(error);
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    // connect() rejects with a generic "Connection is closed."; the socket's own error (ECONNREFUSED,
    // ENOTFOUND, WRONGPASS, ...) arrives on the 'error' event and says more.
    const cause = lastError ?? (error instanceof Error ? error : new Error(String(error)));
    const reason = (cause.message || cause.name).replace(/\.$/, '');
    throw new CacheError('CACHE_UNAVAILABLE', `cannot connect to ${target}: ${reason}. Check REDIS_URL and that Redis is running and reachable.`, true, { cause });
  }
  return new RedisCache(client, options.keyPrefix ?? '', target);
}

/** `Redis at host:port db N`, never the password. Throws a clear error for a URL that is not redis(s)://. */
export function describeRedisUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CacheError('BAD_ARGUMENT', 'REDIS_URL is not a URL (expected redis://[user:password@]host:port[/db])', false);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new CacheError('BAD_ARGUMENT', `REDIS_URL must start with redis:// or rediss://, got ${parsed.protocol}//`, false);
  }
  const db = parsed.pathname.replace(/^\//, '') || '0';
  return `Redis at ${parsed.protocol}//${parsed.host} db ${db}`;
}

function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN)$/.test(code)) return true;
  return error.name === 'MaxRetriesPerRequestError' || /Connection is closed|Command timed out|Stream isn't writeable|connect ETIMEDOUT|ECONNREFUSED/i.test(error.message);
}

function toInteger(reply: unknown, what: string): number {
  const value = typeof reply === 'string' ? Number(reply) : reply;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new CacheError('CACHE_FAILED', `unexpected reply to ${what}: ${JSON.stringify(reply)}`, false);
  return value;
}

/** WITHSCORES replies: flat `[member, score, ...]` (RESP2) or `[[member, score], ...]` (RESP3). */
function parseScored(reply: unknown): Array<{ member: string; score: number }> {
  if (!Array.isArray(reply)) throw new CacheError('CACHE_FAILED', `unexpected ZRANGEBYSCORE reply: ${JSON.stringify(reply)}`, false);
  const out: Array<{ member: string; score: number }> = [];
  if (reply.every((item) => Array.isArray(item))) {
    for (const [member, score] of reply as unknown[][]) out.push({ member: String(member), score: Number(score) });
    return out;
  }
  for (let i = 0; i + 1 < reply.length; i += 2) out.push({ member: String(reply[i]), score: Number(reply[i + 1]) });
  return out;
}
