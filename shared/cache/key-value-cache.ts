/**
 * The cache primitive every piece of shared state is written against: a small subset of Redis that three
 * clients implement the same way: `ioredis` on media nodes (media-node/cache/redis.ts), `@upstash/redis`
 * on the edge (REST, `automaticDeserialization: false`), and memory (shared/cache/memory.ts, the embedded
 * default and the test double). The domain modules beside this file (node registry, call routing, call
 * counters, idempotency keys) use nothing else.
 *
 * Rules that keep the three interchangeable:
 * - Every value is a string; numbers are written as decimal strings (so Upstash without automatic
 *   deserialization reads back exactly what ioredis wrote). Scores are integer milliseconds.
 * - TTLs are milliseconds (`PX`, `PEXPIRE`); a `ttlMs` must be a positive integer.
 * - A method is one round trip and atomic on the server. Where atomicity needs more than one command the
 *   method says so, and the Redis clients run the Lua script from `scripts.ts` (EVAL works on Upstash too).
 * - Missing keys read as `null` / empty; reading a key of another type throws `CacheError` (`WRONGTYPE`).
 */
export interface KeyValueCache {
  get(key: string): Promise<string | null>;
  /**
   * `SET key value [PX ttlMs] [NX]`. Returns true when written; false only with `ifAbsent` when the key
   * already existed (set-if-absent is how "first one wins" is decided).
   */
  set(key: string, value: string, options?: { ttlMs?: number; ifAbsent?: boolean }): Promise<boolean>;
  /** Deletes the key whatever its type. True when it existed. */
  del(key: string): Promise<boolean>;
  /**
   * `INCRBY key by` (default 1) and, when `ttlMs` is given and the key has no TTL yet (its first increment),
   * `PEXPIRE key ttlMs`, atomically: a fixed window that later increments do not extend.
   */
  incr(key: string, options?: { by?: number; ttlMs?: number }): Promise<number>;
  /** `PEXPIRE key ttlMs`. False when the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>;

  /** `HSET key field value ...` and, with `ttlMs`, `PEXPIRE key ttlMs` in the same transaction. */
  hset(key: string, fields: Readonly<Record<string, string>>, options?: { ttlMs?: number }): Promise<void>;
  /** `HGETALL key`; null when the key does not exist (Redis answers an empty hash for that). */
  hgetall(key: string): Promise<Record<string, string> | null>;

  /**
   * `ZADD key score member`; with `onlyIfExists` only an existing member is updated (like `XX`), and with
   * `keyTtlMs` the whole set's TTL is set too, atomically. Returns true when the member was written.
   */
  zadd(key: string, member: string, score: number, options?: { onlyIfExists?: boolean; keyTtlMs?: number }): Promise<boolean>;
  /**
   * Atomically: drop members scored at or below `pruneMaxScore`, then add `member` with `score` if it is
   * already present (its score is updated) or the set holds fewer than `limit` members; with `keyTtlMs`
   * the set's TTL is set when written. `count` is the number of members afterwards (or the number that
   * refused the add). The one compound operation, for admission control under concurrency.
   */
  zaddWithinLimit(
    key: string,
    member: string,
    score: number,
    options: { limit: number; pruneMaxScore: number; keyTtlMs?: number },
  ): Promise<{ added: boolean; count: number }>;
  /** `ZRANGEBYSCORE key min max WITHSCORES` (both bounds inclusive; ±Infinity for open ends), lowest first. */
  zrangeByScore(key: string, min: number, max: number): Promise<Array<{ member: string; score: number }>>;
  /** `ZREM key member`. True when it was there. */
  zrem(key: string, member: string): Promise<boolean>;
  /** `ZREMRANGEBYSCORE key min max` (inclusive). Returns how many were removed. */
  zremRangeByScore(key: string, min: number, max: number): Promise<number>;

  /** A round trip to the server (`PING`); rejects when it is unreachable. For readiness checks. */
  ping(): Promise<void>;
}

/**
 * What a cache client throws. `CACHE_UNAVAILABLE` (cannot reach the server, timed out) is retryable;
 * `WRONGTYPE` and bad arguments are programming errors and are not.
 */
export class CacheError extends Error {
  override readonly name = 'CacheError';
  constructor(
    readonly code: 'CACHE_UNAVAILABLE' | 'WRONGTYPE' | 'BAD_ARGUMENT' | 'CACHE_FAILED',
    message: string,
    readonly retryable: boolean = code === 'CACHE_UNAVAILABLE',
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

/** Validates a TTL argument the same way in every implementation. */
export function assertTtlMs(ttlMs: number, what = 'ttlMs'): void {
  if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
    throw new CacheError('BAD_ARGUMENT', `${what} must be a positive integer number of milliseconds, got ${ttlMs}`, false);
  }
}

/** Validates a score (integer milliseconds, or ±Infinity for range bounds). */
export function assertScore(score: number, what = 'score', allowInfinite = false): void {
  if (Number.isInteger(score) || (allowInfinite && (score === Infinity || score === -Infinity))) return;
  throw new CacheError('BAD_ARGUMENT', `${what} must be an integer (milliseconds)${allowInfinite ? ' or ±Infinity' : ''}, got ${score}`, false);
}

/** Validates a `zaddWithinLimit` limit: a non-negative safe integer. */
export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new CacheError('BAD_ARGUMENT', `limit must be a non-negative integer, got ${limit}`, false);
  }
}
