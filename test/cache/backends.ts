import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { connectRedisCache, type RedisCache } from '../../media-node/cache/redis';
import type { KeyValueCache } from '../../shared/cache/key-value-cache';
import { MemoryCache } from '../../shared/cache/memory';
import { createFakeClock } from '../fakes/clock';

/**
 * One cache suite, two backends: memory (virtual time) and real Redis (TEST_REDIS_URL, real time).
 *
 * Isolation on Redis: every test gets its own key prefix (`test:{run}:{n}:`) and deletes its keys
 * afterwards, so the suite can share any Redis database with other runs and flushes nothing. Production
 * keys carry no prefix (the registry's are exactly `voice:node:{id}` and `voice:nodes`); redis-client.test.ts
 * checks that layout on unprefixed keys with unique node ids.
 *
 * Time: tests count in `unitMs`. Memory: 1 unit = 1 s of virtual time, so TTLs of 15 units are the real
 * defaults. Redis: 1 unit = 60 ms of real time (sleeping), so the same scenarios take about a second.
 *
 * TEST_REDIS_URL missing or unreachable: with CI=true the Redis variant fails; locally it is skipped with
 * the reason printed.
 */
export interface CacheBackend {
  readonly name: 'memory' | 'redis';
  readonly unitMs: number;
  /** Wall clock for the domain modules (virtual on memory, Date.now on Redis). */
  readonly clock: { now(): number };
  /** Fresh and empty for each test. */
  readonly cache: KeyValueCache;
  /** More clients over the same keys: separate connections on Redis, so commands really interleave. */
  connections(count: number): Promise<KeyValueCache[]>;
  advance(ms: number): Promise<void>;
}

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL?.trim() || undefined;
const CI = process.env.CI === 'true';
const RUN_ID = randomUUID().slice(0, 8);
let testSeq = 0;

/** Why the Redis variant cannot run (undefined when it can). Probed once per test file. */
export const redisUnavailable: string | undefined = await probeRedis();
let warned = false;

async function probeRedis(): Promise<string | undefined> {
  if (!TEST_REDIS_URL) return 'TEST_REDIS_URL is not set (e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/15)';
  try {
    const cache = await connectRedisCache({ url: TEST_REDIS_URL, connectTimeoutMs: 3_000 });
    await cache.close();
    return undefined;
  } catch (error) {
    return `TEST_REDIS_URL is unreachable: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * `describe` for the Redis-only parts: runs when Redis is there, fails under CI=true when it is not,
 * and otherwise is not registered at all (the reason is printed), like the store suites without PostgreSQL.
 */
export function describeRedis(title: string, body: () => void): void {
  if (!redisUnavailable) {
    describe(title, body);
  } else if (CI) {
    describe(title, () => {
      it('needs real Redis (CI=true)', () => {
        throw new Error(`CI=true but ${redisUnavailable}; .ci/run must start Redis and set TEST_REDIS_URL`);
      });
    });
  } else {
    if (!warned) console.warn(`not running the Redis variant: ${redisUnavailable}`);
    warned = true;
  }
}

/** Registers `body` once per backend: `${title} [memory]` and `${title} [redis]`. */
export function describeEachCache(title: string, body: (backend: () => CacheBackend) => void): void {
  describe(`${title} [memory]`, () => {
    let backend: CacheBackend | undefined;
    beforeEach(() => {
      const clock = createFakeClock(1_700_000_000_000);
      const cache = new MemoryCache({ clock });
      backend = {
        name: 'memory',
        unitMs: 1_000,
        clock,
        cache,
        connections: async (count) => Array.from({ length: count }, () => cache),
        advance: (ms) => clock.advance(ms),
      };
    });
    body(() => backend as CacheBackend);
  });

  describeRedis(`${title} [redis]`, () => {
    let backend: CacheBackend | undefined;
    let prefix = '';
    let clients: RedisCache[] = [];
    const open = async () => {
      const client = await connectRedisCache({ url: TEST_REDIS_URL as string, keyPrefix: prefix });
      clients.push(client);
      return client;
    };
    beforeEach(async () => {
      prefix = `test:${RUN_ID}:${++testSeq}:`;
      clients = [];
      const cache = await open();
      backend = {
        name: 'redis',
        unitMs: 60,
        clock: { now: () => Date.now() },
        cache,
        connections: (count) => Promise.all(Array.from({ length: count }, open)),
        advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      };
    });
    afterEach(async () => {
      await deleteKeys(`${prefix}*`);
      await Promise.all(clients.map((client) => client.close()));
    });
    body(() => backend as CacheBackend);
  });
}

/** A plain ioredis connection to TEST_REDIS_URL, for assertions on the raw keyspace. */
export function rawRedis(): Redis {
  return new Redis(TEST_REDIS_URL as string, { protocol: 2, maxRetriesPerRequest: 1 });
}

async function deleteKeys(pattern: string): Promise<void> {
  const redis = rawRedis();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
