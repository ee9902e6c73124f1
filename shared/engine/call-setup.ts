import type { ResamplerFactory } from '../audio/resampler';
import type { AssistantConfig } from '../config/assistant';
import type { Channel } from '../contracts/channel';
import { systemClock, type Clock } from '../contracts/clock';
import { ConfigError } from '../contracts/errors';
import type { KnowledgeBase } from '../contracts/knowledge';
import { combineObservers, type CallObserver } from '../contracts/observer';
import { resolveChain, type ProviderRegistry } from '../providers/registry';
import type { AssistantStore } from '../store/assistants';
import { createCallRecorder, type ConversationOpSink } from '../store/call-recorder';
import type { CallContext } from '../store/call-contexts';
import { createCredentialResolver } from '../store/credential-resolver';
import type { CredentialStore } from '../store/credentials';
import type { KnowledgeStore } from '../store/knowledge';
import type { KnowledgeSearch } from '../tools/builtins';
import type { CallTools } from '../tools/control';
import { createVadFor, type VadFactories } from '../vad/select';
import { createCommunication, type Communication } from './communication';
import { replayTts, type EarlyStt, type RecordedSpeech } from './prewarm';

/**
 * Setting up one call from its context, the same on a media node and in the edge's Durable Object: resolve
 * the assistant's providers (refusing what this host cannot run), its knowledge bases and tools, then
 * start the engine with the conversation recorded through the host's writer.
 */
export interface CallSetup {
  readonly stores: {
    readonly assistants: Pick<AssistantStore, 'get'>;
    readonly credentials: CredentialStore;
    readonly knowledge: Pick<KnowledgeStore, 'getKnowledgeBase' | 'knowledgeBase'>;
  };
  readonly registry: ProviderRegistry;
  readonly vads: VadFactories;
  readonly resamplers: ResamplerFactory;
  /** Records the conversation (messages, metrics, events); journaled while the database is away. */
  readonly writer: ConversationOpSink;
  readonly clock?: Clock;
  /** Provider secrets from the environment (`<PROVIDER>_API_KEY`), the last step of credential precedence. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** A cloud provider without any credential is served by the `local` engine (LOCAL_FALLBACK). */
  readonly localFallback?: boolean;
  /** The call runs on the edge (workerd): providers that need Node are refused with a configuration error. */
  readonly edge?: boolean;
  /** Extra observers for every call (logs, metrics, traces). */
  readonly observers?: readonly CallObserver[];
  /** Another index serving a knowledge base than the store's own (OpenSearch on a node). */
  readonly knowledgeIndex?: (id: string) => KnowledgeBase | undefined;
  /** The `knowledge_lookup` search for a call; default: across the assistant's knowledge bases. */
  readonly knowledgeSearch?: (config: AssistantConfig, context: CallContext) => KnowledgeSearch | undefined;
  /** The call's tools (host-specific: DNS for the http tool's guard, credentials); absent: no tools. */
  readonly tools?: (config: AssistantConfig, context: CallContext, search: KnowledgeSearch | undefined) => CallTools | undefined;
  /** Wraps the channel before the engine gets it (e.g. a carrier's transfer through its REST API). */
  readonly wrapChannel?: (channel: Channel, context: CallContext) => Channel;
}

/**
 * The pipeline a call will run, resolved ahead of the media connection: a missing provider or credential
 * is a clear error at the webhook (the caller hears why), not a dead line after the stream starts.
 */
export async function prepareCall(setup: CallSetup, context: Pick<CallContext, 'projectId' | 'assistantId' | 'assistantVersion'>) {
  const assistant = await setup.stores.assistants.get(context.assistantId, context.assistantVersion);
  if (!assistant) throw new ConfigError('ASSISTANT_UNKNOWN', `assistant ${context.assistantId} version ${context.assistantVersion} does not exist`);
  if (assistant.projectId !== context.projectId) throw new ConfigError('ASSISTANT_FORBIDDEN', `assistant ${context.assistantId} belongs to another project`);
  const config = assistant.config;
  const credentials = createCredentialResolver(setup.stores.credentials, context.projectId, { env: setup.env });
  const options = { localFallback: setup.localFallback, edge: setup.edge };
  const [stt, llm, tts] = await Promise.all([
    resolveChain(config.stt, setup.registry.stt, credentials, options),
    resolveChain(config.llm, setup.registry.llm, credentials, options),
    resolveChain(config.tts, setup.registry.tts, credentials, options),
  ]);
  if (!setup.vads[config.vad.provider]) {
    // Checked here too so the webhook can refuse the call before anything is set up.
    await createVadFor(config.vad, setup.vads);
  }
  return { assistant, config, stt, llm, tts, knowledge: await resolveKnowledgeBases(setup, config, context.projectId) };
}

export type PreparedCall = Awaited<ReturnType<typeof prepareCall>>;

/**
 * The assistant's knowledge bases, checked at the webhook: an unknown one, or another project's, is a clear
 * configuration error. The host's index serves them when it has one, else PostgreSQL/PGlite.
 */
async function resolveKnowledgeBases(setup: CallSetup, config: AssistantConfig, projectId: string): Promise<KnowledgeBase[]> {
  const stores = setup.stores;
  const bases: KnowledgeBase[] = [];
  for (const ref of config.knowledgeBases) {
    const info = await stores.knowledge.getKnowledgeBase(ref.id);
    if (!info || info.projectId !== projectId) throw new ConfigError('KNOWLEDGE_BASE_UNKNOWN', `knowledge base ${ref.id} does not exist in this project`);
    const base = setup.knowledgeIndex?.(ref.id) ?? stores.knowledge.knowledgeBase(ref.id);
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

/** What a host may have ready before the call starts, and per-call extras. */
export interface CallStart {
  readonly prepared?: PreparedCall;
  /** The greeting synthesised while the phone rang. */
  readonly greeting?: RecordedSpeech;
  /** The first STT session opened while the phone rang. */
  readonly earlyStt?: EarlyStt;
  /** An observer for this call only (e.g. the talk protocol's event stream). */
  readonly observer?: CallObserver;
}

/** Start the engine for a claimed context on `channel`; the conversation is recorded through the writer. */
export async function startCall(setup: CallSetup, context: CallContext, channel: Channel, start: CallStart = {}): Promise<Communication> {
  const call = start.prepared ?? (await prepareCall(setup, context));
  const recorder = createCallRecorder({ conversationId: context.conversationId, writer: setup.writer });
  const search = setup.knowledgeSearch?.(call.config, context) ?? (call.knowledge.length ? searchAcross(call.knowledge) : undefined);
  const tools = setup.tools?.(call.config, context, search);
  const line = setup.wrapChannel ? setup.wrapChannel(channel, context) : channel;
  const observers = [recorder, ...(setup.observers ?? []), ...(start.observer ? [start.observer] : [])];
  const communication = createCommunication({
    callId: context.id,
    config: call.config,
    channel: line,
    clock: setup.clock ?? systemClock,
    vad: await createVadFor(call.config.vad, setup.vads),
    stt: call.stt,
    llm: call.llm,
    tts: call.tts,
    resamplers: setup.resamplers,
    observer: combineObservers(...observers),
    tools,
    variables: context.variables,
    earlyStt: start.earlyStt,
    ...(call.knowledge.length ? { knowledge: () => call.knowledge } : {}),
    ...(start.greeting && call.tts[0] ? { greetingTts: { impl: replayTts(start.greeting), block: call.tts[0].block, apiKey: undefined } } : {}),
  });
  await communication.start();
  return communication;
}
