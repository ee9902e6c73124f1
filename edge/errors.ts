import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ConfigError } from '../shared/contracts/errors';
import { StoreError, type StoreErrorCode } from '../shared/store/errors';
import { DatabaseUnavailableError } from '../shared/store/sql';

/**
 * Every error the HTTP app answers has one shape:
 *
 *   { "error": { "code": "ASSISTANT_NOT_FOUND", "message": "what happened and what to do", ...details } }
 *
 * `code` is stable (clients branch on it), `message` is for people. Details are optional and named per case:
 * `issues` (validation: `[{ path, message }]`, `path` in dotted form, absent for issues of the whole
 * request), `latestVersion` (a version conflict), `requestId` (internal errors, to find the log line).
 */
export interface ValidationIssue {
  readonly path?: string;
  readonly message: string;
}

export interface ErrorDetails {
  readonly issues?: readonly ValidationIssue[];
  readonly [key: string]: unknown;
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string } & ErrorDetails;
}

/** An error a route throws on purpose: it becomes exactly this status, code and message. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    /** The message as answered (without the code prefix that `Error.message` carries for logs). */
    readonly publicMessage: string,
    readonly details: ErrorDetails = {},
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(`${code}: ${publicMessage}`);
  }
}

export const notFound = (code: string, message: string) => new ApiError(404, code, message);
export const badRequest = (code: string, message: string, details?: ErrorDetails) => new ApiError(400, code, message, details);

export function errorBody(code: string, message: string, details: ErrorDetails = {}): ErrorBody {
  return { error: { ...details, code, message } };
}

export function errorResponse(c: Context, status: ContentfulStatusCode, code: string, message: string, details?: ErrorDetails): Response {
  return c.json(errorBody(code, message, details), status);
}

/** Minimal logger the app writes through (pino on the media node, console on the Worker). */
export interface AppLogger {
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

export const silentLogger: AppLogger = { info() {}, warn() {}, error() {} };

const STORE_STATUS: Record<StoreErrorCode, ContentfulStatusCode> = {
  PROJECT_UNKNOWN: 404,
  CREDENTIAL_NOT_FOUND: 404,
  CREDENTIAL_NAME_TAKEN: 409,
  // The server's SECRET_KEY does not open what is stored: an operator problem, not the client's.
  CREDENTIALS_KEY_MISMATCH: 500,
  CREDENTIALS_CORRUPT: 500,
  NUMBER_TAKEN: 409,
  TRUNK_IN_USE: 409,
  TRUNK_NOT_FOUND: 404,
  ASSISTANT_UNKNOWN: 404,
};

/** The text after "CODE: " (the shared error classes prefix their message with their code). */
function withoutCodePrefix(message: string, code: string): string {
  const firstLine = message.split('\n', 1)[0] ?? message;
  return firstLine.startsWith(`${code}: `) ? firstLine.slice(code.length + 2) : firstLine;
}

/**
 * The app's `onError`: maps what a route (or a store under it) threw onto the error shape. Unexpected errors
 * are logged with the request id and answered 500 without their message (it may name internals).
 */
export function handleError(error: unknown, c: Context, log: AppLogger, requestId: string | undefined): Response {
  if (error instanceof ApiError) {
    for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
    return errorResponse(c, error.status, error.code, error.publicMessage, error.details);
  }
  if (error instanceof ConfigError) {
    return errorResponse(c, 400, error.code, withoutCodePrefix(error.message, error.code), {
      issues: error.issues.map((message) => ({ message })),
    });
  }
  if (error instanceof StoreError) {
    const status = STORE_STATUS[error.code] ?? 500;
    if (status >= 500) log.error('store error', { code: error.code, message: error.message, requestId });
    return errorResponse(c, status, error.code, withoutCodePrefix(error.message, error.code));
  }
  if (error instanceof DatabaseUnavailableError) {
    log.warn('database unavailable', { message: error.message, requestId });
    c.header('Retry-After', '5');
    return errorResponse(c, 503, 'DATABASE_UNAVAILABLE', 'the database cannot be reached right now; retry shortly');
  }
  if (error instanceof HTTPException) {
    if (error.status === 413) {
      return errorResponse(c, 413, 'BODY_TOO_LARGE', 'the request body is larger than this endpoint accepts');
    }
    const status = error.status as ContentfulStatusCode;
    return errorResponse(c, status, status >= 500 ? 'INTERNAL' : 'BAD_REQUEST', error.message || 'the request was refused');
  }
  log.error('unhandled error', {
    requestId,
    method: c.req.method,
    path: c.req.path,
    error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
  return errorResponse(c, 500, 'INTERNAL', `internal error; the server log has the details under request id ${requestId ?? '(none)'}`, {
    ...(requestId ? { requestId } : {}),
  });
}
