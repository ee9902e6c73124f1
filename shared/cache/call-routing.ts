import { assertTtlMs, type KeyValueCache } from './key-value-cache';
import { assertKeyPart, routeKey } from './keys';

/**
 * Which media node holds a call: `voice:route:{callId}` → node id, with a TTL. The id is whatever a later
 * request carries: the call-context id (media reconnect / resume, prewarm) and, assigned as well, the
 * provider's channel id (a Twilio CallSid in a status callback). The node then comes from the registry.
 *
 * TTL: `ROUTE_TTL_MS` (10 min) by default, long enough for status callbacks after the call ends. A node
 * renews the routes of its calls that run longer (`extend`, from its heartbeat); the routes of a node that
 * died expire on their own.
 */
export const ROUTE_TTL_MS = 10 * 60_000;

export interface CallRoutingOptions {
  ttlMs?: number;
}

export class CallRouting {
  private readonly ttlMs: number;

  constructor(
    private readonly cache: KeyValueCache,
    options: CallRoutingOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? ROUTE_TTL_MS;
    assertTtlMs(this.ttlMs);
  }

  /** Routes the call to `nodeId`, replacing any previous route. */
  async assign(callId: string, nodeId: string, options: { ttlMs?: number } = {}): Promise<void> {
    assertKeyPart(callId, 'call id');
    assertKeyPart(nodeId, 'node id');
    await this.cache.set(routeKey(callId), nodeId, { ttlMs: options.ttlMs ?? this.ttlMs });
  }

  /**
   * Routes the call to `nodeId` unless it is routed already (first one wins, `SET NX`): when two nodes race
   * for the same call (a reconnect landing elsewhere), both learn the one owner. `claimed` is true when
   * `nodeId` is the owner (it just claimed the call, or already held it).
   */
  async claim(callId: string, nodeId: string, options: { ttlMs?: number } = {}): Promise<{ claimed: boolean; nodeId: string }> {
    assertKeyPart(callId, 'call id');
    assertKeyPart(nodeId, 'node id');
    const key = routeKey(callId);
    // A route can expire between a refused SET NX and the GET; then the next SET NX decides again.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.cache.set(key, nodeId, { ttlMs: options.ttlMs ?? this.ttlMs, ifAbsent: true })) return { claimed: true, nodeId };
      const owner = await this.cache.get(key);
      if (owner !== null) return { claimed: owner === nodeId, nodeId: owner };
    }
    throw new Error(`CALL_ROUTE_UNSTABLE: the route of call ${callId} kept expiring while it was claimed; check the route TTL`);
  }

  /** The node holding the call, or null (never routed, or expired). */
  lookup(callId: string): Promise<string | null> {
    assertKeyPart(callId, 'call id');
    return this.cache.get(routeKey(callId));
  }

  /** Renews the route's TTL. False when it has already expired (then `assign` again). */
  extend(callId: string, options: { ttlMs?: number } = {}): Promise<boolean> {
    assertKeyPart(callId, 'call id');
    return this.cache.expire(routeKey(callId), options.ttlMs ?? this.ttlMs);
  }

  async remove(callId: string): Promise<void> {
    assertKeyPart(callId, 'call id');
    await this.cache.del(routeKey(callId));
  }
}
