import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError } from '../../shared/contracts/errors';
import { createRegistry, type CredentialResolver, noCredentials, type Registrable, resolveChain } from '../../shared/providers/registry';

interface FakeProvider extends Registrable {
  readonly label: string;
}

const deepgram: FakeProvider = {
  id: 'deepgram',
  label: 'Deepgram',
  optionsSchema: z.object({ smartFormat: z.boolean().default(true), endpointingMs: z.number().int().min(0).default(300) }).strict(),
};
const assembly: FakeProvider = { id: 'assemblyai', label: 'AssemblyAI' };
const google: FakeProvider = { id: 'google', label: 'Google', optionsSchema: z.object({ model: z.enum(['latest_long', 'telephony']) }) };

/** The shape of a provider block in the assistant configuration (provider, credential, options). */
interface Block {
  readonly provider: string;
  readonly credential?: string;
  readonly options: Readonly<Record<string, unknown>>;
}

function registry() {
  const r = createRegistry<FakeProvider>('stt');
  r.register(deepgram);
  r.register(assembly);
  r.register(google);
  return r;
}

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

async function rejected(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

/** A credential resolver that records its calls in order. */
function recordingResolver(secrets: Record<string, string>) {
  const calls: [string, string | undefined][] = [];
  const resolver: CredentialResolver = {
    async resolve(provider, name) {
      calls.push([provider, name]);
      return secrets[name ?? `${provider}:default`];
    },
  };
  return { resolver, calls };
}

describe('provider registry', () => {
  it('resolves a registered provider by id and lists ids sorted', () => {
    const r = registry();
    expect(r.resolve('google')).toBe(google);
    expect(r.has('deepgram')).toBe(true);
    expect(r.has('whisper')).toBe(false);
    expect(r.ids()).toEqual(['assemblyai', 'deepgram', 'google']);
  });

  it('an unknown provider is a ConfigError that names the known ones', () => {
    const error = thrown(() => registry().resolve('deepgramm'));
    expect(error.code).toBe('PROVIDER_UNKNOWN');
    expect(error.message).toContain('"deepgramm"');
    expect(error.message).toContain('assemblyai, deepgram, google');
  });

  it('an empty registry says so', () => {
    expect(thrown(() => createRegistry<FakeProvider>('tts').resolve('x')).message).toContain('(none registered)');
  });

  it('refuses a second registration of the same id, keeping the first', () => {
    const r = registry();
    const error = thrown(() => r.register({ id: 'deepgram', label: 'impostor' }));
    expect(error.code).toBe('PROVIDER_DUPLICATE');
    expect(error.message).toContain('"deepgram"');
    expect(r.resolve('deepgram').label).toBe('Deepgram');
  });
});

describe('resolveChain', () => {
  it('resolves the primary then each fallback, in order, with their credentials', async () => {
    const { resolver, calls } = recordingResolver({ 'dg-prod': 'key-dg', 'assemblyai:default': 'key-aai' });
    const chain = await resolveChain<FakeProvider, Block>(
      {
        provider: 'deepgram',
        credential: 'dg-prod',
        options: { smartFormat: false },
        fallbacks: [
          { provider: 'assemblyai', options: {} },
          { provider: 'google', credential: 'gcp', options: { model: 'telephony' } },
        ],
      },
      registry(),
      resolver,
    );
    expect(chain.map((p) => p.impl)).toEqual([deepgram, assembly, google]);
    expect(calls).toEqual([
      ['deepgram', 'dg-prod'],
      ['assemblyai', undefined],
      ['google', 'gcp'],
    ]);
    expect(chain.map((p) => p.apiKey)).toEqual(['key-dg', 'key-aai', undefined]);
  });

  it("replaces each block's options with the provider schema's parsed options (defaults filled)", async () => {
    const chain = await resolveChain<FakeProvider, Block>({ provider: 'deepgram', credential: 'x', options: { smartFormat: false } }, registry(), noCredentials);
    expect(chain).toHaveLength(1);
    expect(chain[0]!.block).toEqual({ provider: 'deepgram', credential: 'x', options: { smartFormat: false, endpointingMs: 300 } });
  });

  it('a provider without a schema gets its options as given', async () => {
    const chain = await resolveChain<FakeProvider, Block>({ provider: 'assemblyai', options: { anything: 1 } }, registry(), noCredentials);
    expect(chain[0]!.block.options).toEqual({ anything: 1 });
  });

  it('invalid options are a ConfigError naming the provider and each bad option', async () => {
    const error = await rejected(resolveChain<FakeProvider, Block>({ provider: 'deepgram', options: { smartFormat: 'yes', endpointingMs: -5 } }, registry(), noCredentials));
    expect(error.code).toBe('PROVIDER_OPTIONS_INVALID');
    expect(error.message).toContain('"deepgram"');
    expect(error.issues.map((i) => i.split(':')[0]).sort()).toEqual(['endpointingMs', 'smartFormat']);
  });

  it("a fallback's options are validated too, and an unknown fallback provider is reported", async () => {
    const bad = await rejected(
      resolveChain<FakeProvider, Block>({ provider: 'deepgram', options: {}, fallbacks: [{ provider: 'google', options: { model: 'nope' } }] }, registry(), noCredentials),
    );
    expect(bad.code).toBe('PROVIDER_OPTIONS_INVALID');
    expect(bad.message).toContain('"google"');

    const unknown = await rejected(
      resolveChain<FakeProvider, Block>({ provider: 'deepgram', options: {}, fallbacks: [{ provider: 'whisper', options: {} }] }, registry(), noCredentials),
    );
    expect(unknown.code).toBe('PROVIDER_UNKNOWN');
  });
});

describe('resolveChain: local fallback (project credential → environment → local)', () => {
  const cloud: FakeProvider = { id: 'cloudy', label: 'Cloud', requiresCredential: true, optionsSchema: z.object({ tier: z.enum(['fast']) }).strict() };
  const local: FakeProvider = { id: 'local', label: 'Local' };
  const other: FakeProvider = { id: 'other', label: 'Other', requiresCredential: true };
  const withLocal = () => {
    const r = createRegistry<FakeProvider>('tts');
    r.register(cloud);
    r.register(local);
    r.register(other);
    return r;
  };
  const keyFor = (provider: string): CredentialResolver => ({ resolve: async (p) => (p === provider ? 'secret' : undefined) });
  const block = { provider: 'cloudy', options: { tier: 'fast' }, fallbacks: [{ provider: 'other', options: {} }] };

  it('a keyless cloud provider is served by local (once, even when its fallback is keyless too), saying what it stands in for', async () => {
    const chain = await resolveChain(block, withLocal(), noCredentials, { localFallback: true });
    expect(chain.map((c) => [c.impl.id, c.substitutedFor, c.block.options])).toEqual([['local', 'cloudy', {}]]);
  });

  it('a provider with a credential is kept; only the keyless one is replaced', async () => {
    const chain = await resolveChain(block, withLocal(), keyFor('other'), { localFallback: true });
    expect(chain.map((c) => [c.impl.id, c.apiKey])).toEqual([
      ['local', undefined],
      ['other', 'secret'],
    ]);
  });

  it('off by default, and without a registered local engine: the keyless provider stays (its own auth error will tell)', async () => {
    expect((await resolveChain(block, withLocal(), noCredentials)).map((c) => c.impl.id)).toEqual(['cloudy', 'other']);
    const r = createRegistry<FakeProvider>('tts');
    r.register(cloud);
    r.register(other);
    expect((await resolveChain(block, r, noCredentials, { localFallback: true })).map((c) => c.impl.id)).toEqual(['cloudy', 'other']);
  });
});

describe('resolveChain: edge sessions', () => {
  it('refuses a provider that is not edge-capable with a configuration error naming it; edge-capable ones pass', async () => {
    const r = createRegistry<FakeProvider & { capabilities: { edgeCapable: boolean } }>('stt');
    r.register({ id: 'grpc-only', label: 'gRPC', capabilities: { edgeCapable: false } });
    r.register({ id: 'websocket', label: 'WS', capabilities: { edgeCapable: true } });
    const error = await resolveChain({ provider: 'websocket', options: {}, fallbacks: [{ provider: 'grpc-only', options: {} }] }, r, noCredentials, { edge: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('PROVIDER_NOT_EDGE_CAPABLE');
    expect((error as ConfigError).message).toContain('grpc-only');
    expect((await resolveChain({ provider: 'websocket', options: {} }, r, noCredentials, { edge: true })).map((c) => c.impl.id)).toEqual(['websocket']);
    // On a media node the same chain is fine.
    expect((await resolveChain({ provider: 'websocket', options: {}, fallbacks: [{ provider: 'grpc-only', options: {} }] }, r, noCredentials)).length).toBe(2);
  });
});

describe('resolveChain: self-hosted endpoints', () => {
  it('a provider that needs no key with its own endpoint (Ollama, vLLM) is kept, not replaced by local', async () => {
    const r = createRegistry<FakeProvider>('llm');
    r.register({ id: 'openai', label: 'OpenAI', requiresCredential: true, credentialOptionalWithEndpoint: true });
    r.register({ id: 'local', label: 'Local' });
    const selfHosted = await resolveChain({ provider: 'openai', endpoint: 'http://127.0.0.1:11434/v1', options: {} }, r, noCredentials, { localFallback: true });
    expect(selfHosted.map((c) => c.impl.id)).toEqual(['openai']);
    const cloud = await resolveChain({ provider: 'openai', options: {} }, r, noCredentials, { localFallback: true });
    expect(cloud.map((c) => c.impl.id)).toEqual(['local']);
  });
});
