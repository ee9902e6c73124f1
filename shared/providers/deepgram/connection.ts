import { ProviderError } from '../../contracts/errors';

/** Where Deepgram lives unless a provider block's `endpoint` says otherwise. */
export const DEEPGRAM_BASE_URL = 'wss://api.deepgram.com';

/**
 * The WebSocket URL for a Deepgram path: the block's `endpoint` replaces scheme, host and port of the default
 * base (http→ws, https→wss, so a block may name either); the path and query are always ours.
 */
export function deepgramUrl(endpoint: string | undefined, path: string, query: URLSearchParams): string {
  let base: URL;
  try {
    base = new URL(endpoint ?? DEEPGRAM_BASE_URL);
  } catch (error) {
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `the endpoint "${endpoint}" is not a URL; use e.g. wss://api.deepgram.com`, false, 'bad-request', { cause: error });
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[base.protocol];
  if (!scheme) {
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `the endpoint "${endpoint}" must be ws://, wss://, http:// or https://`, false, 'bad-request');
  }
  const search = query.toString();
  return `${scheme}//${base.host}${path}${search ? `?${search}` : ''}`;
}

/** Server-side runtimes authenticate with a header (`Token`, not `Bearer`, for API keys). */
export function deepgramAuthHeaders(apiKey: string | undefined): Record<string, string> {
  if (!apiKey) {
    throw new ProviderError(
      'DEEPGRAM_AUTH',
      'no API key for deepgram: add a deepgram credential to the project (or set DEEPGRAM_API_KEY on the server)',
      false,
      'auth',
    );
  }
  return { Authorization: `Token ${apiKey}` };
}
