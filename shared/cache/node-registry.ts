import type { KeyValueCache } from './key-value-cache';
import { assertKeyPart, nodeKey, NODES_KEY } from './keys';

/**
 * The media-node registry, in the key layout of ARCHITECTURE.md (the edge reads it through @upstash/redis
 * with `automaticDeserialization: false`, so every field is a plain string):
 *
 * - hash `voice:node:{id}`: `url`, `region`, `capacity`, `active`, `version`, `heartbeatAt` (epoch ms),
 *   TTL 15 s, rewritten whole by every heartbeat;
 * - sorted set `voice:nodes`: member = node id, score = heartbeatAt.
 *
 * A node heartbeats every `HEARTBEAT_INTERVAL_MS` (5 s, so two heartbeats may be lost before it drops out).
 * `active` is its number of calls in progress; load = active / capacity. A draining node (deploy) keeps
 * heartbeating with capacity 0: it takes no new calls, but its running calls, their routes and status
 * callbacks still find it; once they are done it deregisters (or simply stops, and expires).
 *
 * Liveness: the hash's server-side TTL is the authority; a reader also skips a hash whose `heartbeatAt` is
 * older than the TTL on its own clock, and prunes sorted-set members scored older than that. Hosts must
 * keep their clocks in sync (NTP): heartbeat scores are the writer's wall clock, compared on the reader's.
 * A member whose hash is gone but whose score is fresh is skipped, not removed (removing it could race with
 * the node's next heartbeat and hide a live node); the score-based prune takes it within one TTL.
 */
export const NODE_TTL_MS = 15_000;
export const HEARTBEAT_INTERVAL_MS = 5_000;

/** What a node announces about itself. */
export interface NodeInfo {
  readonly id: string;
  /** Public base URL of the node (its PUBLIC_BASE_URL), e.g. `https://node-3.voice.example.com`. */
  readonly url: string;
  readonly region: string;
  /** Calls it accepts at most; 0 = draining. */
  readonly capacity: number;
  /** Calls in progress. */
  readonly active: number;
  /** Software version (for mixed-version deploys). */
  readonly version: string;
}

export interface LiveNode extends NodeInfo {
  /** Wall-clock epoch milliseconds of its last heartbeat. */
  readonly heartbeatAt: number;
}

export interface NodeRegistryOptions {
  /** TTL of a node's hash and the staleness bound of its heartbeat. Default 15 s (ARCHITECTURE.md). */
  ttlMs?: number;
  /** Wall clock, epoch milliseconds (heartbeat scores are compared across hosts). Default `Date.now()`. */
  clock?: { now(): number };
  /** Tie-breaking among equally loaded nodes (spreads a burst of picks). Default `Math.random`. */
  random?: () => number;
}

export interface PickOptions {
  /** Preferred region: its nodes win when any of them has room; otherwise any region. */
  region?: string;
  /** Node ids not to pick (e.g. one that just refused the call). */
  exclude?: readonly string[];
}

export class NodeRegistry {
  private readonly ttlMs: number;
  private readonly clock: { now(): number };
  private readonly random: () => number;

  constructor(
    private readonly cache: KeyValueCache,
    options: NodeRegistryOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? NODE_TTL_MS;
    this.clock = options.clock ?? { now: () => Date.now() };
    this.random = options.random ?? Math.random;
  }

  /** Announces the node (same write as a heartbeat). */
  register(node: NodeInfo): Promise<LiveNode> {
    return this.heartbeat(node);
  }

  /**
   * HSET all fields + PEXPIRE (one transaction), then ZADD. The whole hash is rewritten, so a heartbeat
   * after the hash expired (a long pause, a Redis restart) re-creates it. Returns what was written.
   */
  async heartbeat(node: NodeInfo): Promise<LiveNode> {
    validateNode(node);
    const heartbeatAt = Math.floor(this.clock.now());
    await this.cache.hset(
      nodeKey(node.id),
      {
        url: node.url,
        region: node.region,
        capacity: String(node.capacity),
        active: String(node.active),
        version: node.version,
        heartbeatAt: String(heartbeatAt),
      },
      { ttlMs: this.ttlMs },
    );
    // Hash first: a reader never finds a fresh member whose hash is not written yet.
    await this.cache.zadd(NODES_KEY, node.id, heartbeatAt);
    return { ...node, heartbeatAt };
  }

  /** Stop taking new calls: heartbeats with capacity 0 (keep calling it, instead of `heartbeat`, while draining). */
  drain(node: NodeInfo): Promise<LiveNode> {
    return this.heartbeat({ ...node, capacity: 0 });
  }

  /** Gone for good (clean shutdown): removes the hash and the sorted-set member. */
  async deregister(nodeId: string): Promise<void> {
    assertKeyPart(nodeId, 'node id');
    await this.cache.zrem(NODES_KEY, nodeId);
    await this.cache.del(nodeKey(nodeId));
  }

  /** One node if it is alive (hash present, heartbeat within the TTL), else null. */
  async get(nodeId: string): Promise<LiveNode | null> {
    assertKeyPart(nodeId, 'node id');
    const node = parseNode(nodeId, await this.cache.hgetall(nodeKey(nodeId)));
    return node && node.heartbeatAt > this.clock.now() - this.ttlMs ? node : null;
  }

  /** Every live node, draining ones included (capacity 0), ordered by id. Prunes stale members. */
  async listLive(): Promise<LiveNode[]> {
    const cutoff = Math.floor(this.clock.now()) - this.ttlMs;
    await this.cache.zremRangeByScore(NODES_KEY, -Infinity, cutoff);
    const members = await this.cache.zrangeByScore(NODES_KEY, cutoff + 1, Infinity);
    const hashes = await Promise.all(members.map(({ member }) => this.cache.hgetall(nodeKey(member))));
    const live: LiveNode[] = [];
    members.forEach(({ member }, i) => {
      const node = parseNode(member, hashes[i] ?? null);
      if (node && node.heartbeatAt > cutoff) live.push(node);
    });
    return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The node for a new call (see `chooseNode`), or null when no live node has room. */
  async pick(options: PickOptions = {}): Promise<LiveNode | null> {
    return chooseNode(await this.listLive(), options, this.random);
  }
}

/**
 * Least loaded (active / capacity) among nodes with room (capacity > 0 and active < capacity), restricted to
 * `region` when a node there has room; ties go to the node with more free slots, then at random so a burst
 * of picks between two heartbeats does not all land on one node.
 */
export function chooseNode(nodes: readonly LiveNode[], options: PickOptions = {}, random: () => number = Math.random): LiveNode | null {
  const excluded = new Set(options.exclude ?? []);
  const open = nodes.filter((n) => n.capacity > 0 && n.active < n.capacity && !excluded.has(n.id));
  const local = options.region === undefined ? [] : open.filter((n) => n.region === options.region);
  const candidates = local.length > 0 ? local : open;
  if (candidates.length === 0) return null;

  const load = (n: LiveNode) => n.active / n.capacity;
  const free = (n: LiveNode) => n.capacity - n.active;
  let best: LiveNode[] = [];
  for (const node of candidates) {
    const first = best[0];
    if (!first || load(node) < load(first) || (load(node) === load(first) && free(node) > free(first))) best = [node];
    else if (load(node) === load(first) && free(node) === free(first)) best.push(node);
  }
  return best[Math.min(best.length - 1, Math.floor(random() * best.length))] ?? null;
}

function validateNode(node: NodeInfo): void {
  assertKeyPart(node.id, 'node id');
  if (!/^(https?|wss?):\/\/\S+$/.test(node.url)) throw new RangeError(`node ${node.id}: url must be an absolute http(s) or ws(s) URL, got ${JSON.stringify(node.url)}`);
  if (!Number.isSafeInteger(node.capacity) || node.capacity < 0) throw new RangeError(`node ${node.id}: capacity must be a non-negative integer, got ${node.capacity}`);
  if (!Number.isSafeInteger(node.active) || node.active < 0) throw new RangeError(`node ${node.id}: active must be a non-negative integer, got ${node.active}`);
}

const INTEGER = /^\d+$/;

/** A registry hash back into a node; null when it is missing or not one we can read (never trusted blindly). */
export function parseNode(id: string, hash: Record<string, string> | null): LiveNode | null {
  if (!hash) return null;
  const { url, region, capacity, active, version, heartbeatAt } = hash;
  if (url === undefined || region === undefined || version === undefined) return null;
  if (!capacity || !active || !heartbeatAt || !INTEGER.test(capacity) || !INTEGER.test(active) || !INTEGER.test(heartbeatAt)) return null;
  return { id, url, region, capacity: Number(capacity), active: Number(active), version, heartbeatAt: Number(heartbeatAt) };
}
