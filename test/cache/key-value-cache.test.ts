import { expect, it } from 'vitest';
import { CacheError } from '../../shared/cache/key-value-cache';
import { describeEachCache } from './backends';

// The primitive contract: memory and Redis must agree on every answer, TTLs included.
describeEachCache('KeyValueCache', (backend) => {
  it('get/set/del round-trip strings exactly (no number coercion)', async () => {
    const { cache } = backend();
    expect(await cache.get('k')).toBeNull();
    expect(await cache.set('k', '007')).toBe(true);
    expect(await cache.get('k')).toBe('007');
    expect(await cache.set('k', '{"a":1}')).toBe(true);
    expect(await cache.get('k')).toBe('{"a":1}');
    expect(await cache.del('k')).toBe(true);
    expect(await cache.del('k')).toBe(false);
    expect(await cache.get('k')).toBeNull();
  });

  it('set with ttlMs expires the key; a plain set clears the TTL', async () => {
    const { cache, unitMs, advance } = backend();
    await cache.set('short', 'v', { ttlMs: 5 * unitMs });
    await cache.set('kept', 'v', { ttlMs: 5 * unitMs });
    await cache.set('kept', 'v2'); // SET without PX drops the TTL, as in Redis
    await advance(2 * unitMs);
    expect(await cache.get('short')).toBe('v');
    await advance(5 * unitMs);
    expect(await cache.get('short')).toBeNull();
    expect(await cache.get('kept')).toBe('v2');
  });

  it('set ifAbsent: only the first writer wins, and the key can be taken again once it expired', async () => {
    const { cache, unitMs, advance } = backend();
    expect(await cache.set('nx', 'first', { ifAbsent: true, ttlMs: 3 * unitMs })).toBe(true);
    expect(await cache.set('nx', 'second', { ifAbsent: true, ttlMs: 3 * unitMs })).toBe(false);
    expect(await cache.get('nx')).toBe('first');
    await advance(5 * unitMs);
    expect(await cache.set('nx', 'third', { ifAbsent: true })).toBe(true);
    expect(await cache.get('nx')).toBe('third');
  });

  it('incr counts from zero, and its TTL is a fixed window set by the first increment', async () => {
    const { cache, unitMs, advance } = backend();
    expect(await cache.incr('n', { ttlMs: 6 * unitMs })).toBe(1);
    await advance(2 * unitMs);
    expect(await cache.incr('n', { ttlMs: 6 * unitMs })).toBe(2); // does not push the expiry out
    expect(await cache.incr('n', { by: 5 })).toBe(7);
    expect(await cache.get('n')).toBe('7');
    await advance(5 * unitMs);
    expect(await cache.get('n')).toBeNull();
    expect(await cache.incr('n', { by: -2 })).toBe(-2);
  });

  it('expire sets a TTL on an existing key and reports a missing one', async () => {
    const { cache, unitMs, advance } = backend();
    expect(await cache.expire('missing', 1000)).toBe(false);
    await cache.set('k', 'v');
    expect(await cache.expire('k', 2 * unitMs)).toBe(true);
    await advance(4 * unitMs);
    expect(await cache.get('k')).toBeNull();
  });

  it('hset merges fields, hgetall reads them back as strings, a hash TTL expires it whole', async () => {
    const { cache, unitMs, advance } = backend();
    expect(await cache.hgetall('h')).toBeNull();
    await cache.hset('h', { a: '1', b: 'x' }, { ttlMs: 6 * unitMs });
    await cache.hset('h', { b: 'y', c: '3' });
    expect(await cache.hgetall('h')).toEqual({ a: '1', b: 'y', c: '3' });
    await advance(2 * unitMs);
    await cache.hset('h', { a: '2' }, { ttlMs: 6 * unitMs }); // renewed
    await advance(5 * unitMs); // past the first TTL, within the renewed one
    expect(await cache.hgetall('h')).toEqual({ a: '2', b: 'y', c: '3' });
    await advance(3 * unitMs);
    expect(await cache.hgetall('h')).toBeNull();
  });

  it('sorted sets: zadd re-scores, ranges are inclusive and ordered, zrem and zremRangeByScore remove', async () => {
    const { cache } = backend();
    expect(await cache.zadd('z', 'b', 20)).toBe(true);
    await cache.zadd('z', 'a', 10);
    await cache.zadd('z', 'c', 30);
    await cache.zadd('z', 'a', 25);
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([
      { member: 'b', score: 20 },
      { member: 'a', score: 25 },
      { member: 'c', score: 30 },
    ]);
    expect(await cache.zrangeByScore('z', 20, 25)).toEqual([
      { member: 'b', score: 20 },
      { member: 'a', score: 25 },
    ]);
    expect(await cache.zrangeByScore('z', 1_700_000_000_000, Infinity)).toEqual([]);
    expect(await cache.zrem('z', 'b')).toBe(true);
    expect(await cache.zrem('z', 'b')).toBe(false);
    expect(await cache.zremRangeByScore('z', -Infinity, 25)).toBe(1);
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([{ member: 'c', score: 30 }]);
    // Epoch-millisecond scores survive exactly.
    await cache.zadd('z', 'now', 1_735_689_600_123);
    expect(await cache.zrangeByScore('z', 1_735_689_600_123, 1_735_689_600_123)).toEqual([{ member: 'now', score: 1_735_689_600_123 }]);
  });

  it('zadd onlyIfExists updates a member but never adds one; keyTtlMs expires the set', async () => {
    const { cache, unitMs, advance } = backend();
    expect(await cache.zadd('z', 'm', 1, { onlyIfExists: true })).toBe(false);
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([]);
    await cache.zadd('z', 'm', 1, { keyTtlMs: 3 * unitMs });
    expect(await cache.zadd('z', 'm', 2, { onlyIfExists: true, keyTtlMs: 3 * unitMs })).toBe(true);
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([{ member: 'm', score: 2 }]);
    await advance(5 * unitMs);
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([]);
  });

  it('zaddWithinLimit prunes, refuses past the limit, and re-scores a member already in without counting it twice', async () => {
    const { cache } = backend();
    const opts = { limit: 2, pruneMaxScore: 100 };
    await cache.zadd('z', 'stale', 50); // scored at or below pruneMaxScore: dropped first
    expect(await cache.zaddWithinLimit('z', 'a', 200, opts)).toEqual({ added: true, count: 1 });
    expect(await cache.zaddWithinLimit('z', 'b', 200, opts)).toEqual({ added: true, count: 2 });
    expect(await cache.zaddWithinLimit('z', 'c', 200, opts)).toEqual({ added: false, count: 2 });
    expect(await cache.zaddWithinLimit('z', 'a', 300, opts)).toEqual({ added: true, count: 2 });
    expect(await cache.zrangeByScore('z', -Infinity, Infinity)).toEqual([
      { member: 'b', score: 200 },
      { member: 'a', score: 300 },
    ]);
    // Once b's score is at or below the prune bound, its slot is free.
    expect(await cache.zaddWithinLimit('z', 'c', 400, { limit: 2, pruneMaxScore: 200 })).toEqual({ added: true, count: 2 });
    expect(await cache.zaddWithinLimit('z', 'd', 400, { limit: 0, pruneMaxScore: 0 })).toEqual({ added: false, count: 2 });
  });

  it('reading a key as the wrong type throws WRONGTYPE', async () => {
    const { cache } = backend();
    await cache.set('s', 'v');
    await cache.zadd('z', 'm', 1);
    await expect(cache.hgetall('s')).rejects.toMatchObject({ code: 'WRONGTYPE', retryable: false });
    await expect(cache.zadd('s', 'm', 1)).rejects.toBeInstanceOf(CacheError);
    await expect(cache.get('z')).rejects.toMatchObject({ code: 'WRONGTYPE' });
  });

  it('rejects bad TTLs and scores before touching the server', async () => {
    const { cache } = backend();
    await expect(cache.set('k', 'v', { ttlMs: 0 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(cache.set('k', 'v', { ttlMs: 1.5 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(cache.zadd('z', 'm', Number.NaN)).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(cache.zaddWithinLimit('z', 'm', 1, { limit: -1, pruneMaxScore: 0 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(await cache.get('k')).toBeNull();
  });

  it('ping answers', async () => {
    await expect(backend().cache.ping()).resolves.toBeUndefined();
  });
});
