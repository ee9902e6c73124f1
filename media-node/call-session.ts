import type { AudioFormat } from '../shared/audio/format';
import type { ResamplerFactory } from '../shared/audio/resampler';
import type { AssistantConfig } from '../shared/config/assistant';
import type { Channel } from '../shared/contracts/channel';
import { systemClock, type Clock } from '../shared/contracts/clock';
import { ConfigError } from '../shared/contracts/errors';
import type { ToolExecutor } from '../shared/contracts/llm';
import { combineObservers, type CallObserver } from '../shared/contracts/observer';
import { createCommunication, type Communication } from '../shared/engine/communication';
import { openSttEarly, recordSpeech, replayTts, type EarlyStt, type RecordedSpeech } from '../shared/engine/prewarm';
import { resolveChain, type ProviderRegistry } from '../shared/providers/registry';
import { createCallRecorder } from '../shared/store/call-recorder';
import type { CallContext } from '../shared/store/call-contexts';
import { createCredentialResolver } from '../shared/store/credential-resolver';
import { createVadFor, type VadFactories } from '../shared/vad/select';
import type { NodeRuntime } from './node';

/** What a node needs to run calls, beyond its stores. */
export interface CallRuntime {
  readonly node: NodeRuntime;
  readonly registry: ProviderRegistry;
  readonly vads: VadFactories;
  readonly resamplers: ResamplerFactory;
  /** Extra observers for every call (logs, metrics, traces). */
  readonly observers?: readonly CallObserver[];
  readonly clock?: Clock;
  /** Provider secrets from the environment (`<PROVIDER>_API_KEY`), the last step of credential precedence. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly tools?: (config: AssistantConfig) => ToolExecutor | undefined;
  /** A cloud provider without any credential is served by the `local` engine (LOCAL_FALLBACK; on for embedded defaults). */
  readonly localFallback?: boolean;
}

/**
 * The pipeline a call will run, resolved ahead of the media connection: a missing provider or credential
 * is a clear error at the webhook (the caller hears why), not a dead line after the stream starts.
 */
export async function prepareCall(runtime: CallRuntime, context: Pick<CallContext, 'projectId' | 'assistantId' | 'assistantVersion'>) {
  const assistant = await runtime.node.stores.assistants.get(context.assistantId, context.assistantVersion);
  if (!assistant) throw new ConfigError('ASSISTANT_UNKNOWN', `assistant ${context.assistantId} version ${context.assistantVersion} does not exist`);
  if (assistant.projectId !== context.projectId) throw new ConfigError('ASSISTANT_FORBIDDEN', `assistant ${context.assistantId} belongs to another project`);
  const config = assistant.config;
  const credentials = createCredentialResolver(runtime.node.stores.credentials, context.projectId, { env: runtime.env });
  const [stt, llm, tts] = await Promise.all([
    resolveChain(config.stt, runtime.registry.stt, credentials, { localFallback: runtime.localFallback }),
    resolveChain(config.llm, runtime.registry.llm, credentials, { localFallback: runtime.localFallback }),
    resolveChain(config.tts, runtime.registry.tts, credentials, { localFallback: runtime.localFallback }),
  ]);
  if (!runtime.vads[config.vad.provider]) {
    // Checked here too so the webhook can refuse the call before anything is set up.
    await createVadFor(config.vad, runtime.vads);
  }
  return { assistant, config, stt, llm, tts };
}

export type PreparedCall = Awaited<ReturnType<typeof prepareCall>>;

/**
 * Synthesise the greeting while the phone rings (the inbound webhook has answered, the carrier has not yet
 * opened the media stream), so the first greeting frame can leave as soon as the stream starts.
 */
export async function prewarmGreeting(runtime: CallRuntime, context: CallContext, channelFormat: AudioFormat, prepared?: PreparedCall): Promise<RecordedSpeech | undefined> {
  const call = prepared ?? (await prepareCall(runtime, context));
  const provider = call.tts[0];
  if (!call.config.greeting.trim() || !provider) return undefined;
  return recordSpeech(provider, call.config.greeting, { ...call.config.variables, ...context.variables }, channelFormat);
}

/** Connect the first STT provider while the phone rings (undefined when there is none). */
export async function prewarmStt(prepared: PreparedCall): Promise<EarlyStt | undefined> {
  const provider = prepared.stt[0];
  return provider ? openSttEarly(provider) : undefined;
}

/** Start the engine for a claimed context on `channel`; the conversation is recorded through the node's writer. */
export async function startCallSession(
  runtime: CallRuntime,
  context: CallContext,
  channel: Channel,
  prepared?: PreparedCall,
  greeting?: RecordedSpeech,
  earlyStt?: EarlyStt,
): Promise<Communication> {
  const call = prepared ?? (await prepareCall(runtime, context));
  const recorder = createCallRecorder({ conversationId: context.conversationId, writer: runtime.node.writer });
  const communication = createCommunication({
    callId: context.id,
    config: call.config,
    channel,
    clock: runtime.clock ?? systemClock,
    vad: await createVadFor(call.config.vad, runtime.vads),
    stt: call.stt,
    llm: call.llm,
    tts: call.tts,
    resamplers: runtime.resamplers,
    observer: combineObservers(recorder, ...(runtime.observers ?? [])),
    tools: runtime.tools?.(call.config),
    variables: context.variables,
    earlyStt,
    ...(greeting && call.tts[0] ? { greetingTts: { impl: replayTts(greeting), block: call.tts[0].block, apiKey: undefined } } : {}),
  });
  await communication.start();
  return communication;
}
