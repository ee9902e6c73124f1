import { createSpeexResamplerFactory, type ResamplerFactory } from '../../shared/audio/resampler';
import type { AssistantConfig } from '../../shared/config/assistant';
import { ConfigError } from '../../shared/contracts/errors';
import type { CallSetup } from '../../shared/engine/call-setup';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore, type CallContext, type CallContextStore } from '../../shared/store/call-contexts';
import type { ConversationOp } from '../../shared/store/call-recorder';
import { createCredentialStore } from '../../shared/store/credentials';
import type { Journal } from '../../shared/store/journal';
import { createKnowledgeStore } from '../../shared/store/knowledge';
import { createSecretBox } from '../../shared/store/secret-box';
import type { BatchedWriter, CloseResult, JournalRecord, WriterErrorEvent } from '../../shared/store/writer';
import { createToolExecutor } from '../../shared/tools/executor';
import type { KnowledgeSearch } from '../../shared/tools/builtins';
import { parseHostAllowList } from '../../shared/tools/http-tool';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';
import { createFetchSocketFactory } from '../providers/fetch-socket';
import { loadWasmModulesWorkerd } from '../wasm-workerd';
import { createCallRecordsWriter, type TalkLog } from './conversation-writer';
import { budgetedFetch, createConnectionBudget, type ConnectionBudget, type ConnectionLease } from './connection-budget';
import { createEdgeProviderRegistry } from './edge-providers';
import { openSessionDatabase, type SessionDatabase } from './session-database';
import type { TalkEnv } from './session-env';

/** The provider a credential must be stored under for an http tool's header to use it (as on media nodes). */
const HTTP_TOOL_CREDENTIAL_PROVIDER = 'http';

/** How long the end of a call waits for its records to reach PostgreSQL before leaving them in the journal. */
const CLOSE_FLUSH_MS = 5_000;

/** Everything one browser call runs on inside its Durable Object; built once, on the first connection. */
export interface EdgeSessionRuntime {
  readonly contexts: Pick<CallContextStore, 'get' | 'claim' | 'detach' | 'resume' | 'updateStatus'>;
  readonly setup: CallSetup;
  readonly resamplers: ResamplerFactory;
  readonly budget: ConnectionBudget;
  readonly writer: BatchedWriter<ConversationOp>;
  /** Database connections replaced after a missed deadline. */
  readonly databaseReplaced: number;
  /** Flush (or journal) the records, close the provider pools and give the database slot back. */
  close(): Promise<CloseResult>;
}

export interface SessionRuntimeOptions {
  readonly env: TalkEnv;
  readonly journal: Journal<JournalRecord<ConversationOp>>;
  readonly log: TalkLog;
  /** The writer could not reach the database (retrying, spilling to the journal). */
  onWriterTrouble?(event: WriterErrorEvent<ConversationOp>): void;
  /** For LLM and tool requests; default: the global fetch. */
  readonly fetch?: typeof fetch;
}

export async function openSessionRuntime(options: SessionRuntimeOptions): Promise<EdgeSessionRuntime> {
  const { env, log } = options;
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  const budget = createConnectionBudget();
  // The database connection is one TCP socket inside the `postgres` client, out of reach of the wrappers:
  // it holds its slot for the whole session (the client is created with max 1 connection).
  const databaseSlot: ConnectionLease = await budget.acquire('database');
  let database: SessionDatabase;
  try {
    database = openSessionDatabase(env.edge.database);
  } catch (error) {
    databaseSlot.release();
    throw error;
  }
  const db = database.client;
  const [modules, box] = await Promise.all([loadWasmModulesWorkerd(), createSecretBox(env.edge.secretKey)]);
  const [resamplers, webrtc] = await Promise.all([createSpeexResamplerFactory(modules.speexResampler), createWebRtcVadFactory(modules.fvad)]);

  const credentials = createCredentialStore(db, box);
  const providers = createEdgeProviderRegistry({ budget, connect: createFetchSocketFactory(), fetch: fetchImpl, ...(env.azureRegion ? { azureRegion: env.azureRegion } : {}) });
  const toolFetch = budgetedFetch(budget, fetchImpl, 'tools');
  const allow = parseHostAllowList(env.toolHttpAllow);
  const writer = createCallRecordsWriter({ db, journal: options.journal, log, ...(options.onWriterTrouble ? { onTrouble: options.onWriterTrouble } : {}) });

  /**
   * The call's tools. No DNS API exists in workerd, so the http tool's guard checks what it can without one:
   * literal IP addresses (loopback, private, link-local, metadata ...) and `localhost` names are refused
   * unless TOOL_HTTP_ALLOW names them; host names are left to the platform, whose fetch refuses private and
   * Cloudflare addresses in production (reference/cloudflare.md §3). Stored credentials with provider
   * `http` only, as on media nodes.
   */
  const tools = (config: AssistantConfig, context: CallContext, search: KnowledgeSearch | undefined) => {
    if (config.tools.length === 0) return undefined;
    return createToolExecutor(config.tools, {
      variables: { ...config.variables, ...context.variables },
      ...(search ? { search } : {}),
      http: {
        allow,
        fetch: toolFetch,
        credential: (name) => credentials.resolveForProvider(context.projectId, HTTP_TOOL_CREDENTIAL_PROVIDER, name).catch(() => undefined),
      },
    });
  };

  const setup: CallSetup = {
    stores: { assistants: createAssistantStore(db), credentials, knowledge: createKnowledgeStore(db) },
    registry: providers.registry,
    vads: {
      webrtc,
      // Silero needs onnxruntime (Node): an assistant asking for it is refused when its call starts.
      silero: () => Promise.reject(new ConfigError('VAD_NOT_EDGE_CAPABLE', 'the "silero" VAD needs a media node (onnxruntime); set vad.provider to "webrtc" for browser calls on the edge')),
    },
    resamplers,
    writer,
    env: env.providerKeys,
    localFallback: false,
    edge: true,
    tools,
  };

  let closed: Promise<CloseResult> | undefined;
  return {
    contexts: createCallContextStore(db),
    setup,
    resamplers,
    budget,
    writer,
    get databaseReplaced() {
      return database.replaced;
    },
    close() {
      closed ??= (async () => {
        const result = await writer.close({ timeoutMs: CLOSE_FLUSH_MS });
        await providers.close();
        await db.close().catch(() => undefined);
        databaseSlot.release();
        return result;
      })();
      return closed;
    },
  };
}
