import { describe, expect, it } from 'vitest';
import { nodeKey, NODES_KEY } from '../../shared/cache/keys';
import { MemoryCache } from '../../shared/cache/memory';
import { chooseNode, NodeRegistry, type LiveNode, type NodeInfo } from '../../shared/cache/node-registry';
import { createFakeClock } from '../fakes/clock';
import { describeEachCache } from './backends';

function node(id: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return { id, url: `https://${id}.voice.test`, region: 'eu-west', capacity: 10, active: 0, version: '1.4.2', ...overrides };
}

describeEachCache('node registry', (backend) => {
  // TTL 15 units: on memory exactly the 15 s of ARCHITECTURE.md (virtual time).
  const registry = () => new NodeRegistry(backend().cache, { ttlMs: 15 * backend().unitMs, clock: backend().clock });

  it('a registered node is listed with every field, read back from strings', async () => {
    const r = registry();
    const before = Math.floor(backend().clock.now());
    const written = await r.register(node('n1', { active: 3, capacity: 40, region: 'us-east' }));
    expect(written.heartbeatAt).toBeGreaterThanOrEqual(before);
    expect(written.heartbeatAt).toBeLessThanOrEqual(backend().clock.now());
    const live = await r.listLive();
    expect(live).toEqual([
      { id: 'n1', url: 'https://n1.voice.test', region: 'us-east', capacity: 40, active: 3, version: '1.4.2', heartbeatAt: written.heartbeatAt },
    ]);
    expect(await r.get('n1')).toEqual(live[0]);
    expect(await backend().cache.hgetall(nodeKey('n1'))).toEqual({
      url: 'https://n1.voice.test',
      region: 'us-east',
      capacity: '40',
      active: '3',
      version: '1.4.2',
      heartbeatAt: String(written.heartbeatAt),
    });
    expect(await backend().cache.zrangeByScore(NODES_KEY, -Infinity, Infinity)).toEqual([{ member: 'n1', score: written.heartbeatAt }]);
  });

  it('a node that stops heartbeating expires after the TTL: not listed, not picked, pruned from voice:nodes', async () => {
    const { unitMs, advance, cache } = backend();
    const r = registry();
    await r.register(node('dies'));
    await r.register(node('lives'));
    await advance(10 * unitMs);
    await r.heartbeat(node('lives'));
    expect((await r.listLive()).map((n) => n.id)).toEqual(['dies', 'lives']);
    await advance(7 * unitMs); // 'dies' last beat 17 units ago, 'lives' 7
    expect((await r.listLive()).map((n) => n.id)).toEqual(['lives']);
    expect(await r.get('dies')).toBeNull();
    expect(await cache.hgetall(nodeKey('dies'))).toBeNull();
    expect((await cache.zrangeByScore(NODES_KEY, -Infinity, Infinity)).map((e) => e.member)).toEqual(['lives']);
    await advance(10 * unitMs);
    expect(await r.listLive()).toEqual([]);
    expect(await r.pick()).toBeNull();
  });

  it('heartbeats keep a node alive well past the TTL, and update its load', async () => {
    const { unitMs, advance } = backend();
    const r = registry();
    await r.register(node('n1'));
    for (let beat = 1; beat <= 6; beat++) {
      await advance(5 * unitMs);
      await r.heartbeat(node('n1', { active: beat }));
      expect(await r.get('n1')).toMatchObject({ active: beat });
    }
    await advance(5 * unitMs); // 35 units since registration, 5 since the last beat
    expect((await r.listLive()).map((n) => [n.id, n.active])).toEqual([['n1', 6]]);
    await advance(12 * unitMs);
    expect(await r.listLive()).toEqual([]);
  });

  it('a heartbeat after the node expired registers it again', async () => {
    const { unitMs, advance } = backend();
    const r = registry();
    await r.register(node('n1'));
    await advance(20 * unitMs);
    expect(await r.listLive()).toEqual([]);
    await r.heartbeat(node('n1', { active: 2 }));
    expect((await r.listLive()).map((n) => [n.id, n.active])).toEqual([['n1', 2]]);
  });

  it('picks the least loaded node by active/capacity, never a full or draining one', async () => {
    const r = registry();
    await r.register(node('busy', { active: 8, capacity: 10 }));
    await r.register(node('small', { active: 1, capacity: 2 }));
    await r.register(node('full', { active: 10, capacity: 10 }));
    await r.register(node('light', { active: 3, capacity: 20 }));
    await r.drain(node('draining', { active: 0, capacity: 50 }));
    expect((await r.pick())?.id).toBe('light');
    expect((await r.pick({ exclude: ['light'] }))?.id).toBe('small');
    expect((await r.pick({ exclude: ['light', 'small', 'busy'] }))?.id).toBeUndefined();
  });

  it('prefers the requested region while it has room, else falls back to any region', async () => {
    const r = registry();
    await r.register(node('eu-1', { region: 'eu-west', active: 1, capacity: 10 }));
    await r.register(node('us-1', { region: 'us-east', active: 6, capacity: 10 }));
    await r.register(node('us-2', { region: 'us-east', active: 5, capacity: 10 }));
    expect((await r.pick({ region: 'us-east' }))?.id).toBe('us-2');
    expect((await r.pick({ region: 'eu-west' }))?.id).toBe('eu-1');
    expect((await r.pick({ region: 'ap-south' }))?.id).toBe('eu-1');
    await r.heartbeat(node('us-1', { region: 'us-east', active: 10, capacity: 10 }));
    await r.drain(node('us-2', { region: 'us-east' }));
    expect((await r.pick({ region: 'us-east' }))?.id).toBe('eu-1');
  });

  it('drain keeps the node visible (its calls and routes still find it) with capacity 0; deregister removes it', async () => {
    const { cache } = backend();
    const r = registry();
    await r.register(node('n1', { active: 4 }));
    await r.drain(node('n1', { active: 4 }));
    expect(await r.get('n1')).toMatchObject({ capacity: 0, active: 4, url: 'https://n1.voice.test' });
    expect(await r.pick()).toBeNull();
    await r.deregister('n1');
    expect(await r.get('n1')).toBeNull();
    expect(await r.listLive()).toEqual([]);
    expect(await cache.hgetall(nodeKey('n1'))).toBeNull();
    expect(await cache.zrangeByScore(NODES_KEY, -Infinity, Infinity)).toEqual([]);
  });

  it('skips a member whose hash is gone or unreadable, and prunes it once its score is stale', async () => {
    const { unitMs, advance, cache } = backend();
    const r = registry();
    await r.register(node('vanished'));
    await r.register(node('garbled'));
    await r.register(node('ok'));
    await cache.del(nodeKey('vanished'));
    await cache.hset(nodeKey('garbled'), { capacity: 'lots' });
    expect((await r.listLive()).map((n) => n.id)).toEqual(['ok']);
    // Not removed while fresh (that could race with the node's next heartbeat) ...
    expect((await cache.zrangeByScore(NODES_KEY, -Infinity, Infinity)).map((e) => e.member).sort()).toEqual(['garbled', 'ok', 'vanished']);
    await advance(16 * unitMs);
    await r.heartbeat(node('ok'));
    // ... but gone once stale.
    expect((await r.listLive()).map((n) => n.id)).toEqual(['ok']);
    expect((await cache.zrangeByScore(NODES_KEY, -Infinity, Infinity)).map((e) => e.member)).toEqual(['ok']);
  });

  it('refuses to announce a malformed node', async () => {
    const r = registry();
    await expect(r.register(node('n 1'))).rejects.toThrow(/node id/);
    await expect(r.register(node('n1', { capacity: -1 }))).rejects.toThrow(/capacity/);
    await expect(r.register(node('n1', { active: 1.5 }))).rejects.toThrow(/active/);
    await expect(r.register(node('n1', { url: 'node-1:9007' }))).rejects.toThrow(/url/);
    expect(await r.listLive()).toEqual([]);
  });
});

describe('node registry defaults', () => {
  it('uses the 15 s TTL of ARCHITECTURE.md', async () => {
    const clock = createFakeClock(1_700_000_000_000);
    const r = new NodeRegistry(new MemoryCache({ clock }), { clock });
    await r.register(node('n1'));
    await clock.advance(14_999);
    expect(await r.get('n1')).not.toBeNull();
    await clock.advance(1);
    expect(await r.get('n1')).toBeNull();
    expect(await r.listLive()).toEqual([]);
  });
});

describe('chooseNode', () => {
  const live = (id: string, active: number, capacity: number, region = 'eu-west'): LiveNode => ({ ...node(id, { active, capacity, region }), heartbeatAt: 0 });

  it('breaks a load tie by free slots, then at random', () => {
    const big = live('big', 5, 10);
    const small = live('small', 1, 2);
    expect(chooseNode([small, big])?.id).toBe('big');
    const twinA = live('a', 2, 10);
    const twinB = live('b', 2, 10);
    expect(chooseNode([twinA, twinB], {}, () => 0)?.id).toBe('a');
    expect(chooseNode([twinA, twinB], {}, () => 0.99)?.id).toBe('b');
  });

  it('returns null when nothing has room', () => {
    expect(chooseNode([])).toBeNull();
    expect(chooseNode([live('full', 3, 3), live('drained', 0, 0)])).toBeNull();
  });
});
