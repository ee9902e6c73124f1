import type { AudioFormat } from '../shared/audio/format';
import type { ResamplerFactory } from '../shared/audio/resampler';
import type { AssistantConfig } from '../shared/config/assistant';
import type { Channel } from '../shared/contracts/channel';
import { systemClock, type Clock } from '../shared/contracts/clock';
import { ConfigError } from '../shared/contracts/errors';
import type { KnowledgeBase } from '../shared/contracts/knowledge';
import { combineObservers, type CallObserver } from '../shared/contracts/observer';
import { createCommunication, type Communication } from '../shared/engine/communication';
import { openSttEarly, recordSpeech, replayTts, type EarlyStt, type RecordedSpeech } from '../shared/engine/prewarm';
import { resolveChain, type ProviderRegistry } from '../shared/providers/registry';
import { createCallRecorder } from '../shared/store/call-recorder';
import type { CallContext } from '../shared/store/call-contexts';
import { createCredentialResolver } from '../shared/store/credential-resolver';
import type { KnowledgeSearch } from '../shared/tools/builtins';
import type { CallTools } from '../shared/tools/control';
import { createVadFor, type VadFactories } from '../shared/vad/select';
import type { NodeRuntime } from './node';
import { createCallTools, withTwilioTransfer } from './tools/call-tools';

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
  /**
   * The call's tools. Default: built from the assistant's `tools` (shared/tools/executor.ts) with the node's
   * DNS for the http tool's SSRF guard, `TOOL_HTTP_ALLOW` from `env`, and the project's stored credentials.
   */
  readonly tools?: (config: AssistantConfig, context: CallContext) => CallTools | undefined;
  /** The `knowledge_lookup` tool's search for a call (knowledge retrieval); absent: the tool says there is none. */
  readonly knowledgeSearch?: (config: AssistantConfig, context: CallContext) => KnowledgeSearch | undefined;
  /** Which `apiBaseUrl` a stored twilio credential may name for transfers (default: https Twilio hosts only). */
  readonly allowTwilioApiBaseUrl?: (url: string) => boolean;
  /** For http tools and Twilio transfers (default: the global fetch). */
  readonly fetch?: typeof fetch;
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
  return { assistant, config, stt, llm, tts, knowledge: await resolveKnowledgeBases(runtime, config, context.projectId) };
}

/**
 * The assistant's knowledge bases, checked at the webhook: an unknown one, or another project's, is a clear
 * configuration error. OpenSearch serves them when the node has OPENSEARCH_URL, else PostgreSQL/PGlite.
 */
async function resolveKnowledgeBases(runtime: CallRuntime, config: AssistantConfig, projectId: string): Promise<KnowledgeBase[]> {
  const stores = runtime.node.stores;
  const bases: KnowledgeBase[] = [];
  for (const ref of config.knowledgeBases) {
    const info = await stores.knowledge.getKnowledgeBase(ref.id);
    if (!info || info.projectId !== projectId) throw new ConfigError('KNOWLEDGE_BASE_UNKNOWN', `knowledge base ${ref.id} does not exist in this project`);
    const base = runtime.node.knowledgeIndex?.knowledgeBase(ref.id) ?? stores.knowledge.knowledgeBase(ref.id);
    // The assistant's topK for this base applies to every search of it.
    bases.push({ id: base.id, search: (query, options, signal) => base.search(query, { ...options, topK: options.topK ?? ref.topK }, signal) });
  }
  return bases;
}

/** `knowledge_lookup`: the call's knowledge bases (or the ones named), best passages across them. */
function searchAcross(bases: readonly KnowledgeBase[]): KnowledgeSearch {
  return async (query, options, signal) => {
    const chosen = options.knowledgeBases ? bases.filter((b) => options.knowledgeBases!.includes(b.id)) : bases;
    const results = await Promise.all(chosen.map((b) => b.search(query, { topK: options.topK }, signal)));
    return results.flat().sort((a, b) => b.score - a.score).slice(0, options.topK);
  };
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
  const credentials = runtime.node.stores.credentials;
  const search = runtime.knowledgeSearch?.(call.config, context) ?? (call.knowledge.length ? searchAcross(call.knowledge) : undefined);
  const tools = runtime.tools
    ? runtime.tools(call.config, context)
    : createCallTools({ config: call.config, context, credentials, env: runtime.env, ...(search ? { search } : {}), ...(runtime.fetch ? { fetch: runtime.fetch } : {}) });
  // A Twilio call can hand the caller over (transfer_call): the live call is redirected to <Dial>.
  const line = withTwilioTransfer(channel, {
    credentials,
    context,
    ...(runtime.fetch ? { fetch: runtime.fetch } : {}),
    ...(runtime.allowTwilioApiBaseUrl ? { allowApiBaseUrl: runtime.allowTwilioApiBaseUrl } : {}),
  });
  const communication = createCommunication({
    callId: context.id,
    config: call.config,
    channel: line,
    clock: runtime.clock ?? systemClock,
    vad: await createVadFor(call.config.vad, runtime.vads),
    stt: call.stt,
    llm: call.llm,
    tts: call.tts,
    resamplers: runtime.resamplers,
    observer: combineObservers(recorder, ...(runtime.observers ?? [])),
    tools,
    variables: context.variables,
    earlyStt,
    ...(call.knowledge.length ? { knowledge: () => call.knowledge } : {}),
    ...(greeting && call.tts[0] ? { greetingTts: { impl: replayTts(greeting), block: call.tts[0].block, apiKey: undefined } } : {}),
  });
  await communication.start();
  return communication;
}
