import type { AudioFormat } from '../shared/audio/format';
import type { ResamplerFactory } from '../shared/audio/resampler';
import type { AssistantConfig } from '../shared/config/assistant';
import type { Channel } from '../shared/contracts/channel';
import type { Clock } from '../shared/contracts/clock';
import type { CallObserver } from '../shared/contracts/observer';
import { prepareCall as prepare, startCall, type CallSetup, type PreparedCall } from '../shared/engine/call-setup';
import type { Communication } from '../shared/engine/communication';
import { openSttEarly, recordSpeech, type EarlyStt, type RecordedSpeech } from '../shared/engine/prewarm';
import type { ProviderRegistry } from '../shared/providers/registry';
import type { CallContext } from '../shared/store/call-contexts';
import type { KnowledgeSearch } from '../shared/tools/builtins';
import type { CallTools } from '../shared/tools/control';
import type { VadFactories } from '../shared/vad/select';
import type { NodeRuntime } from './node';
import { createCallTools, withTwilioTransfer, withVonageTransfer } from './tools/call-tools';

export type { PreparedCall } from '../shared/engine/call-setup';

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
  /** The same for a stored vonage credential's apiBaseUrl (default: https Vonage API hosts only). */
  readonly allowVonageApiBaseUrl?: (url: string) => boolean;
  /** For http tools and Twilio transfers (default: the global fetch). */
  readonly fetch?: typeof fetch;
  /** A cloud provider without any credential is served by the `local` engine (LOCAL_FALLBACK; on for embedded defaults). */
  readonly localFallback?: boolean;
}

/** The node's side of call set-up (shared/engine/call-setup.ts): its stores, index, DNS-guarded tools, Twilio transfer. */
function callSetup(runtime: CallRuntime): CallSetup {
  const node = runtime.node;
  const credentials = node.stores.credentials;
  return {
    stores: node.stores,
    registry: runtime.registry,
    vads: runtime.vads,
    resamplers: runtime.resamplers,
    writer: node.writer,
    ...(runtime.clock ? { clock: runtime.clock } : {}),
    env: runtime.env,
    localFallback: runtime.localFallback,
    ...(runtime.observers ? { observers: runtime.observers } : {}),
    ...(node.knowledgeIndex ? { knowledgeIndex: (id: string) => node.knowledgeIndex!.knowledgeBase(id) } : {}),
    ...(runtime.knowledgeSearch ? { knowledgeSearch: runtime.knowledgeSearch } : {}),
    tools: (config, context, search) =>
      runtime.tools
        ? runtime.tools(config, context)
        : createCallTools({ config, context, credentials, env: runtime.env, ...(search ? { search } : {}), ...(runtime.fetch ? { fetch: runtime.fetch } : {}) }),
    // A Twilio call can hand the caller over (transfer_call): the live call is redirected to <Dial>.
    // ... and a Vonage call through the Voice API (the call moves to an NCCO that connects the target).
    wrapChannel: (channel, context) => {
      const base = { credentials, context, ...(runtime.fetch ? { fetch: runtime.fetch } : {}) };
      const twilio = withTwilioTransfer(channel, { ...base, ...(runtime.allowTwilioApiBaseUrl ? { allowApiBaseUrl: runtime.allowTwilioApiBaseUrl } : {}) });
      return withVonageTransfer(twilio, { ...base, ...(runtime.allowVonageApiBaseUrl ? { allowApiBaseUrl: runtime.allowVonageApiBaseUrl } : {}) });
    },
  };
}

/** The pipeline a call will run (shared/engine/call-setup.ts), with the node's stores and index. */
export function prepareCall(runtime: CallRuntime, context: Pick<CallContext, 'projectId' | 'assistantId' | 'assistantVersion'>): Promise<PreparedCall> {
  return prepare(callSetup(runtime), context);
}

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
export function startCallSession(
  runtime: CallRuntime,
  context: CallContext,
  channel: Channel,
  start: { prepared?: PreparedCall; greeting?: RecordedSpeech; earlyStt?: EarlyStt; observer?: CallObserver } = {},
): Promise<Communication> {
  return startCall(callSetup(runtime), context, channel, start);
}
