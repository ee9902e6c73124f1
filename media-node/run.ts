import pino, { type Logger } from 'pino';
import { createSpeexResamplerFactory } from '../shared/audio/resampler';
import { createProviderRegistry, type ProviderRegistry } from '../shared/providers/registry';
import type { ProviderMetricsSink } from '../shared/providers/streaming/metrics';
import { createWebRtcVadFactory } from '../shared/vad/webrtc';
import { loadWasmModulesNode } from './audio/wasm-node';
import { parseNodeEnv } from './config/env';
import { createNodeMetrics } from './metrics';
import { startNode, type NodeRuntime } from './node';
import { createPinoObserver } from './observability/pino-sink';
import { startMediaServer, type MediaServer } from './server';
import { createSileroVadFactory } from './vad/silero';

export interface RunOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Adds the providers this process offers (the speech and LLM adapters; tests add fakes). */
  readonly registerProviders?: (registry: ProviderRegistry, context: ProviderContext) => ProvidersCloser | Promise<ProvidersCloser>;
  /** Called with the process exit code after a signal-triggered drain (default: process.exit). */
  readonly exit?: (code: number) => void;
}

/** Returned by `registerProviders` when the providers hold resources (pooled sockets, workers) to close at shutdown. */
export type ProvidersCloser = void | (() => Promise<void>);

export interface ProviderContext {
  /** Connection metrics of streaming adapters, into the node's Prometheus registry. */
  readonly metrics: ProviderMetricsSink;
  readonly logger: Logger;
}

export interface RunningNode {
  readonly node: NodeRuntime;
  readonly server: MediaServer;
  readonly logger: Logger;
  /** Drain (no new calls; running calls finish up to DRAIN_TIMEOUT_MS), close the node, exit 0. */
  stop(signal: string): Promise<void>;
}

/**
 * Everything `npm start` does: open the node (embedded defaults or DATABASE_URL / REDIS_URL), serve REST,
 * webhooks, media WebSockets, gRPC and /metrics on PORT, and drain on SIGTERM/SIGINT.
 */
export async function runMediaNode(options: RunOptions): Promise<RunningNode> {
  const env = parseNodeEnv(options.env);
  const logger = pino({ level: env.LOG_LEVEL });
  const node = await startNode(env, (line) => logger.info(line));
  if (node.generatedAdminKey) {
    // Printed once to the console (not the log stream): only its hash is stored.
    console.log(`\nAdmin API key (shown once; only its hash is stored): ${node.generatedAdminKey}\n`);
  }
  const wasm = await loadWasmModulesNode();
  const registry = createProviderRegistry();
  const metrics = createNodeMetrics();
  const closeProviders = await options.registerProviders?.(registry, { metrics: metrics.providers, logger });
  const server = await startMediaServer({
    node,
    registry,
    metrics,
    localFallback: (env.LOCAL_FALLBACK ?? (env.DATABASE_URL ? 'off' : 'on')) === 'on',
    vads: { webrtc: await createWebRtcVadFactory(wasm.fvad), silero: createSileroVadFactory() },
    resamplers: await createSpeexResamplerFactory(wasm.speexResampler),
    observers: [createPinoObserver(logger)],
    providerEnv: options.env,
    log: (level, message, fields) => logger[level](fields ?? {}, message),
  });
  logger.info(
    { port: server.port, publicBaseUrl: server.publicBaseUrl(), database: node.databaseKind, cache: node.cacheDescription, providers: { stt: registry.stt.ids(), llm: registry.llm.ids(), tts: registry.tts.ids() } },
    `listening on ${server.url} (HTTP, WebSocket and gRPC on one port); public URL ${server.publicBaseUrl()}`,
  );

  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) =>
    (stopping ??= (async () => {
      logger.info({ signal, activeCalls: server.activeCalls, drainTimeoutMs: env.DRAIN_TIMEOUT_MS }, 'draining: no new calls, running calls may finish');
      await server.drain();
      await closeProviders?.();
      await node.close();
      logger.info('stopped');
      exit(0);
    })());
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return { node, server, logger, stop };
}
