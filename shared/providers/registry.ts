import type { ZodType } from 'zod';
import { ConfigError } from '../contracts/errors';
import type { LanguageModel } from '../contracts/llm';
import type { SpeechToText } from '../contracts/stt';
import type { TextToSpeech } from '../contracts/tts';

/** Anything a registry can hold: an implementation with an id and, optionally, a schema for its options. */
export interface Registrable {
  readonly id: string;
  readonly optionsSchema?: ZodType;
  /** A cloud provider that cannot work without a secret (an API key from the credential store or environment). */
  readonly requiresCredential?: boolean;
  /** With its own `endpoint` (a self-hosted server: Ollama, vLLM, llama.cpp) the provider needs no key. */
  readonly credentialOptionalWithEndpoint?: boolean;
}

/** The id of the offline engines (`npm start` without any provider keys). */
export const LOCAL_PROVIDER = 'local';

export interface Registry<T extends Registrable> {
  register(impl: T): void;
  /** The implementation for a configuration's `provider` string; a ConfigError names the known ones. */
  resolve(id: string): T;
  has(id: string): boolean;
  ids(): string[];
}

export function createRegistry<T extends Registrable>(kind: 'stt' | 'tts' | 'llm'): Registry<T> {
  const byId = new Map<string, T>();
  return {
    register(impl) {
      if (byId.has(impl.id)) throw new ConfigError('PROVIDER_DUPLICATE', `${kind} provider "${impl.id}" is registered twice`);
      byId.set(impl.id, impl);
    },
    resolve(id) {
      const impl = byId.get(id);
      if (!impl) {
        const known = [...byId.keys()].sort().join(', ') || '(none registered)';
        throw new ConfigError('PROVIDER_UNKNOWN', `no ${kind} provider "${id}"; known ${kind} providers: ${known}`);
      }
      return impl;
    },
    has: (id) => byId.has(id),
    ids: () => [...byId.keys()].sort(),
  };
}

export interface ProviderRegistry {
  readonly stt: Registry<SpeechToText & Registrable>;
  readonly tts: Registry<TextToSpeech & Registrable>;
  readonly llm: Registry<LanguageModel & Registrable>;
}

export function createProviderRegistry(): ProviderRegistry {
  return { stt: createRegistry('stt'), tts: createRegistry('tts'), llm: createRegistry('llm') };
}

/** Finds the secret for a provider block: named project credential → project default → environment → none (`local`). */
export interface CredentialResolver {
  resolve(provider: string, credentialName: string | undefined): Promise<string | undefined>;
}

export const noCredentials: CredentialResolver = { resolve: async () => undefined };

interface BlockLike {
  readonly provider: string;
  readonly endpoint?: string | undefined;
  readonly credential?: string | undefined;
  readonly options: Readonly<Record<string, unknown>>;
}

/** A provider ready for one call: its implementation, its configuration block (options validated) and secret. */
export interface ResolvedProvider<T, B extends BlockLike> {
  readonly impl: T;
  readonly block: B;
  readonly apiKey: string | undefined;
  /** Set when the block named a cloud provider without a credential and the local engine stands in for it. */
  readonly substitutedFor?: string;
}

export interface ResolveOptions {
  /**
   * Precedence project credential → environment → `local`: a block whose provider needs a credential that
   * neither the project nor the environment has is served by the `local` engine when one is registered
   * (embedded defaults). Off (the default), the missing key surfaces as the provider's own auth error.
   */
  readonly localFallback?: boolean;
  /**
   * The call runs on the edge (workerd): a provider that needs Node (gRPC, worker threads, child processes)
   * is refused with a configuration error instead of failing mid-call.
   */
  readonly edge?: boolean;
}

/** Resolve a block and its fallbacks, in order, validating each provider's own options. */
export async function resolveChain<T extends Registrable, B extends BlockLike>(
  block: B & { readonly fallbacks?: readonly B[] },
  registry: Registry<T>,
  credentials: CredentialResolver,
  resolveOptions: ResolveOptions = {},
): Promise<ResolvedProvider<T, B>[]> {
  const blocks: B[] = [block, ...(block.fallbacks ?? [])];
  const chain: ResolvedProvider<T, B>[] = [];
  for (const b of blocks) {
    const impl = registry.resolve(b.provider);
    if (resolveOptions.edge && (impl as { capabilities?: { edgeCapable?: boolean } }).capabilities?.edgeCapable === false) {
      throw new ConfigError('PROVIDER_NOT_EDGE_CAPABLE', `provider "${b.provider}" needs a media node (Node.js) and cannot run in an edge session; choose an edge-capable provider or route the call to a media node`);
    }
    let options = b.options;
    if (impl.optionsSchema) {
      const parsed = impl.optionsSchema.safeParse(b.options);
      if (!parsed.success) {
        throw new ConfigError(
          'PROVIDER_OPTIONS_INVALID',
          `options of provider "${b.provider}" are invalid`,
          parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`),
        );
      }
      options = parsed.data as Record<string, unknown>;
    }
    const apiKey = await credentials.resolve(b.provider, b.credential);
    if (apiKey === undefined && impl.requiresCredential && !(b.endpoint && impl.credentialOptionalWithEndpoint) && resolveOptions.localFallback && registry.has(LOCAL_PROVIDER)) {
      const local = registry.resolve(LOCAL_PROVIDER);
      // The vendor's options (model, voice ids) mean nothing to the local engine: it runs on its defaults.
      if (!chain.some((c) => c.impl === local)) chain.push({ impl: local, block: { ...b, provider: LOCAL_PROVIDER, options: {}, model: undefined, voice: undefined, endpoint: undefined }, apiKey: undefined, substitutedFor: b.provider });
      continue;
    }
    chain.push({ impl, block: { ...b, options }, apiKey });
  }
  return chain;
}
