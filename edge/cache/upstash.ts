import { errors as upstashErrors, Redis } from '@upstash/redis/cloudflare';
import { assertLimit, assertScore, assertTtlMs, CacheError, type KeyValueCache } from '../../shared/cache/key-value-cache';
import { INCR_WITH_TTL, scoreBound, ZADD_WITH_TTL, ZADD_WITHIN_LIMIT } from '../../shared/cache/scripts';

/**
 * `KeyValueCache` over Upstash Redis's REST API (`@upstash/redis`), the edge's counterpart of the media
 * node's ioredis client (media-node/cache/redis.ts), with the same answers:
 * - values are strings both ways (`automaticDeserialization: false`), so `'007'` and `'1.10'` written by a
 *   node read back unchanged;
 * - the compound operations run the same Lua scripts of shared/cache/scripts.ts, by `EVAL` (the script text
 *   travels with each call: no SHA bookkeeping across stateless Worker requests);
 * - `hset` with a TTL is one `/multi-exec` transaction (HSET + PEXPIRE), like the node's MULTI;
 * - every method is one HTTP request: automatic pipelining is off, so a failure belongs to one call.
 *
 * Errors: unreachable, timed out, or an answer that is not Upstash's JSON → `CACHE_UNAVAILABLE` (retryable);
 * WRONGTYPE → `WRONGTYPE`; anything else Redis refuses (a wrong token included) → `CACHE_FAILED`. Messages
 * never carry the command's arguments (the client appends them to its errors; they are cut off here).
 */

/** The part of the @upstash/redis client used here (tests may hand in any object that speaks it). */
export type UpstashClient = Pick<Redis, 'exec' | 'multi'>;

export interface UpstashCacheOptions {
  /**
   * Prepended to every key; empty in production, where the registry keys must be exactly `voice:node:{id}`
   * and `voice:nodes` (the nodes write them). Tests use one per test, as with the ioredis client.
   */
  readonly keyPrefix?: string;
  /** Names the server in error messages; default "Upstash Redis". */
  readonly target?: string;
}

export interface UpstashConnection {
  /** UPSTASH_REDIS_REST_URL, e.g. `https://eu1-xyz.upstash.io`. */
  readonly url: string;
  /** UPSTASH_REDIS_REST_TOKEN. */
  readonly token: string;
  /** Per request, retries included; default 5 s (a hanging cache must not hang a webhook). */
  readonly requestTimeoutMs?: number;
  /** Network-error retries; default 1 (the client's own default of 5 with exponential backoff takes ~4 s). */
  readonly retries?: number;
}

/** The REST client as the edge uses it: raw strings, no telemetry headers, no auto-pipelining, bounded time. */
export function createUpstashClient(connection: UpstashConnection): Redis {
  const timeoutMs = connection.requestTimeoutMs ?? 5_000;
  return new Redis({
    url: connection.url,
    token: connection.token,
    automaticDeserialization: false,
    enableTelemetry: false,
    enableAutoPipelining: false,
    retry: { retries: connection.retries ?? 1, backoff: () => 50 },
    // A function: a fresh deadline per request (one shared signal would expire once for all of them).
    signal: () => AbortSignal.timeout(timeoutMs),
  });
}

type Reply = string | number | null | Reply[];

export class UpstashCache implements KeyValueCache {
  private readonly keyPrefix: string;
  private readonly target: string;

  constructor(
    private readonly client: UpstashClient,
    options: UpstashCacheOptions = {},
  ) {
    this.keyPrefix = options.keyPrefix ?? '';
    this.target = options.target ?? 'Upstash Redis';
  }

  async get(key: string): Promise<string | null> {
    return asStringOrNull(await this.command('GET', ['GET', this.k(key)]), 'GET');
  }

  async set(key: string, value: string, options: { ttlMs?: number; ifAbsent?: boolean } = {}): Promise<boolean> {
    const { ttlMs, ifAbsent } = options;
    if (ttlMs !== undefined) assertTtlMs(ttlMs);
    const args: [string, ...string[]] = ['SET', this.k(key), value];
    if (ttlMs !== undefined) args.push('PX', String(ttlMs));
    if (ifAbsent) args.push('NX');
    return (await this.command('SET', args)) === 'OK';
  }

  async del(key: string): Promise<boolean> {
    return toInteger(await this.command('DEL', ['DEL', this.k(key)]), 'DEL') > 0;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    const by = options.by ?? 1;
    if (!Number.isSafeInteger(by)) throw new CacheError('BAD_ARGUMENT', `incr by must be an integer, got ${by}`, false);
    if (options.ttlMs !== undefined) assertTtlMs(options.ttlMs);
    return toInteger(await this.script('INCR', INCR_WITH_TTL, key, [String(by), String(options.ttlMs ?? 0)]), 'INCR');
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    return toInteger(await this.command('PEXPIRE', ['PEXPIRE', this.k(key), String(ttlMs)]), 'PEXPIRE') === 1;
  }

  async hset(key: string, fields: Readonly<Record<string, string>>, options: { ttlMs?: number } = {}): Promise<void> {
    const entries = Object.entries(fields);
    if (entries.length === 0) throw new CacheError('BAD_ARGUMENT', `hset ${key} needs at least one field`, false);
    const { ttlMs } = options;
    if (ttlMs === undefined) {
      await this.command('HSET', ['HSET', this.k(key), ...entries.flat()]);
      return;
    }
    assertTtlMs(ttlMs);
    try {
      // One POST to /multi-exec: both commands or neither (a failed one makes exec() throw).
      await this.client.multi().hset(this.k(key), fields).pexpire(this.k(key), ttlMs).exec();
    } catch (error) {
      throw this.wrap('MULTI HSET PEXPIRE', error);
    }
  }

  async hgetall(key: string): Promise<Record<string, string> | null> {
    const reply = await this.command('HGETALL', ['HGETALL', this.k(key)]);
    const flat = asStringArray(reply, 'HGETALL');
    if (flat.length === 0) return null;
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    return hash;
  }

  async zadd(key: string, member: string, score: number, options: { onlyIfExists?: boolean; keyTtlMs?: number } = {}): Promise<boolean> {
    assertScore(score);
    if (options.keyTtlMs !== undefined) assertTtlMs(options.keyTtlMs, 'keyTtlMs');
    if (!options.onlyIfExists && options.keyTtlMs === undefined) {
      await this.command('ZADD', ['ZADD', this.k(key), String(score), member]);
      return true;
    }
    const reply = await this.script('ZADD', ZADD_WITH_TTL, key, [member, String(score), options.onlyIfExists ? '1' : '0', String(options.keyTtlMs ?? 0)]);
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
    const reply = await this.script('ZADD within limit', ZADD_WITHIN_LIMIT, key, [
      member,
      String(score),
      String(options.limit),
      scoreBound(options.pruneMaxScore),
      String(options.keyTtlMs ?? 0),
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) throw new CacheError('CACHE_FAILED', `unexpected reply to ZADD within limit: ${describe(reply)}`, false);
    return { added: toInteger(reply[0], 'ZADD within limit') === 1, count: toInteger(reply[1], 'ZADD within limit') };
  }

  async zrangeByScore(key: string, min: number, max: number): Promise<Array<{ member: string; score: number }>> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    const flat = asStringArray(await this.command('ZRANGEBYSCORE', ['ZRANGEBYSCORE', this.k(key), scoreBound(min), scoreBound(max), 'WITHSCORES']), 'ZRANGEBYSCORE');
    const out: Array<{ member: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) });
    return out;
  }

  async zrem(key: string, member: string): Promise<boolean> {
    return toInteger(await this.command('ZREM', ['ZREM', this.k(key), member]), 'ZREM') > 0;
  }

  async zremRangeByScore(key: string, min: number, max: number): Promise<number> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    return toInteger(await this.command('ZREMRANGEBYSCORE', ['ZREMRANGEBYSCORE', this.k(key), scoreBound(min), scoreBound(max)]), 'ZREMRANGEBYSCORE');
  }

  async ping(): Promise<void> {
    const reply = await this.command('PING', ['PING']);
    if (reply !== 'PONG') throw new CacheError('CACHE_FAILED', `${this.target} answered PING with ${describe(reply)}`, true);
  }

  private k(key: string): string {
    return this.keyPrefix + key;
  }

  private script(what: string, source: string, key: string, args: string[]): Promise<Reply> {
    return this.command(what, ['EVAL', source, '1', this.k(key), ...args]);
  }

  private async command(what: string, args: [string, ...string[]]): Promise<Reply> {
    try {
      return await this.client.exec<Reply>(args);
    } catch (error) {
      throw this.wrap(what, error);
    }
  }

  private wrap(what: string, error: unknown): CacheError {
    if (error instanceof CacheError) return error;
    // The REST client appends ", command was: [...]" (keys and values) to Redis's error text: never repeat it.
    const raw = error instanceof Error ? error.message || error.name : String(error);
    const message = raw.replace(/,? command was: [\s\S]*$/, '').slice(0, 300);
    if (error instanceof upstashErrors.UpstashJSONParseError) {
      return new CacheError('CACHE_UNAVAILABLE', `${what} failed: ${this.target} answered something that is not its JSON (a proxy or an outage?)`, true, { cause: error });
    }
    if (error instanceof upstashErrors.UpstashError) {
      if (/WRONGTYPE/.test(message)) return new CacheError('WRONGTYPE', `${what}: ${message}`, false, { cause: error });
      if (/unauthori[sz]ed|WRONGPASS|NOAUTH|invalid.*token/i.test(message)) {
        return new CacheError('CACHE_FAILED', `${what} failed: ${this.target} refused the token (${message}). Check UPSTASH_REDIS_REST_TOKEN.`, false, { cause: error });
      }
      return new CacheError('CACHE_FAILED', `${what} failed on ${this.target}: ${message}`, false, { cause: error });
    }
    // fetch rejected (DNS, refused, reset) or the per-request deadline passed.
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    return new CacheError(
      'CACHE_UNAVAILABLE',
      `${what} failed: ${this.target} is unreachable (${timedOut ? 'timed out' : message}). Check UPSTASH_REDIS_REST_URL and that the database is up.`,
      true,
      { cause: error },
    );
  }
}

function describe(reply: unknown): string {
  return JSON.stringify(reply)?.slice(0, 200) ?? String(reply);
}

function asStringOrNull(reply: Reply, what: string): string | null {
  if (reply === null || typeof reply === 'string') return reply;
  // An integer-looking string value still arrives as a string; a number here means a protocol mix-up.
  throw new CacheError('CACHE_FAILED', `unexpected reply to ${what}: ${describe(reply)}`, false);
}

function asStringArray(reply: Reply, what: string): string[] {
  if (!Array.isArray(reply) || !reply.every((item) => typeof item === 'string')) {
    throw new CacheError('CACHE_FAILED', `unexpected reply to ${what}: ${describe(reply)}`, false);
  }
  return reply as string[];
}

function toInteger(reply: unknown, what: string): number {
  const value = typeof reply === 'string' ? Number(reply) : reply;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new CacheError('CACHE_FAILED', `unexpected reply to ${what}: ${describe(reply)}`, false);
  return value;
}
