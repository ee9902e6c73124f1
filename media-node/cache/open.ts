import type { KeyValueCache } from '../../shared/cache/key-value-cache';
import { MemoryCache } from '../../shared/cache/memory';
import { connectRedisCache, describeRedisUrl, type RedisCacheOptions } from './redis';

export interface OpenedCache {
  cache: KeyValueCache;
  /** `memory` (embedded default: one node, nothing shared) or `Redis at host:port db N`. */
  description: string;
  close(): Promise<void>;
}

/** The media node's cache: Redis when REDIS_URL is set (fails at start-up if unreachable), else memory. */
export async function openCache(env: { REDIS_URL?: string | undefined }, options: Omit<RedisCacheOptions, 'url' | 'keyPrefix'> = {}): Promise<OpenedCache> {
  const url = env.REDIS_URL?.trim();
  if (!url) return { cache: new MemoryCache(), description: 'memory', close: async () => {} };
  const cache = await connectRedisCache({ ...options, url });
  return { cache, description: describeRedisUrl(url), close: () => cache.close() };
}
