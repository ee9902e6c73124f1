/**
 * One request to a carrier's REST API with a deadline: the carrier clients (Twilio, Exotel, Vonage) build
 * the request and map the outcome to their own error class; the timing-out, cancelling and reading live here.
 */
export const DEFAULT_REST_TIMEOUT_MS = 10_000;

export interface RestRequest {
  readonly url: string;
  readonly init: RequestInit;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
  /** The caller's cancellation (its abort is reported as `aborted`, not as a network failure). */
  readonly signal?: AbortSignal;
}

export type RestOutcome =
  | { readonly ok: true; readonly response: Response; readonly text: string }
  | { readonly ok: false; readonly failure: 'timeout' | 'aborted' | 'network'; readonly timeoutMs: number; readonly reason: string; readonly cause: unknown };

export async function restRequest(request: RestRequest): Promise<RestOutcome> {
  const timeoutMs = request.timeoutMs ?? DEFAULT_REST_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  if (request.signal?.aborted) controller.abort();
  request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const init = { ...request.init, signal: controller.signal };
    const response = request.fetch ? await request.fetch(request.url, init) : await fetch(request.url, init);
    return { ok: true, response, text: await response.text() };
  } catch (error) {
    const failure = timedOut ? 'timeout' : request.signal?.aborted ? 'aborted' : 'network';
    return { ok: false, failure, timeoutMs, reason: error instanceof Error ? error.message : String(error), cause: error };
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', onAbort);
  }
}
