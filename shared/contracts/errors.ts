/**
 * Errors that cross a contract carry a stable code, whether a retry can help, and a message that says what
 * to do. Providers map their wire errors onto these; the engine decides retry vs fallback from `retryable`.
 */
export type ErrorKind = 'auth' | 'quota' | 'rate-limit' | 'bad-request' | 'unavailable' | 'timeout' | 'protocol' | 'internal';

export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly kind: ErrorKind = retryable ? 'unavailable' : 'bad-request',
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly code: string,
    message: string,
    readonly issues: readonly string[] = [],
  ) {
    super(issues.length ? `${code}: ${message}\n- ${issues.join('\n- ')}` : `${code}: ${message}`);
  }
}

/** Normalise anything thrown by a provider into a ProviderError (unknown errors count as retryable once). */
export function asProviderError(providerId: string, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  if (isAbortError(error)) return new ProviderError(`${providerId.toUpperCase()}_ABORTED`, 'the request was cancelled', false, 'internal', { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(`${providerId.toUpperCase()}_FAILED`, message, true, 'unavailable', { cause: error });
}

export function isAbortError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}
