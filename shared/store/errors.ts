/**
 * A store refused an operation for a reason the caller can act on (an unknown project, a taken name, a
 * credential sealed with another SECRET_KEY). `code` is stable for mapping to HTTP statuses; the message says
 * what to do. Never retryable: the same call fails the same way. (A lost connection is DatabaseUnavailableError.)
 */
export type StoreErrorCode =
  | 'PROJECT_UNKNOWN'
  | 'CREDENTIAL_NOT_FOUND'
  | 'CREDENTIAL_NAME_TAKEN'
  | 'CREDENTIALS_KEY_MISMATCH'
  | 'CREDENTIALS_CORRUPT'
  | 'NUMBER_TAKEN'
  | 'TRUNK_NOT_FOUND'
  | 'TRUNK_IN_USE'
  | 'ASSISTANT_UNKNOWN';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly retryable = false;
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
