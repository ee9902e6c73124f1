import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createUpstashClient, UpstashCache } from '../../edge/cache/upstash';
import { CacheError } from '../../shared/cache/key-value-cache';
import { NodeRegistry } from '../../shared/cache/node-registry';
import { connectRedisCache } from '../../media-node/cache/redis';
import { startUpstashShim, type UpstashShim } from '../fakes/upstash-shim';
import type * as CacheBackends from '../cache/backends';

/**
 * The edge's Upstash cache client must give the answers the node's ioredis client gives. Rather than a second
 * copy of the contract, the suites of test/cache/ run here again with `describeEachCache` swapped for the
 * Upstash backend (test/workerd/upstash-backend.ts): KeyValueCache, node registry, call counters, call
 * routing, idempotency keys, all over HTTP → REST shim → real Redis. Then the Upstash-only cases: the wire
 * (strings stay strings, EVAL, /multi-exec), errors (token, network, timeout) and cross-client reads.
 * The workerd round trip is in edge.test.ts (the Worker reads the registry through this client).
 */

vi.mock('../cache/backends', async (importOriginal) => {
  const actual = await importOriginal<typeof CacheBackends>();
  const { describeEachUpstashCache } = await import('./upstash-backend');
  return { ...actual, describeEachCache: describeEachUpstashCache };
});

await import('../cache/key-value-cache.test');
await import('../cache/node-registry.test');
await import('../cache/call-counters.test');
await import('../cache/call-routing.test');
await import('../cache/idempotency.test');

const TEST_REDIS_URL = process.env.TEST_REDIS_URL?.trim() || undefined;
if (!TEST_REDIS_URL && process.env.CI === 'true') throw new Error('TEST_REDIS_URL is not set: under CI=true the Upstash client tests must run');

describe.skipIf(!TEST_REDIS_URL)('the Upstash client on the wire (REST shim over real Redis)', () => {
  let shim: UpstashShim;
  const prefix = `test:upstash-wire:${crypto.randomUUID().slice(0, 8)}:`;
  const cache = (options: { token?: string; url?: string; requestTimeoutMs?: number } = {}) =>
    new UpstashCache(createUpstashClient({ url: options.url ?? shim.url, token: options.token ?? shim.token, requestTimeoutMs: options.requestTimeoutMs ?? 5_000, retries: 0 }), { keyPrefix: prefix });
  const commandsSince = (from: number) => shim.requests.slice(from).map((r) => `${r.path} ${r.commands.join(',')} ${r.status}`);

  beforeAll(async () => {
    shim = await startUpstashShim({ redisUrl: TEST_REDIS_URL! });
  });
  afterAll(async () => {
    const keys = await shim.redis.keys(`${prefix}*`);
    if (keys.length > 0) await shim.redis.del(...keys);
    await shim.close();
  });

  it('strings that look like numbers or JSON come back verbatim, non-ASCII too (automatic deserialization is off)', async () => {
    const c = cache();
    for (const value of ['007', '1.10', '{"a":1}', 'true', 'null', 'héllo ☎', '']) {
      await c.set('verbatim', value);
      expect(await c.get('verbatim')).toBe(value);
    }
    await c.hset('h', { version: '1.10', active: '007' });
    expect(await c.hgetall('h')).toEqual({ version: '1.10', active: '007' });
  });

  it('one HTTP request per method: plain commands on /, scripts as EVAL, hset with a TTL as one /multi-exec', async () => {
    const c = cache();
    const from = shim.requests.length;
    await c.get('k');
    await c.incr('n', { ttlMs: 10_000 });
    await c.zaddWithinLimit('z', 'm', 1, { limit: 2, pruneMaxScore: 0 });
    await c.hset('h2', { a: '1' }, { ttlMs: 10_000 });
    expect(commandsSince(from)).toEqual(['/ GET 200', '/ EVAL 200', '/ EVAL 200', '/multi-exec HSET,PEXPIRE 200']);
    const ttl = await shim.redis.pttl(`${prefix}h2`);
    expect(ttl).toBeGreaterThan(9_000);
    expect(ttl).toBeLessThanOrEqual(10_000);
  });

  it('reads what a node wrote through ioredis: the registry layout is shared byte for byte', async () => {
    const nodeCache = await connectRedisCache({ url: TEST_REDIS_URL!, keyPrefix: prefix });
    try {
      const written = await new NodeRegistry(nodeCache).register({ id: 'n-wire', url: 'https://n.voice.test', region: 'eu', capacity: 8, active: 3, version: '2.10' });
      const live = await new NodeRegistry(cache()).listLive();
      expect(live).toEqual([{ id: 'n-wire', url: 'https://n.voice.test', region: 'eu', capacity: 8, active: 3, version: '2.10', heartbeatAt: written.heartbeatAt }]);
    } finally {
      await nodeCache.close();
    }
  });

  it('a wrong token is refused (401 at the shim) as CACHE_FAILED naming the token variable, not retryable', async () => {
    const from = shim.requests.length;
    const error = await cache({ token: 'wrong-token' }).get('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheError);
    expect(error).toMatchObject({ code: 'CACHE_FAILED', retryable: false });
    expect((error as Error).message).toMatch(/refused the token.*UPSTASH_REDIS_REST_TOKEN/);
    expect(commandsSince(from)).toEqual(['/  401']);
  });

  it('an unreachable server is CACHE_UNAVAILABLE (retryable) and names the URL variable; error text never carries values', async () => {
    const error = await cache({ url: 'http://127.0.0.1:1' }).set('k', 'secret-value-123').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CACHE_UNAVAILABLE', retryable: true });
    expect((error as Error).message).toMatch(/UPSTASH_REDIS_REST_URL/);
    expect((error as Error).message).not.toContain('secret-value-123');
    // Redis refusing a command: the client appends ", command was: [...]" (keys, values); that part is cut off.
    const c = cache();
    await c.zadd('typed', 'secret-member-456', 1);
    const refused = await c.zadd('typed', 'm', 1).then(() => c.hset('typed', { f: 'secret-value-789' })).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'WRONGTYPE', retryable: false });
    expect((refused as Error).message).not.toMatch(/command was|secret-value-789/);
    expect((refused as Error).message).not.toContain(prefix);
  });

  it('a server that never answers fails within the request timeout as CACHE_UNAVAILABLE', async () => {
    const { createServer } = await import('node:http');
    const hang = createServer(() => undefined);
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    try {
      const port = (hang.address() as { port: number }).port;
      const startedAt = Date.now();
      const error = await cache({ url: `http://127.0.0.1:${port}`, requestTimeoutMs: 300 }).ping().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CACHE_UNAVAILABLE', retryable: true });
      expect((error as Error).message).toMatch(/timed out/);
      expect(Date.now() - startedAt).toBeLessThan(2_000);
    } finally {
      hang.closeAllConnections();
      await new Promise<void>((resolve) => hang.close(() => resolve()));
    }
  });

  it('the shim speaks the protocol: pipelines answer per command, unknown paths 404, no token 401', async () => {
    const post = (path: string, body: unknown, token: string | null = shim.token) =>
      fetch(`${shim.url}${path}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, body: JSON.stringify(body) });
    const pipeline = await post('/pipeline', [['SET', `${prefix}p`, 'v'], ['HGETALL', `${prefix}p`], ['GET', `${prefix}p`]]);
    expect(pipeline.status).toBe(200);
    const results = (await pipeline.json()) as Array<{ result?: unknown; error?: string }>;
    expect(results[0]).toEqual({ result: 'OK' });
    expect(results[1]!.error).toMatch(/^WRONGTYPE/);
    expect(results[2]).toEqual({ result: 'v' }); // no Upstash-Encoding header: plain strings
    expect((await post('/', ['GET', `${prefix}p`], null)).status).toBe(401);
    expect((await post('/nope', ['PING'])).status).toBe(404);
    expect((await post('/', [])).status).toBe(400);
  });
});
