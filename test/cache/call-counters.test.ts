import { expect, it } from 'vitest';
import { CallCounters } from '../../shared/cache/call-counters';
import { describeEachCache } from './backends';

describeEachCache('per-project concurrent-call counters', (backend) => {
  // Lease 10 units (on memory 10 s of virtual time).
  const counters = (cache = backend().cache) => new CallCounters(cache, { leaseTtlMs: 10 * backend().unitMs, clock: backend().clock });

  it('refuses calls over the limit and admits again after a release', async () => {
    const c = counters();
    expect(await c.acquire('p1', 'call-1', 2)).toEqual({ acquired: true, active: 1, limit: 2 });
    expect(await c.acquire('p1', 'call-2', 2)).toEqual({ acquired: true, active: 2, limit: 2 });
    expect(await c.acquire('p1', 'call-3', 2)).toEqual({ acquired: false, active: 2, limit: 2 });
    expect(await c.release('p1', 'call-1')).toBe(true);
    expect(await c.release('p1', 'call-1')).toBe(false);
    expect(await c.acquire('p1', 'call-3', 2)).toEqual({ acquired: true, active: 2, limit: 2 });
    expect((await c.activeCalls('p1')).sort()).toEqual(['call-2', 'call-3']);
  });

  it('projects count separately; acquiring the same call twice counts it once; limit 0 admits nothing', async () => {
    const c = counters();
    await c.acquire('p1', 'call-1', 1);
    expect((await c.acquire('p2', 'call-1', 1)).acquired).toBe(true);
    expect(await c.acquire('p1', 'call-1', 1)).toEqual({ acquired: true, active: 1, limit: 1 });
    expect(await c.activeCount('p1')).toBe(1);
    expect(await c.acquire('p3', 'call-9', 0)).toEqual({ acquired: false, active: 0, limit: 0 });
    expect(await c.acquire('p4', 'call-9', Infinity)).toEqual({ acquired: true, active: 1, limit: Infinity });
  });

  it('50 parallel acquires over separate connections with limit 10: exactly 10 win', async () => {
    const clients = await backend().connections(5);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => counters(clients[i % clients.length]).acquire('race', `call-${i}`, 10)));
    expect(results.filter((result) => result.acquired)).toHaveLength(10);
    expect(results.every((result) => result.active <= 10)).toBe(true);
    expect(await counters().activeCount('race')).toBe(10);
    // Releasing three lets exactly three of the next 20 in.
    const winners = results.flatMap((result, i) => (result.acquired ? [`call-${i}`] : []));
    await Promise.all(winners.slice(0, 3).map((id) => counters().release('race', id)));
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) => counters(clients[i % clients.length]).acquire('race', `late-${i}`, 10)));
    expect(again.filter((result) => result.acquired)).toHaveLength(3);
    expect(await counters().activeCount('race')).toBe(10);
  });

  it('negative control: a check-then-add over the same primitives overshoots under that race', async () => {
    // Proves the race above can catch a non-atomic acquire: counting, then adding, lets far more than 10 in.
    const clients = await backend().connections(5);
    const naiveAcquire = async (i: number) => {
      const cache = clients[i % clients.length]!;
      if ((await cache.zrangeByScore('naive', -Infinity, Infinity)).length >= 10) return false;
      return cache.zadd('naive', `call-${i}`, 1);
    };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => naiveAcquire(i)));
    expect(results.filter(Boolean).length).toBeGreaterThan(10);
  });

  it('a dead node leaks nothing: calls that stop renewing stop counting after one lease', async () => {
    const { unitMs, advance } = backend();
    const c = counters();
    await c.acquire('p1', 'on-dead-node-1', 3);
    await c.acquire('p1', 'on-dead-node-2', 3);
    await c.acquire('p1', 'on-live-node', 3);
    expect((await c.acquire('p1', 'new', 3)).acquired).toBe(false);
    // The live node renews its call from its heartbeat; the dead node's calls are never renewed.
    for (let beat = 0; beat < 3; beat++) {
      await advance(4 * unitMs);
      expect(await c.renew('p1', 'on-live-node')).toBe(true);
    }
    expect(await c.activeCalls('p1')).toEqual(['on-live-node']); // 12 units: the lease of 10 lapsed
    expect(await c.acquire('p1', 'new', 3)).toEqual({ acquired: true, active: 2, limit: 3 });
    // A lapsed, pruned lease is not resurrected by a late renewal.
    expect(await c.renew('p1', 'on-dead-node-1')).toBe(false);
    expect(await c.activeCount('p1')).toBe(2);
  });

  it('an idle project leaves no key behind', async () => {
    const { unitMs, advance, cache } = backend();
    const c = counters();
    await c.acquire('idle', 'call-1', 5);
    await advance(22 * unitMs); // the key expires two leases after the last acquire
    expect(await cache.zrangeByScore('voice:calls:idle', -Infinity, Infinity)).toEqual([]);
    expect(await cache.set('voice:calls:idle', 'x', { ifAbsent: true })).toBe(true); // truly gone, not an empty set
  });

  it('release after renew, renew after release', async () => {
    const c = counters();
    await c.acquire('p1', 'call-1', 1);
    expect(await c.renew('p1', 'call-1')).toBe(true);
    await c.release('p1', 'call-1');
    expect(await c.renew('p1', 'call-1')).toBe(false);
    expect(await c.activeCount('p1')).toBe(0);
  });

  it('rejects a bad limit', async () => {
    const c = counters();
    await expect(c.acquire('p1', 'call-1', -1)).rejects.toThrow(/limit/);
    await expect(c.acquire('p1', 'call-1', 2.5)).rejects.toThrow(/limit/);
  });
});
