import { z } from 'zod';
import { ProviderError, isAbortError, type ErrorKind } from '../../contracts/errors';
import type { LlmDelta } from '../../contracts/llm';
import { createBackoff, sleep } from '../streaming/connect-retry';
import { parseSse, SseError, type SseEvent } from './sse';

/**
 * The request loop every LLM adapter shares: POST with the caller's AbortSignal, read the SSE answer through
 * the vendor's decoder, a first-token deadline, and retries with backoff only while nothing has been
 * yielded yet (429 honours `retry-after`, 5xx and network failures are retried; 400/401/403/404 fail at once
 * with the vendor's own message). Once a delta is out, a failure is surfaced, never retried: a retry would
 * repeat words the caller already heard.
 */

/** Connection-level LLM measurements. Shaped like ProviderMetricsSink (streaming/metrics.ts) with stage 'llm'. */
export interface LlmMetricsSink {
  /** Response headers received: ms from sending the request (per attempt). */
  connected(provider: string, stage: 'llm', ms: number): void;
  /** Time to first token: ms from `stream()` being called (retries included) until the first delta. */
  firstResult(provider: string, stage: 'llm', kind: 'token', ms: number): void;
  /** A failed attempt is being retried (`reason` is the error code). */
  reconnected(provider: string, stage: 'llm', reason: string): void;
  error(provider: string, stage: 'llm', kind: ErrorKind): void;
}

export const nullLlmMetrics: LlmMetricsSink = { connected() {}, firstResult() {}, reconnected() {}, error() {} };

/** What an LLM adapter gets from its runtime (media node, workerd edge, tests). */
export interface LlmHttpDeps {
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
  readonly metrics?: LlmMetricsSink;
  /** No delta within this long after sending a request → a retryable `*_FIRST_TOKEN_TIMEOUT` (default 5 000 ms). Not retried here: the engine falls back to the next provider. */
  readonly firstTokenTimeoutMs?: number;
  /** Retries before the first token: attempts after the first, base delay doubling with ±25 % jitter. Default 2 × 250 ms. */
  readonly retry?: { readonly attempts: number; readonly baseDelayMs: number };
  /** Longest `retry-after` honoured (default 5000 ms); a longer one fails at once with the rate-limit error. */
  readonly maxRetryAfterMs?: number;
  /** Bound on one SSE event (default 1 MiB). */
  readonly maxEventChars?: number;
  readonly random?: () => number;
}

/** A caller waits in silence meanwhile: past this the engine moves to the block's fallback. */
export const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 5_000;
export const DEFAULT_LLM_RETRY = Object.freeze({ attempts: 2, baseDelayMs: 250 });
const DEFAULT_MAX_RETRY_AFTER_MS = 5000;
const MAX_ERROR_BODY_CHARS = 64 * 1024;
const MAX_DETAIL_CHARS = 300;

/** Turns SSE events into deltas; pure, one per attempt. `onEvent` and `end` throw ProviderErrors. */
export interface LlmStreamDecoder {
  onEvent(event: SseEvent): readonly LlmDelta[];
  /** The body ended: the last deltas, or a ProviderError when the stream stopped before it was complete. */
  end(): readonly LlmDelta[];
}

export interface LlmHttpRequest {
  readonly providerId: string;
  /** Upper-case prefix of error codes, e.g. `OPENAI`. */
  readonly codePrefix: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly decoder: () => LlmStreamDecoder;
  /** Names the credential in auth errors, e.g. "the openai credential of the project". */
  readonly credentialHint: string;
}

/** Every vendor's error body carries `error.message` (OpenAI, Gemini, Anthropic) plus a type/status/code. */
const vendorErrorBody = z.object({
  error: z.union([
    z.object({
      message: z.string().optional(),
      type: z.string().nullish(),
      status: z.string().nullish(),
      code: z.union([z.string(), z.number()]).nullish(),
    }),
    z.string(),
  ]),
});

export interface VendorErrorDetail {
  readonly message: string;
  /** `type` (OpenAI, Anthropic), `status` (Gemini) or a string `code`. */
  readonly type: string | undefined;
  readonly code: string | undefined;
}

/** The vendor's message out of an error body (JSON or not), bounded. */
export function vendorErrorDetail(body: string): VendorErrorDetail {
  const trimmed = body.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    return { message: trimmed.slice(0, MAX_DETAIL_CHARS), type: undefined, code: undefined };
  }
  // Some servers wrap the error in an array (Gemini without alt=sse).
  const candidate = Array.isArray(parsed) ? parsed[0] : parsed;
  const result = vendorErrorBody.safeParse(candidate);
  if (!result.success) return { message: trimmed.slice(0, MAX_DETAIL_CHARS), type: undefined, code: undefined };
  const error = result.data.error;
  if (typeof error === 'string') return { message: error.slice(0, MAX_DETAIL_CHARS), type: undefined, code: undefined };
  const code = error.code === undefined || error.code === null ? undefined : String(error.code);
  return { message: (error.message ?? '').slice(0, MAX_DETAIL_CHARS), type: error.type ?? error.status ?? undefined, code };
}

/** An HTTP refusal → a ProviderError that says what to do. */
export function classifyHttpError(prefix: string, providerId: string, status: number, body: string, credentialHint: string): ProviderError {
  const detail = vendorErrorDetail(body);
  const said = `(${status}${detail.type ? ` ${detail.type}` : ''}${detail.message ? `: ${detail.message}` : ''})`;
  const typeOrCode = `${detail.type ?? ''} ${detail.code ?? ''}`.toLowerCase();
  // Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid" (reason API_KEY_INVALID).
  const badKey = status === 400 && (/api[ _-]?key/i.test(detail.message) || body.includes('API_KEY_INVALID'));
  if (status === 401 || status === 403 || badKey) {
    return new ProviderError(`${prefix}_AUTH`, `${providerId} rejected the credentials ${said}. Check ${credentialHint}.`, false, 'auth');
  }
  if (status === 402 || typeOrCode.includes('insufficient_quota') || typeOrCode.includes('billing')) {
    return new ProviderError(`${prefix}_QUOTA`, `the ${providerId} account has no quota or credit left ${said}`, false, 'quota');
  }
  if (status === 429) return new ProviderError(`${prefix}_RATE_LIMIT`, `${providerId} is rate-limiting ${said}`, true, 'rate-limit');
  if (status === 408) return new ProviderError(`${prefix}_TIMEOUT`, `${providerId} timed out ${said}`, true, 'timeout');
  if (status >= 500) return new ProviderError(`${prefix}_UNAVAILABLE`, `${providerId} is unavailable ${said}`, true, 'unavailable');
  if (status === 404) {
    return new ProviderError(`${prefix}_NOT_FOUND`, `${providerId} does not know the model, deployment or path ${said}. Check the model and endpoint of the llm block.`, false, 'bad-request');
  }
  return new ProviderError(`${prefix}_BAD_REQUEST`, `${providerId} refused the request ${said}. Check the model and options of the llm block.`, false, 'bad-request');
}

/** `retry-after` as ms: delta-seconds or an HTTP-date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

async function readBounded(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < MAX_ERROR_BODY_CHARS) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return text.slice(0, MAX_ERROR_BODY_CHARS);
}

function abortError(): Error {
  const error = new Error('the LLM request was cancelled');
  error.name = 'AbortError';
  return error;
}

/** A failed attempt: the error, and how long the server asked us to wait (429). */
class AttemptFailure {
  constructor(
    readonly error: ProviderError,
    readonly retryAfterMs: number | undefined,
  ) {}
}

/**
 * Streams one completion. Throws ProviderErrors (or the AbortError when `signal` aborted: the request and
 * its connection are dropped at once, also when the consumer stops iterating).
 */
export async function* streamLlm(request: LlmHttpRequest, signal: AbortSignal, deps: LlmHttpDeps = {}): AsyncGenerator<LlmDelta, void, undefined> {
  const doFetch = deps.fetch ?? fetch;
  const metrics = deps.metrics ?? nullLlmMetrics;
  const firstTokenTimeoutMs = deps.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS;
  const maxRetryAfterMs = deps.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  const backoff = createBackoff(deps.retry ?? DEFAULT_LLM_RETRY, deps.random);
  const startedAt = performance.now();
  const body = JSON.stringify(request.body);
  const prefix = request.codePrefix;

  for (;;) {
    if (signal.aborted) throw abortError();
    const attempt = new AbortController();
    const onAbort = (): void => attempt.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, firstTokenTimeoutMs);
    let committed = false;
    let failure: AttemptFailure | undefined;
    try {
      const sentAt = performance.now();
      const response = await doFetch(request.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...request.headers },
        body,
        signal: attempt.signal,
      });
      metrics.connected(request.providerId, 'llm', performance.now() - sentAt);
      if (!response.ok) {
        const text = await readBounded(response);
        const error = classifyHttpError(prefix, request.providerId, response.status, text, request.credentialHint);
        throw new AttemptFailure(error, response.status === 429 ? parseRetryAfter(response.headers.get('retry-after')) : undefined);
      }
      if (!response.body) throw new AttemptFailure(new ProviderError(`${prefix}_PROTOCOL`, `${request.providerId} answered without a body`, true, 'protocol'), undefined);
      const contentType = response.headers.get('content-type') ?? '';
      if (contentType.includes('json')) {
        // An error (or a non-streamed answer) where a stream was asked for.
        const text = await readBounded(response);
        const detail = vendorErrorDetail(text);
        throw new AttemptFailure(
          new ProviderError(`${prefix}_PROTOCOL`, `${request.providerId} answered JSON instead of an event stream${detail.message ? `: ${detail.message}` : ''}; the endpoint may not support streaming`, false, 'protocol'),
          undefined,
        );
      }
      const decoder = request.decoder();
      for await (const event of parseSse(response.body, deps.maxEventChars)) {
        const deltas = decoder.onEvent(event);
        for (const delta of deltas) {
          if (!committed) {
            committed = true;
            clearTimeout(timer);
            metrics.firstResult(request.providerId, 'llm', 'token', performance.now() - startedAt);
          }
          yield delta;
          if (signal.aborted) throw abortError();
        }
      }
      for (const delta of decoder.end()) {
        committed = true;
        yield delta;
      }
      return;
    } catch (thrown) {
      if (signal.aborted) throw isAbortError(thrown) ? thrown : abortError();
      failure = toFailure(request, thrown, timedOut, firstTokenTimeoutMs);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      // Ends the connection whatever happened (consumer stopped early, error, done).
      attempt.abort();
    }
    metrics.error(request.providerId, 'llm', failure.error.kind);
    if (committed || timedOut || !failure.error.retryable) throw failure.error;
    let delay = backoff.next();
    if (delay === undefined) throw failure.error;
    if (failure.retryAfterMs !== undefined) {
      if (failure.retryAfterMs > maxRetryAfterMs) throw failure.error;
      delay = Math.max(delay, failure.retryAfterMs);
    }
    metrics.reconnected(request.providerId, 'llm', failure.error.code);
    if (!(await sleep(delay, signal))) throw abortError();
  }
}

function toFailure(request: LlmHttpRequest, thrown: unknown, timedOut: boolean, firstTokenTimeoutMs: number): AttemptFailure {
  const prefix = request.codePrefix;
  if (thrown instanceof AttemptFailure) return thrown;
  if (timedOut) {
    return new AttemptFailure(new ProviderError(`${prefix}_FIRST_TOKEN_TIMEOUT`, `${request.providerId} sent no token within ${firstTokenTimeoutMs} ms`, true, 'timeout', { cause: thrown }), undefined);
  }
  if (thrown instanceof ProviderError) return new AttemptFailure(thrown, undefined);
  if (thrown instanceof SseError) return new AttemptFailure(new ProviderError(`${prefix}_PROTOCOL`, `${request.providerId}: ${thrown.message}`, false, 'protocol', { cause: thrown }), undefined);
  const message = thrown instanceof Error ? (thrown.cause instanceof Error ? `${thrown.message}: ${thrown.cause.message}` : thrown.message) : String(thrown);
  return new AttemptFailure(new ProviderError(`${prefix}_NETWORK`, `could not reach ${request.providerId} at ${new URL(request.url).host} (${message})`, true, 'unavailable', { cause: thrown }), undefined);
}

/** A JSON event payload, validated; a malformed one is a protocol error, never a crash. */
export function parseEventJson<T>(prefix: string, providerId: string, schema: z.ZodType<T>, data: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    throw new ProviderError(`${prefix}_PROTOCOL`, `${providerId} sent an event that is not JSON: ${data.slice(0, 120)}`, true, 'protocol');
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ProviderError(`${prefix}_PROTOCOL`, `${providerId} sent an event of an unexpected shape (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}): ${data.slice(0, 120)}`, true, 'protocol');
  }
  return result.data;
}

/** The stream stopped before the vendor's end marker: the answer is incomplete. */
export function incompleteStream(prefix: string, providerId: string, what: string): ProviderError {
  return new ProviderError(`${prefix}_INCOMPLETE`, `${providerId} closed the stream before ${what}`, true, 'unavailable');
}

/** `base` + `path` without a doubled slash. */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}

/** An error reported inside an open stream (`type`/`status` of the vendor's error object) → a ProviderError. */
export function classifyStreamError(prefix: string, providerId: string, detail: VendorErrorDetail): ProviderError {
  const kind = `${detail.type ?? ''} ${detail.code ?? ''}`.toLowerCase();
  const said = `(${[detail.type, detail.message].filter(Boolean).join(': ') || 'no detail'})`;
  if (/auth|permission|unauthenticated|forbidden|invalid_api_key/.test(kind)) {
    return new ProviderError(`${prefix}_AUTH`, `${providerId} rejected the credentials mid-stream ${said}`, false, 'auth');
  }
  if (/insufficient_quota|billing/.test(kind)) return new ProviderError(`${prefix}_QUOTA`, `the ${providerId} account has no quota left ${said}`, false, 'quota');
  if (/rate_limit|resource_exhausted|too_many/.test(kind)) return new ProviderError(`${prefix}_RATE_LIMIT`, `${providerId} is rate-limiting ${said}`, true, 'rate-limit');
  if (/invalid|not_found|bad_request|failed_precondition|out_of_range/.test(kind)) {
    return new ProviderError(`${prefix}_BAD_REQUEST`, `${providerId} refused the request mid-stream ${said}`, false, 'bad-request');
  }
  // overloaded_error, api_error, server_error, UNAVAILABLE, INTERNAL and anything new: another attempt may work.
  return new ProviderError(`${prefix}_STREAM_ERROR`, `${providerId} reported an error mid-stream ${said}`, true, 'unavailable');
}

/** Tool-call arguments bigger than this are refused (bounded memory). */
export const MAX_TOOL_ARGUMENTS_CHARS = 256 * 1024;

/** The options a block carries, validated again here (direct callers skip the registry's validation). */
export function parseOptions<T>(prefix: string, providerId: string, schema: z.ZodType<T>, options: unknown): T {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
  throw new ProviderError(`${prefix}_BAD_OPTIONS`, `options of the ${providerId} llm block are invalid: ${issues}`, false, 'bad-request');
}
