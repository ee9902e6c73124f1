import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, it } from 'vitest';
import { createUpstashClient, UpstashCache } from '../../edge/cache/upstash';
import type { KeyValueCache } from '../../shared/cache/key-value-cache';
import type { CacheBackend } from '../cache/backends';
import { startUpstashShim, type UpstashShim } from '../fakes/upstash-shim';

/**
 * A third backend for the cache contract suites of test/cache/: the edge's Upstash client (edge/cache/upstash.ts)
 * over HTTP to the Upstash-REST shim (test/fakes/upstash-shim.ts) over the real Redis of TEST_REDIS_URL. It
 * registers `describeEachCache`'s suites once, as `[upstash]`, with the Redis variant's timing (1 unit = 60 ms
 * of real time) and isolation (a key prefix per test, deleted afterwards).
 *
 * It does not import test/cache/backends.ts at run time: upstash-cache.test.ts mocks that module with this one.
 */

const TEST_REDIS_URL = process.env.TEST_REDIS_URL?.trim() || undefined;
const CI = process.env.CI === 'true';
const RUN_ID = randomUUID().slice(0, 8);
let testSeq = 0;
let warned = false;

export function describeEachUpstashCache(title: string, body: (backend: () => CacheBackend) => void): void {
  const name = `${title} [upstash → REST shim → redis]`;
  if (!TEST_REDIS_URL) {
    if (CI) {
      describe(name, () => it('needs real Redis (CI=true)', () => {
        throw new Error('CI=true but TEST_REDIS_URL is not set; .ci/run must start Redis and set it');
      }));
    } else if (!warned) {
      warned = true;
      console.warn('TEST_REDIS_URL not set: the Upstash variant of the cache suites is not run');
    }
    return;
  }
  describe(name, () => {
    let shim: UpstashShim | undefined;
    let backend: CacheBackend | undefined;
    let prefix = '';
    beforeAll(async () => {
      shim = await startUpstashShim({ redisUrl: TEST_REDIS_URL });
    });
    afterAll(async () => {
      await shim?.close();
    });
    const open = (): KeyValueCache => new UpstashCache(createUpstashClient({ url: shim!.url, token: shim!.token }), { keyPrefix: prefix });
    beforeEach(() => {
      prefix = `test:upstash:${RUN_ID}:${++testSeq}:`;
      backend = {
        // The suites treat a server-backed cache alike; nothing branches on this name.
        name: 'redis',
        unitMs: 60,
        clock: { now: () => Date.now() },
        cache: open(),
        // Separate client objects: their requests really interleave at the server.
        connections: async (count) => Array.from({ length: count }, open),
        advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      };
    });
    afterEach(async () => {
      const redis = shim!.redis;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    });
    body(() => backend as CacheBackend);
  });
}
