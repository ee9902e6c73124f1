import { assertTtlMs, type KeyValueCache } from './key-value-cache';
import { assertKeyPart, projectCallsKey } from './keys';

/**
 * Per-project concurrent-call limits, shared by every node and the edge.
 *
 * Design: not a counter but a set of leases. `voice:calls:{projectId}` is a sorted set whose members are the
 * project's call ids, scored by when their lease expires (wall-clock epoch ms). `acquire` is one atomic step
 * (Lua on Redis): drop expired leases, count, and add the call only if the count is below the limit. A node
 * renews the leases of its running calls from its heartbeat (`renew`, every 5 s against a 30 s lease) and
 * releases a call when it ends. A node that dies stops renewing, so its calls stop counting one lease
 * later: nothing leaks, where an INCR/DECR counter would stay high forever after a crash. The key itself
 * expires two leases after the last acquire or renew, so an idle project leaves nothing behind.
 *
 * Acquiring the same call id twice counts it once (a retried request is harmless). Clocks: lease scores
 * are compared across hosts, so keep them NTP-synced; a skew of s ms shortens or lengthens leases by s.
 */
export const CALL_LEASE_TTL_MS = 30_000;

export interface CallCountersOptions {
  /** How long a call counts without a renewal. Default 30 s. */
  leaseTtlMs?: number;
  /** Wall clock, epoch milliseconds. Default `Date.now()`. */
  clock?: { now(): number };
}

export interface Admission {
  acquired: boolean;
  /** Calls counting against the limit after this attempt (this one included when acquired). */
  active: number;
  limit: number;
}

export class CallCounters {
  private readonly leaseTtlMs: number;
  private readonly clock: { now(): number };

  constructor(
    private readonly cache: KeyValueCache,
    options: CallCountersOptions = {},
  ) {
    this.leaseTtlMs = options.leaseTtlMs ?? CALL_LEASE_TTL_MS;
    assertTtlMs(this.leaseTtlMs, 'leaseTtlMs');
    this.clock = options.clock ?? { now: () => Date.now() };
  }

  /**
   * Takes a slot for `callId` unless the project already has `limit` calls (`Infinity` = no limit, still
   * counted). Refusal is not an error: the caller answers "busy" / 429.
   */
  async acquire(projectId: string, callId: string, limit: number): Promise<Admission> {
    assertKeyPart(projectId, 'project id');
    assertKeyPart(callId, 'call id');
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0))) {
      throw new RangeError(`the concurrent-call limit must be a non-negative integer or Infinity, got ${limit}`);
    }
    const now = Math.floor(this.clock.now());
    const { added, count } = await this.cache.zaddWithinLimit(projectCallsKey(projectId), callId, now + this.leaseTtlMs, {
      limit: limit === Infinity ? Number.MAX_SAFE_INTEGER : limit,
      pruneMaxScore: now,
      keyTtlMs: 2 * this.leaseTtlMs,
    });
    return { acquired: added, active: count, limit };
  }

  /** Extends the call's lease. False when it is no longer held (released, or lapsed and pruned). */
  renew(projectId: string, callId: string): Promise<boolean> {
    assertKeyPart(projectId, 'project id');
    assertKeyPart(callId, 'call id');
    const now = Math.floor(this.clock.now());
    return this.cache.zadd(projectCallsKey(projectId), callId, now + this.leaseTtlMs, { onlyIfExists: true, keyTtlMs: 2 * this.leaseTtlMs });
  }

  /** Frees the call's slot. False when it was not held. */
  release(projectId: string, callId: string): Promise<boolean> {
    assertKeyPart(projectId, 'project id');
    assertKeyPart(callId, 'call id');
    return this.cache.zrem(projectCallsKey(projectId), callId);
  }

  /** Ids of the calls counting now (unexpired leases). */
  async activeCalls(projectId: string): Promise<string[]> {
    assertKeyPart(projectId, 'project id');
    const now = Math.floor(this.clock.now());
    const leases = await this.cache.zrangeByScore(projectCallsKey(projectId), now + 1, Infinity);
    return leases.map((lease) => lease.member);
  }

  async activeCount(projectId: string): Promise<number> {
    return (await this.activeCalls(projectId)).length;
  }
}
