import { CacheError, type KeyValueCache } from '../shared/cache/key-value-cache';
import { chooseNode, NodeRegistry, type LiveNode } from '../shared/cache/node-registry';
import { PREWARM_PATH, signInternalRequest } from '../shared/cluster/internal-auth';
import { ApiError, silentLogger, type AppLogger } from './errors';
import type { CallHooks, MediaNodeChoice } from './routes/twilio';

/**
 * How the edge places a phone call on a media node: read the live nodes from the registry (the cache the
 * nodes heartbeat into, through Upstash here), take the least loaded one with room (shared/cache/node-registry.ts
 * `chooseNode`: capacity > 0, active < capacity, heartbeat within the TTL), answer the carrier with that
 * node's own media URL, and ask it, signed, to pre-warm the call while the phone rings.
 *
 * Region preference, in order: the first hint that names a region where some node has room (the request's
 * Cloudflare `cf.region`, then DEFAULT_REGION), else any region. For a carrier webhook `cf.region` is where
 * the carrier's servers are, which is also where its media will come from.
 */

export interface EdgeMediaNodeOptions {
  readonly cache: KeyValueCache;
  readonly internalSecret: string;
  /** Preferred regions, best first; undefined entries are skipped. */
  readonly regionHints: readonly (string | undefined)[];
  /** The request's `ctx.waitUntil`: the pre-warm runs after the webhook has been answered. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly fetch?: typeof fetch;
  readonly log?: AppLogger;
  /** Per pre-warm request; default 5 s. */
  readonly prewarmTimeoutMs?: number;
  /** Wall clock for heartbeat ages; default Date.now. */
  readonly clock?: { now(): number };
}

/** A node's registered public URL as the media WebSocket base: https → wss, http → ws; no trailing slash. */
export function mediaWebSocketBase(nodeUrl: string): string {
  return nodeUrl.replace(/\/+$/, '').replace(/^http(s?):\/\//i, 'ws$1://');
}

/** The node's HTTP base for its internal routes (a node may have registered a ws(s) URL). */
export function nodeHttpBase(nodeUrl: string): string {
  return nodeUrl.replace(/\/+$/, '').replace(/^ws(s?):\/\//i, 'http$1://');
}

const hasRoom = (node: LiveNode) => node.capacity > 0 && node.active < node.capacity;

export function edgeMediaNodeChooser(options: EdgeMediaNodeOptions): CallHooks['chooseMediaNode'] {
  const registry = new NodeRegistry(options.cache, options.clock ? { clock: options.clock } : {});
  const log = options.log ?? silentLogger;
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  const timeoutMs = options.prewarmTimeoutMs ?? 5_000;

  async function prewarm(node: LiveNode, contextId: string): Promise<void> {
    const body = JSON.stringify({ contextId });
    try {
      const signature = await signInternalRequest(options.internalSecret, { method: 'POST', path: PREWARM_PATH, body });
      const response = await fetchImpl(`${nodeHttpBase(node.url)}${PREWARM_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signature },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Read to the end (bounded by the node's tiny answer) so the connection is released.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) log.warn('the media node refused the pre-warm', { nodeId: node.id, contextId, status: response.status });
    } catch (error) {
      // The call still works without it: the node sets up live when the media stream connects.
      log.warn('the pre-warm did not reach the media node', { nodeId: node.id, contextId, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    }
  }

  return async (): Promise<MediaNodeChoice | undefined> => {
    let nodes: LiveNode[];
    try {
      nodes = await registry.listLive();
    } catch (error) {
      if (!(error instanceof CacheError)) throw error;
      log.error('the media-node registry cannot be read', { code: error.code, error: error.message });
      throw new ApiError(503, 'NODE_REGISTRY_UNAVAILABLE', 'the media-node registry (Redis through Upstash) cannot be read right now; retry shortly', {}, { 'Retry-After': '5' });
    }
    const region = options.regionHints.find((hint) => hint !== undefined && nodes.some((node) => node.region === hint && hasRoom(node)));
    const node = chooseNode(nodes, region !== undefined ? { region } : {});
    if (!node) {
      log.warn('no media node can take a call', { live: nodes.length, withRoom: nodes.filter(hasRoom).length });
      return undefined;
    }
    return {
      mediaBaseUrl: mediaWebSocketBase(node.url),
      prewarm: (contextId) => options.waitUntil(prewarm(node, contextId)),
    };
  };
}
