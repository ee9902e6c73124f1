import { expect, it } from 'vitest';
import { IdempotencyKeys } from '../../shared/cache/idempotency';
import { describeEachCache } from './backends';

describeEachCache('webhook idempotency keys', (backend) => {
  const keys = () => new IdempotencyKeys(backend().cache, { ttlMs: 10 * backend().unitMs, clock: backend().clock });

  it('the first delivery wins; a duplicate reads what the first stored', async () => {
    const k = keys();
    expect(await k.claim('twilio:CA1:completed', { value: 'event-77' })).toEqual({ first: true });
    expect(await k.claim('twilio:CA1:completed', { value: 'event-78' })).toEqual({ first: false, value: 'event-77' });
    expect(await k.claim('twilio:CA1:ringing')).toEqual({ first: true });
  });

  it('stores the first-seen time by default', async () => {
    const k = keys();
    const before = Math.floor(backend().clock.now());
    await k.claim('vonage:e1');
    const duplicate = await k.claim('vonage:e1');
    expect(duplicate.first).toBe(false);
    const seenAt = Number(duplicate.first ? NaN : duplicate.value);
    expect(seenAt).toBeGreaterThanOrEqual(before);
    expect(seenAt).toBeLessThanOrEqual(backend().clock.now());
  });

  it('exactly one of many concurrent deliveries is first', async () => {
    const clients = await backend().connections(5);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => new IdempotencyKeys(clients[i % clients.length]!, { ttlMs: 10 * backend().unitMs }).claim('exotel:evt-9', { value: `delivery-${i}` })),
    );
    const firsts = results.filter((result) => result.first);
    expect(firsts).toHaveLength(1);
    const stored = results.find((result) => !result.first);
    const winner = results.indexOf(firsts[0]!);
    expect(stored).toEqual({ first: false, value: `delivery-${winner}` });
  });

  it('a key is first again after its TTL, or after release (processing failed, let the retry through)', async () => {
    const { unitMs, advance } = backend();
    const k = keys();
    await k.claim('a');
    await k.claim('b');
    await k.release('b');
    expect(await k.claim('b')).toEqual({ first: true });
    await advance(5 * unitMs);
    expect((await k.claim('a')).first).toBe(false);
    await advance(7 * unitMs);
    expect(await k.claim('a')).toEqual({ first: true });
  });
});
