import type { CredentialResolver } from '../providers/registry';
import type { CredentialStore } from './credentials';

/**
 * The provider registry's CredentialResolver for one call of one project, over the CredentialStore:
 * a named credential (missing → StoreError CREDENTIAL_NOT_FOUND) → the project's default for the provider →
 * the environment (`<PROVIDER>_API_KEY`, e.g. `DEEPGRAM_API_KEY`, `GOOGLE_SPEECH_SERVICE_API_KEY`, or the
 * name given in `envNames`) → undefined (the provider runs keyless / `local`).
 *
 * The environment is injected (no `process.env` in shared/). Lookups are cached for the resolver's life, so
 * build one per call: a fallback chain naming the same provider twice reads and decrypts once.
 */
export interface CredentialResolverOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Provider id → environment variable, where the default name does not fit. */
  readonly envNames?: Readonly<Record<string, string>>;
}

export function providerEnvName(provider: string): string {
  return `${provider.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_API_KEY`;
}

export function createCredentialResolver(store: CredentialStore, projectId: string, options: CredentialResolverOptions = {}): CredentialResolver {
  const cache = new Map<string, Promise<string | undefined>>();
  const fromEnv = (provider: string) => {
    const value = options.env?.[options.envNames?.[provider] ?? providerEnvName(provider)];
    return value ? value : undefined;
  };
  return {
    resolve(provider, credentialName) {
      const cacheKey = JSON.stringify([provider, credentialName ?? null]);
      let pending = cache.get(cacheKey);
      if (!pending) {
        pending = (async () => {
          if (credentialName !== undefined) return providerSecret(await store.resolve(projectId, provider, credentialName));
          return providerSecret(await store.resolve(projectId, provider)) ?? fromEnv(provider);
        })();
        // A failure (database down) is not cached: the next attempt asks again.
        pending.catch(() => cache.delete(cacheKey));
        cache.set(cacheKey, pending);
      }
      return pending;
    },
  };
}

/**
 * The secret a speech or LLM provider takes. Credentials stored through the REST API are a JSON object of
 * the provider's fields (`{"apiKey":"…"}`; Twilio: `{"accountSid":…,"authToken":…}`): an `apiKey` (or `key`,
 * `token`) field is the key; any other stored text is handed over as it is (multi-field credentials, such as
 * a Google service account, are parsed by their provider).
 */
export function providerSecret(stored: string | undefined): string | undefined {
  if (stored === undefined || !stored.startsWith('{')) return stored;
  try {
    const fields = JSON.parse(stored) as Record<string, unknown>;
    for (const name of ['apiKey', 'api_key', 'key', 'token']) {
      const value = fields[name];
      if (typeof value === 'string' && value) return value;
    }
  } catch {
    // Not JSON after all: the text is the secret.
  }
  return stored;
}
