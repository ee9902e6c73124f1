import { expect, it } from 'vitest';
import { CallRouting } from '../../shared/cache/call-routing';
import { describeEachCache } from './backends';

describeEachCache('call routing', (backend) => {
  const routing = () => new CallRouting(backend().cache, { ttlMs: 10 * backend().unitMs });

  it('a call id resolves to its node until the route expires', async () => {
    const { unitMs, advance } = backend();
    const r = routing();
    await r.assign('ctx-1', 'node-a');
    await r.assign('CA1234', 'node-a'); // the carrier's id for the same call, for its status callbacks
    expect(await r.lookup('ctx-1')).toBe('node-a');
    expect(await r.lookup('CA1234')).toBe('node-a');
    expect(await r.lookup('ctx-unknown')).toBeNull();
    await advance(12 * unitMs);
    expect(await r.lookup('ctx-1')).toBeNull();
    expect(await r.lookup('CA1234')).toBeNull();
  });

  it('extend renews a live route (a long call) and reports an expired one', async () => {
    const { unitMs, advance } = backend();
    const r = routing();
    await r.assign('ctx-1', 'node-a');
    for (let i = 0; i < 3; i++) {
      await advance(6 * unitMs);
      expect(await r.extend('ctx-1')).toBe(true);
    }
    expect(await r.lookup('ctx-1')).toBe('node-a'); // 18 units after assign, TTL 10
    await advance(12 * unitMs);
    expect(await r.extend('ctx-1')).toBe(false);
    expect(await r.lookup('ctx-1')).toBeNull();
  });

  it('a per-call TTL overrides the default; assign replaces the route; remove deletes it', async () => {
    const { unitMs, advance } = backend();
    const r = routing();
    await r.assign('short', 'node-a', { ttlMs: 2 * unitMs });
    await r.assign('moved', 'node-a');
    await r.assign('moved', 'node-b');
    await advance(4 * unitMs);
    expect(await r.lookup('short')).toBeNull();
    expect(await r.lookup('moved')).toBe('node-b');
    await r.remove('moved');
    expect(await r.lookup('moved')).toBeNull();
  });

  it('claim: the first node wins and every racer learns the owner', async () => {
    const r = routing();
    const clients = await backend().connections(4);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => new CallRouting(clients[i % clients.length]!, { ttlMs: 10 * backend().unitMs }).claim('ctx-race', `node-${i}`)),
    );
    const winners = results.filter((result) => result.claimed);
    expect(winners).toHaveLength(1);
    const owner = await r.lookup('ctx-race');
    expect(results.every((result) => result.nodeId === owner)).toBe(true);
    expect(await r.claim('ctx-race', owner!)).toEqual({ claimed: true, nodeId: owner });
  });

  it('refuses ids that cannot be part of a key', async () => {
    const r = routing();
    await expect(r.assign('', 'node-a')).rejects.toThrow(/call id/);
    await expect(r.assign('ctx 1', 'node-a')).rejects.toThrow(/call id/);
    await expect(r.assign('ctx-1', 'node\na')).rejects.toThrow(/node id/);
  });
});
