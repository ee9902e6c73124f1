/**
 * Every key the runtime keeps in the cache, in one place. The node registry's layout is fixed by
 * ARCHITECTURE.md because the edge reads it with @upstash/redis; the rest share its `voice:` prefix.
 *
 * | key                        | type       | written by                  | TTL                                 |
 * |----------------------------|------------|-----------------------------|-------------------------------------|
 * | `voice:node:{nodeId}`      | hash       | node-registry.ts (heartbeat) | 15 s, renewed by every heartbeat    |
 * | `voice:nodes`              | sorted set | node-registry.ts             | none; members scored by heartbeat ms, pruned when stale |
 * | `voice:route:{callId}`     | string     | call-routing.ts              | 10 min default, renewable           |
 * | `voice:calls:{projectId}`  | sorted set | call-counters.ts             | members scored by lease expiry ms; key TTL 2 leases |
 * | `voice:idem:{key}`         | string     | idempotency.ts               | 24 h default                        |
 */
export const NODES_KEY = 'voice:nodes';

export function nodeKey(nodeId: string): string {
  return `voice:node:${nodeId}`;
}

export function routeKey(callId: string): string {
  return `voice:route:${callId}`;
}

export function projectCallsKey(projectId: string): string {
  return `voice:calls:${projectId}`;
}

export function idempotencyKey(key: string): string {
  return `voice:idem:${key}`;
}

/** Ids become part of a key: non-empty, no whitespace or control characters, at most 256 characters. */
export function assertKeyPart(value: string, what: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\s\p{Cc}]/u.test(value)) {
    throw new RangeError(`${what} must be a non-empty string of at most 256 characters without whitespace, got ${JSON.stringify(value)}`);
  }
}
