import { ConfigError } from '../../shared/contracts/errors';
import type { LanguageModel } from '../../shared/contracts/llm';
import type { SpeechToText } from '../../shared/contracts/stt';
import type { TextToSpeech } from '../../shared/contracts/tts';
import { createAssemblyAiStt } from '../../shared/providers/assemblyai';
import { createAzureStt, createAzureTts } from '../../shared/providers/azure';
import { createCartesiaStt, createCartesiaTts } from '../../shared/providers/cartesia';
import { createDeepgramStt, createDeepgramTts } from '../../shared/providers/deepgram';
import { createElevenLabsTts } from '../../shared/providers/elevenlabs';
import { createAnthropicLlm, createGeminiLlm, createOpenAiLlm } from '../../shared/providers/llm';
import { createProviderRegistry, LOCAL_PROVIDER, type ProviderRegistry, type Registrable } from '../../shared/providers/registry';
import { createRevAiStt } from '../../shared/providers/revai';
import { createSarvamStt, createSarvamTts } from '../../shared/providers/sarvam';
import type { SocketFactory } from '../../shared/providers/streaming/socket';
import { budgetedFetch, budgetedSocketFactory, type ConnectionBudget } from './connection-budget';

export interface EdgeProviderOptions {
  readonly budget: ConnectionBudget;
  /** The workerd WebSocket factory (edge/providers/fetch-socket.ts). */
  readonly connect: SocketFactory;
  readonly fetch: typeof fetch;
  /** Default Azure region (AZURE_SPEECH_SERVICE_REGION) for blocks that name none. */
  readonly azureRegion?: string;
}

/** Providers that exist only on media nodes (gRPC over HTTP/2, worker threads, child processes). */
const NODE_ONLY = {
  stt: [LOCAL_PROVIDER, 'google-speech-service'],
  tts: [LOCAL_PROVIDER, 'google-speech-service'],
  llm: [LOCAL_PROVIDER],
} as const;

function nodeOnly(id: string): never {
  throw new ConfigError('PROVIDER_NOT_EDGE_CAPABLE', `provider "${id}" needs a media node (Node.js) and cannot run in an edge session`);
}

/**
 * The registry of an edge session: every web-standard cloud adapter, each kind of connection counted in the
 * session's budget under its own label (`stt`, `tts`, `llm`). The Node-only providers are registered as
 * stand-ins that declare `edgeCapable: false`, so an assistant naming one is refused at set-up with
 * PROVIDER_NOT_EDGE_CAPABLE (what to do about it) instead of "unknown provider". Returns a closer for the
 * pooled TTS sockets.
 */
export function createEdgeProviderRegistry(options: EdgeProviderOptions): { registry: ProviderRegistry; close(): Promise<void> } {
  const registry = createProviderRegistry();
  const stt = { connect: budgetedSocketFactory(options.budget, options.connect, 'stt') };
  const tts = { connect: budgetedSocketFactory(options.budget, options.connect, 'tts') };
  const azure = options.azureRegion ? { region: options.azureRegion } : {};
  registry.stt.register(createDeepgramStt(stt));
  registry.stt.register(createCartesiaStt(stt));
  registry.stt.register(createSarvamStt(stt));
  registry.stt.register(createAssemblyAiStt(stt));
  registry.stt.register(createRevAiStt(stt));
  registry.stt.register(createAzureStt(stt, azure));
  const ttsAdapters = [createDeepgramTts(tts), createCartesiaTts(tts), createElevenLabsTts(tts), createSarvamTts(tts), createAzureTts(tts, azure)];
  for (const adapter of ttsAdapters) registry.tts.register(adapter);
  const llm = { fetch: budgetedFetch(options.budget, options.fetch, 'llm') };
  registry.llm.register(createOpenAiLlm(llm));
  registry.llm.register(createAnthropicLlm(llm));
  registry.llm.register(createGeminiLlm(llm));

  for (const id of NODE_ONLY.stt) {
    registry.stt.register({
      id,
      capabilities: { interimResults: false, finalize: false, wordTimings: false, endOfTurn: false, edgeCapable: false },
      open: () => nodeOnly(id),
    } satisfies SpeechToText & Registrable);
  }
  for (const id of NODE_ONLY.tts) {
    registry.tts.register({
      id,
      capabilities: { wordTimings: false, outputFormats: [], edgeCapable: false },
      stream: () => nodeOnly(id),
    } satisfies TextToSpeech & Registrable);
  }
  for (const id of NODE_ONLY.llm) {
    registry.llm.register({
      id,
      capabilities: { tools: false, edgeCapable: false },
      stream: () => nodeOnly(id),
    } satisfies LanguageModel & Registrable);
  }

  return {
    registry,
    async close() {
      await Promise.allSettled(ttsAdapters.map((adapter) => adapter.close()));
    },
  };
}
