import { ProviderError } from '../../../shared/contracts/errors';
import { GOOGLE_ERROR_PREFIX, GOOGLE_PROVIDER_ID } from './grpc';

/**
 * Credentials of the `google-speech-service` block. The stored secret (the block's `apiKey`) is either
 *
 * - a Google API key (`AIza…`): sent as `x-goog-api-key` metadata on every call; or
 * - a service-account key file (the JSON Google's console downloads: `client_email`, `private_key`,
 *   `token_uri`, `project_id`, `private_key_id`): exchanged for an OAuth2 access token with a signed JWT
 *   (RFC 7523 `urn:ietf:params:oauth:grant-type:jwt-bearer`, RS256 signed with WebCrypto), sent as
 *   `authorization: Bearer <token>`. The token is cached per key until 60 s before it expires; concurrent
 *   calls share one refresh.
 *
 * Nothing here needs Node: `fetch` and `crypto.subtle` are web-standard (the file lives beside the gRPC code).
 */

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const JWT_LIFETIME_S = 3600;
const REFRESH_MARGIN_MS = 60_000;
const TOKEN_TIMEOUT_MS = 10_000;

export interface ServiceAccountKey {
  readonly clientEmail: string;
  readonly privateKeyPem: string;
  readonly privateKeyId?: string;
  readonly tokenUri: string;
  readonly projectId?: string;
}

export type GoogleCredential = { readonly kind: 'apiKey'; readonly apiKey: string } | { readonly kind: 'serviceAccount'; readonly account: ServiceAccountKey };

const authError = (message: string) => new ProviderError(`${GOOGLE_ERROR_PREFIX}_AUTH`, message, false, 'auth');

/** The secret → a credential. A missing secret or a JSON that is not a service-account key is an auth error. */
export function parseGoogleCredential(secret: string | undefined): GoogleCredential {
  const text = secret?.trim();
  if (!text) {
    throw authError(`no credential for ${GOOGLE_PROVIDER_ID}: add a ${GOOGLE_PROVIDER_ID} credential to the project (a Google API key or a service-account JSON key) or set GOOGLE_SPEECH_SERVICE_API_KEY`);
  }
  if (!text.startsWith('{')) return { kind: 'apiKey', apiKey: text };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw authError(`the ${GOOGLE_PROVIDER_ID} credential looks like JSON but does not parse: paste the whole service-account key file`);
  }
  const str = (name: string) => (typeof json[name] === 'string' && (json[name] as string).length > 0 ? (json[name] as string) : undefined);
  const clientEmail = str('client_email');
  const privateKeyPem = str('private_key');
  if (!clientEmail || !privateKeyPem) {
    const type = str('type');
    throw authError(
      `the ${GOOGLE_PROVIDER_ID} credential is JSON but not a service-account key (client_email and private_key are required${type ? `; its type is "${type}"` : ''})`,
    );
  }
  const privateKeyId = str('private_key_id');
  const projectId = str('project_id');
  return {
    kind: 'serviceAccount',
    account: { clientEmail, privateKeyPem, tokenUri: str('token_uri') ?? DEFAULT_TOKEN_URI, ...(privateKeyId ? { privateKeyId } : {}), ...(projectId ? { projectId } : {}) },
  };
}

export interface GoogleAuthDeps {
  /** Default: the global fetch. */
  readonly fetch?: typeof fetch;
  /** Clock in ms (default Date.now): token expiry. */
  readonly now?: () => number;
  readonly scope?: string;
  /**
   * Which service-account `token_uri` may be requested (the key file is project data: an arbitrary URI would
   * let it make the node POST to internal addresses). Default: {@link isGoogleTokenUri}. Tests with a local
   * token endpoint pass their own.
   */
  readonly allowTokenUri?: (url: string) => boolean;
}

/** `https://oauth2.googleapis.com/token` and other https URLs on `*.googleapis.com` (default port, no user info). */
export function isGoogleTokenUri(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  const host = parsed.hostname.toLowerCase();
  return parsed.protocol === 'https:' && !parsed.username && !parsed.password && parsed.port === '' && (host === 'oauth2.googleapis.com' || host.endsWith('.googleapis.com'));
}

export interface GoogleAuth {
  /** The call metadata that authenticates `credential` (fetches or refreshes an access token when needed). */
  metadata(credential: GoogleCredential): Promise<Record<string, string>>;
  /** Token requests made so far (tests, diagnostics). */
  readonly tokenRequests: number;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export function createGoogleAuth(deps: GoogleAuthDeps = {}): GoogleAuth {
  const doFetch = deps.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const now = deps.now ?? Date.now;
  const scope = deps.scope ?? CLOUD_PLATFORM_SCOPE;
  const allowTokenUri = deps.allowTokenUri ?? isGoogleTokenUri;
  const tokens = new Map<string, CachedToken>();
  const inflight = new Map<string, Promise<CachedToken>>();
  const keys = new Map<string, Promise<CryptoKey>>();
  let tokenRequests = 0;

  const signingKey = (account: ServiceAccountKey): Promise<CryptoKey> => {
    let key = keys.get(account.privateKeyPem);
    if (!key) {
      key = importPrivateKey(account.privateKeyPem);
      keys.set(account.privateKeyPem, key);
      key.catch(() => keys.delete(account.privateKeyPem));
    }
    return key;
  };

  // Shared by every call waiting for the same account's token, so no caller's abort cancels it: it has its own timeout.
  const requestToken = async (account: ServiceAccountKey): Promise<CachedToken> => {
    const key = await signingKey(account);
    const issuedAt = Math.floor(now() / 1000);
    const assertion = await signJwt(
      { alg: 'RS256', typ: 'JWT', ...(account.privateKeyId ? { kid: account.privateKeyId } : {}) },
      { iss: account.clientEmail, scope, aud: account.tokenUri, iat: issuedAt, exp: issuedAt + JWT_LIFETIME_S },
      key,
    );
    tokenRequests++;
    let response: Response;
    try {
      response = await doFetch(account.tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
        signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_TOKEN_UNAVAILABLE`, `could not reach the token endpoint ${account.tokenUri}: ${error instanceof Error ? error.message : String(error)}`, true, 'unavailable', { cause: error });
    }
    const body = await response.text().catch(() => '');
    if (!response.ok) {
      const detail = describeTokenError(body);
      const said = `${response.status}${detail ? ` ${detail}` : ''}`;
      if (response.status === 429 || response.status >= 500) {
        throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_TOKEN_UNAVAILABLE`, `the token endpoint failed (${said})`, true, response.status === 429 ? 'rate-limit' : 'unavailable');
      }
      throw authError(`the service account ${account.clientEmail} could not get an access token (${said}). Check that the key is current (not deleted) and the clock of this node is right.`);
    }
    let parsed: { access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_TOKEN_UNAVAILABLE`, `the token endpoint answered something that is not JSON`, true, 'protocol');
    }
    if (typeof parsed.access_token !== 'string' || !parsed.access_token) {
      throw new ProviderError(`${GOOGLE_ERROR_PREFIX}_TOKEN_UNAVAILABLE`, 'the token endpoint answered without an access_token', true, 'protocol');
    }
    const expiresInS = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : JWT_LIFETIME_S;
    return { token: parsed.access_token, expiresAt: now() + expiresInS * 1000 };
  };

  const accessToken = async (account: ServiceAccountKey): Promise<string> => {
    if (!allowTokenUri(account.tokenUri)) {
      throw authError(
        `the ${GOOGLE_PROVIDER_ID} service-account credential's token_uri ${JSON.stringify(account.tokenUri)} is refused: it must be an https URL on googleapis.com (e.g. ${DEFAULT_TOKEN_URI})`,
      );
    }
    const cacheKey = `${account.tokenUri}|${account.clientEmail}|${account.privateKeyId ?? account.privateKeyPem}`;
    const cached = tokens.get(cacheKey);
    if (cached && now() < cached.expiresAt - REFRESH_MARGIN_MS) return cached.token;
    let pending = inflight.get(cacheKey);
    if (!pending) {
      pending = requestToken(account).finally(() => inflight.delete(cacheKey));
      inflight.set(cacheKey, pending);
    }
    const fresh = await pending;
    tokens.set(cacheKey, fresh);
    return fresh.token;
  };

  return {
    async metadata(credential): Promise<Record<string, string>> {
      if (credential.kind === 'apiKey') return { 'x-goog-api-key': credential.apiKey };
      return { authorization: `Bearer ${await accessToken(credential.account)}` };
    },
    get tokenRequests() {
      return tokenRequests;
    },
  };
}

function describeTokenError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; error_description?: unknown };
    return [parsed.error, parsed.error_description].filter((v) => typeof v === 'string' && v).join(': ').slice(0, 200);
  } catch {
    return body.trim().slice(0, 200);
  }
}

// ---- JWT (RS256) with WebCrypto --------------------------------------------------------------------------------

const encoder = new TextEncoder();

function base64Url(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: CryptoKey): Promise<string> {
  const input = `${base64Url(encoder.encode(JSON.stringify(header)))}.${base64Url(encoder.encode(JSON.stringify(claims)))}`;
  const signature = new Uint8Array(await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key, encoder.encode(input)));
  return `${input}.${base64Url(signature)}`;
}

/** A PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, what Google's key files hold) → a signing key. */
async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const match = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem.replace(/\\n/g, '\n'));
  if (!match) {
    throw authError(`the private_key of the ${GOOGLE_PROVIDER_ID} service-account credential is not a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----")`);
  }
  let der: Uint8Array<ArrayBuffer>;
  try {
    const binary = atob(match[1]!.replace(/\s+/g, ''));
    der = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) der[i] = binary.charCodeAt(i);
  } catch {
    throw authError(`the private_key of the ${GOOGLE_PROVIDER_ID} service-account credential is not valid base64`);
  }
  try {
    return await crypto.subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  } catch (error) {
    throw authError(`the private_key of the ${GOOGLE_PROVIDER_ID} service-account credential is not an RSA key WebCrypto accepts: ${error instanceof Error ? error.message : String(error)}`);
  }
}
