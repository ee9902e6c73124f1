import type { ProviderRegistry } from '../../shared/providers/registry';
import type { ProviderMetricsSink } from '../../shared/providers/streaming/metrics';
import type { SocketFactory } from '../../shared/providers/streaming/socket';
import { createAssemblyAiStt } from '../../shared/providers/assemblyai';
import { createAzureStt, createAzureTts } from '../../shared/providers/azure';
import { createCartesiaStt, createCartesiaTts } from '../../shared/providers/cartesia';
import { createDeepgramStt, createDeepgramTts } from '../../shared/providers/deepgram';
import { createElevenLabsTts } from '../../shared/providers/elevenlabs';
import { createRevAiStt } from '../../shared/providers/revai';
import { createSarvamStt, createSarvamTts } from '../../shared/providers/sarvam';
import { createGoogleAuth, createGoogleStt, createGoogleTts } from './google';
import { createLocalStt, isLocalSttAvailable } from './local-stt/pocketsphinx-stt';
import { createLocalTts } from './local-tts/flite-tts';
import { createWsSocketFactory } from './ws-socket';

export interface SpeechProviderOptions {
  readonly metrics?: ProviderMetricsSink;
  /** Default: `ws` sockets. */
  readonly connect?: SocketFactory;
  /** Register the offline engines as `local` (default true). */
  readonly local?: boolean;
  readonly warn?: (message: string) => void;
  /** Default Azure region (AZURE_SPEECH_SERVICE_REGION) for blocks that name none. */
  readonly azureRegion?: string;
}

/**
 * Every speech provider a media node offers: the cloud adapters (a key from the project's credentials or
 * `<PROVIDER>_API_KEY`) and the offline `local` engines (Flite TTS in worker threads; PocketSphinx STT when
 * the Debian packages are installed). Returns a closer for the pooled sockets and workers.
 */
export async function registerSpeechProviders(registry: ProviderRegistry, options: SpeechProviderOptions = {}): Promise<() => Promise<void>> {
  const deps = { connect: options.connect ?? createWsSocketFactory(), ...(options.metrics ? { metrics: options.metrics } : {}) };
  const azure = options.azureRegion ? { region: options.azureRegion } : {};
  const ttsAdapters = [createDeepgramTts(deps), createCartesiaTts(deps), createElevenLabsTts(deps), createSarvamTts(deps), createAzureTts(deps, azure)];
  registry.stt.register(createDeepgramStt(deps));
  registry.stt.register(createCartesiaStt(deps));
  registry.stt.register(createSarvamStt(deps));
  registry.stt.register(createAssemblyAiStt(deps));
  registry.stt.register(createRevAiStt(deps));
  registry.stt.register(createAzureStt(deps, azure));
  for (const tts of ttsAdapters) registry.tts.register(tts);
  const closers: (() => Promise<void>)[] = ttsAdapters.map((t) => () => t.close());
  // Google speaks gRPC (Node-only): one pooled HTTP/2 connection per endpoint, OAuth tokens cached.
  const auth = createGoogleAuth();
  const googleStt = createGoogleStt({ ...deps, auth });
  const googleTts = createGoogleTts({ ...deps, auth });
  registry.stt.register(googleStt);
  registry.tts.register(googleTts);
  closers.push(() => googleStt.close(), () => googleTts.close());
  if (options.local ?? true) {
    const localTts = createLocalTts();
    registry.tts.register(localTts);
    // Start the workers and compile Flite now, not on the first call's greeting (~100 ms).
    void localTts.prewarm().catch((error: unknown) => options.warn?.(`local TTS could not start: ${error instanceof Error ? error.message : String(error)}`));
    closers.push(() => localTts.close());
    const stt = await isLocalSttAvailable();
    if (stt.ok) registry.stt.register(createLocalStt());
    else options.warn?.(`local STT is not available (${stt.reason}); calls on the local engines will not hear the caller — use text input or configure a cloud STT`);
  }
  return async () => {
    await Promise.allSettled(closers.map((close) => close()));
  };
}
