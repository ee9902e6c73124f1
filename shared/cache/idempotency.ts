import { assertTtlMs, type KeyValueCache } from './key-value-cache';
import { assertKeyPart, idempotencyKey } from './keys';

/**
 * Webhook idempotency: carriers retry deliveries, and two edge locations may receive the same event.
 * `claim(key)` is `SET voice:idem:{key} <value> NX PX ttl`: the first caller wins and processes the event,
 * every later one (until the TTL) is told it is a duplicate and gets the first one's value back. Build the
 * key from what identifies the event, e.g. `twilio:{CallSid}:{CallStatus}` or the provider's event id.
 *
 * When processing fails, `release(key)` so the carrier's retry is processed instead of being dropped as a
 * duplicate. TTL: `IDEMPOTENCY_TTL_MS` (24 h) by default, longer than carriers keep retrying.
 */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60_000;

export type IdempotencyClaim =
  | { readonly first: true }
  /** `value`: what the first claim stored; null if it expired or was released in between. */
  | { readonly first: false; readonly value: string | null };

export interface IdempotencyOptions {
  ttlMs?: number;
  /** Wall clock, epoch milliseconds: the default stored value is when the key was first seen. */
  clock?: { now(): number };
}

export class IdempotencyKeys {
  private readonly ttlMs: number;
  private readonly clock: { now(): number };

  constructor(
    private readonly cache: KeyValueCache,
    options: IdempotencyOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_TTL_MS;
    assertTtlMs(this.ttlMs);
    this.clock = options.clock ?? { now: () => Date.now() };
  }

  /**
   * First seen wins. `value` is stored for the duplicates to read (e.g. the response sent, or a record id);
   * by default the first-seen time in epoch ms.
   */
  async claim(key: string, options: { value?: string; ttlMs?: number } = {}): Promise<IdempotencyClaim> {
    assertKeyPart(key, 'idempotency key');
    const value = options.value ?? String(Math.floor(this.clock.now()));
    const stored = idempotencyKey(key);
    if (await this.cache.set(stored, value, { ttlMs: options.ttlMs ?? this.ttlMs, ifAbsent: true })) return { first: true };
    return { first: false, value: await this.cache.get(stored) };
  }

  /** Forgets the key (processing failed): the next delivery of the event is processed again. */
  async release(key: string): Promise<void> {
    assertKeyPart(key, 'idempotency key');
    await this.cache.del(idempotencyKey(key));
  }
}
