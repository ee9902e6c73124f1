import { randomUUID } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedisCache, describeRedisUrl, type RedisCache } from '../../media-node/cache/redis';
import { CallCounters } from '../../shared/cache/call-counters';
import { nodeKey, NODES_KEY } from '../../shared/cache/keys';
import { NodeRegistry } from '../../shared/cache/node-registry';
import { cacheCheck, checkReadiness } from '../../shared/health/readiness';
import { describeRedis, rawRedis, TEST_REDIS_URL } from './backends';

describe('connecting to Redis', () => {
  it('an unreachable REDIS_URL fails at start-up with a clear, retryable error that never shows the password', async () => {
    const startedAt = Date.now();
    const error = await connectRedisCache({ url: 'redis://app:s3cret@127.0.0.1:1/3', connectTimeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'CacheError', code: 'CACHE_UNAVAILABLE', retryable: true });
    const message = (error as Error).message;
    expect(message).toMatch(/^CACHE_UNAVAILABLE: cannot connect to Redis at redis:\/\/127\.0\.0\.1:1 db 3: .*ECONNREFUSED.*Check REDIS_URL/);
    expect(message).not.toContain('s3cret');
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });

  it('a REDIS_URL that is not redis:// is refused before connecting', async () => {
    await expect(connectRedisCache({ url: 'http://127.0.0.1:6379' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT', message: expect.stringMatching(/redis:\/\/ or rediss:\/\//) });
    await expect(connectRedisCache({ url: 'not a url' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(describeRedisUrl('rediss://u:p@cache.internal:6380')).toBe('Redis at rediss://cache.internal:6380 db 0');
  });
});

describeRedis('Redis: the registry key layout of ARCHITECTURE.md (no key prefix)', () => {
  let cache: RedisCache | undefined;
  const raw = () => rawRedis();
  afterEach(async () => {
    await cache?.close();
  });

  it('voice:node:{id} is a hash of plain strings with a 15 s TTL, voice:nodes scores it by heartbeat ms', async () => {
    cache = await connectRedisCache({ url: TEST_REDIS_URL as string });
    const id = `layout-${randomUUID()}`;
    const registry = new NodeRegistry(cache);
    const redis = raw();
    try {
      const written = await registry.register({ id, url: 'https://n.voice.test', region: 'eu-west', capacity: 25, active: 7, version: '1.10' });
      // What the edge's @upstash/redis (automaticDeserialization: false) gets: the raw strings, so '1.10' stays '1.10'.
      expect(await redis.hgetall(`voice:node:${id}`)).toEqual({
        url: 'https://n.voice.test',
        region: 'eu-west',
        capacity: '25',
        active: '7',
        version: '1.10',
        heartbeatAt: String(written.heartbeatAt),
      });
      expect(nodeKey(id)).toBe(`voice:node:${id}`);
      expect(NODES_KEY).toBe('voice:nodes');
      expect(await redis.type(`voice:node:${id}`)).toBe('hash');
      expect(await redis.type('voice:nodes')).toBe('zset');
      const ttl = await redis.pttl(`voice:node:${id}`);
      expect(ttl).toBeGreaterThan(14_000);
      expect(ttl).toBeLessThanOrEqual(15_000);
      expect(await redis.zscore('voice:nodes', id)).toBe(String(written.heartbeatAt));
      expect(Math.abs(written.heartbeatAt - Date.now())).toBeLessThan(5_000); // wall-clock epoch ms
      expect((await registry.listLive()).some((node) => node.id === id)).toBe(true);
    } finally {
      await registry.deregister(id);
      expect(await redis.exists(`voice:node:${id}`)).toBe(0);
      expect(await redis.zscore('voice:nodes', id)).toBeNull();
      redis.disconnect();
    }
  });
});

describeRedis('Redis: losing the connection after start-up', () => {
  let proxy: { server: Server; sockets: Set<Socket>; port: number } | undefined;
  let cache: RedisCache | undefined;
  afterEach(async () => {
    await cache?.close();
    if (proxy) await stopProxy(proxy);
  });

  it('commands fail fast with CACHE_UNAVAILABLE, readiness says not ready, and the client recovers when Redis is back', async () => {
    const target = new URL(TEST_REDIS_URL as string);
    proxy = await startProxy(Number(target.port || 6379), target.hostname, 0);
    const port = proxy.port;
    const prefix = `test:proxy:${randomUUID()}:`;
    cache = await connectRedisCache({ url: `redis://127.0.0.1:${port}${target.pathname}`, keyPrefix: prefix, commandTimeoutMs: 1_000 });
    const counters = new CallCounters(cache);
    expect((await counters.acquire('p1', 'call-1', 5)).acquired).toBe(true);

    await stopProxy(proxy); // Redis "goes away": every connection cut, nothing listening
    proxy = undefined;
    const startedAt = Date.now();
    await expect(cache.get('anything')).rejects.toMatchObject({ code: 'CACHE_UNAVAILABLE', retryable: true });
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    const report = await checkReadiness({ cache: cacheCheck(cache) }, 1_500);
    expect(report.ready).toBe(false);
    expect(report.checks.cache?.ok).toBe(false);
    expect(report.checks.cache?.error).toMatch(/CACHE_UNAVAILABLE|timed out/);

    proxy = await startProxy(Number(target.port || 6379), target.hostname, port); // back on the same address
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      recovered = await cache.ping().then(() => true, () => false);
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(recovered).toBe(true);
    expect(await counters.activeCalls('p1')).toEqual(['call-1']); // the state was in Redis all along
    await counters.release('p1', 'call-1');
  });
});

/** A TCP pass-through to Redis that the test can cut. */
async function startProxy(targetPort: number, targetHost: string, listenPort: number): Promise<{ server: Server; sockets: Set<Socket>; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    upstream.connect(targetPort, targetHost);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(listenPort, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no TCP address');
  return { server, sockets, port: address.port };
}

async function stopProxy(proxy: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const socket of proxy.sockets) socket.destroy();
  await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
}
