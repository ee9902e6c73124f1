/**
 * Media node entry point (`npm start`): opens the node's dependencies (embedded defaults: PGlite in
 * DATA_DIR, in-memory cache; or DATABASE_URL / REDIS_URL) and serves REST, webhooks, media WebSockets,
 * gRPC and /metrics on PORT (9007). SIGTERM/SIGINT drain: no new calls, running calls finish (up to
 * DRAIN_TIMEOUT_MS), then exit 0.
 */
import pino from 'pino';
import { createSpeexResamplerFactory } from '../shared/audio/resampler';
import { createProviderRegistry } from '../shared/providers/registry';
import { createWebRtcVadFactory } from '../shared/vad/webrtc';
import { loadWasmModulesNode } from './audio/wasm-node';
import { parseNodeEnv } from './config/env';
import { startNode } from './node';
import { createPinoObserver } from './observability/pino-sink';
import { startMediaServer } from './server';
import { createSileroVadFactory } from './vad/silero';

async function main(): Promise<void> {
  const env = parseNodeEnv(process.env);
  const logger = pino({ level: env.LOG_LEVEL });
  const node = await startNode(env, (line) => logger.info(line));
  if (node.generatedAdminKey) {
    // Printed once to the console (not the log stream): only its hash is stored.
    console.log(`\nAdmin API key (shown once; only its hash is stored): ${node.generatedAdminKey}\n`);
  }
  const wasm = await loadWasmModulesNode();
  // Providers register here as their adapters land (speech and LLM issues); an assistant naming one that is
  // missing is refused at the webhook with the reason spoken to the caller.
  const registry = createProviderRegistry();
  const server = await startMediaServer({
    node,
    registry,
    vads: { webrtc: await createWebRtcVadFactory(wasm.fvad), silero: createSileroVadFactory() },
    resamplers: await createSpeexResamplerFactory(wasm.speexResampler),
    observers: [createPinoObserver(logger)],
    providerEnv: process.env,
    log: (level, message, fields) => logger[level](fields ?? {}, message),
  });
  logger.info(
    { port: server.port, publicBaseUrl: server.publicBaseUrl(), database: node.databaseKind, cache: node.cacheDescription, providers: { stt: registry.stt.ids(), llm: registry.llm.ids(), tts: registry.tts.ids() } },
    `listening on ${server.url} (HTTP, WebSocket and gRPC on one port); public URL ${server.publicBaseUrl()}`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, activeCalls: server.activeCalls, drainTimeoutMs: env.DRAIN_TIMEOUT_MS }, 'draining: no new calls, running calls may finish');
    await server.drain();
    await node.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
