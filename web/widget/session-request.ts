import { sessionError, widgetError, type WidgetError } from './errors';

export interface WebSessionRequest {
  /** The server's origin (media node or edge): `https://voice.example.com`. */
  readonly baseUrl: string;
  readonly publishableKey: string;
  readonly assistantId: string;
  readonly variables?: Readonly<Record<string, string>>;
  readonly fetch?: typeof fetch;
}

export interface WebSession {
  readonly contextId: string;
  readonly conversationId: string;
  /** The call's WebSocket URL (`wss://…/v1/talk/web/ctx/{contextId}`), on a media node or the edge alike. */
  readonly url: string;
  readonly expiresAt: string;
}

/** `POST /v1/talk/web/session` with the publishable key (the browser adds the page's Origin, which the key must allow). */
export async function requestWebSession(request: WebSessionRequest): Promise<WebSession | WidgetError> {
  const doFetch = request.fetch ?? globalThis.fetch.bind(globalThis);
  const base = request.baseUrl.replace(/\/+$/, '');
  let response: Response;
  try {
    response = await doFetch(`${base}/v1/talk/web/session`, {
      method: 'POST',
      headers: { authorization: `Bearer ${request.publishableKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ assistantId: request.assistantId, ...(request.variables ? { variables: request.variables } : {}) }),
      credentials: 'omit',
      // A server that never answers must not leave the widget connecting for ever.
      signal: AbortSignal.timeout(SESSION_TIMEOUT_MS),
    });
  } catch (error) {
    const detail = String((error as Error)?.message ?? error);
    if ((error as Error)?.name === 'TimeoutError') return widgetError('NETWORK', { detail: `no answer to the session request within ${SESSION_TIMEOUT_MS / 1000} s` });
    // The server grants CORS only to origins its key allows, so a refused page sees a bare "Failed to fetch",
    // like a network outage. A server that still answers a no-cors request is reachable: the refusal is this page's.
    if (await reachable(doFetch, base)) return widgetError('SESSION_REFUSED', { detail, message: REFUSED_ORIGIN });
    return widgetError('NETWORK', { detail });
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (response.status !== 201) return sessionError(response.status, body as { error?: { code?: string; message?: string } } | undefined);
  const session = body as Partial<WebSession> | undefined;
  if (!session || typeof session.url !== 'string' || typeof session.contextId !== 'string') {
    return widgetError('SERVER_ERROR', { detail: 'the session answer carries no url' });
  }
  return session as WebSession;
}

const SESSION_TIMEOUT_MS = 15_000;

const REFUSED_ORIGIN = 'This website is not allowed to use this assistant (its publishable key does not list this site, or the key is not valid). The site owner needs to update it.';

/** Whether the server answers at all (an opaque no-cors answer counts). */
async function reachable(doFetch: typeof fetch, base: string): Promise<boolean> {
  try {
    await doFetch(`${base}/healthz/`, { mode: 'no-cors', credentials: 'omit', cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}

export const isWidgetError = (value: unknown): value is WidgetError => typeof value === 'object' && value !== null && 'code' in value && 'message' in value && 'fatal' in value;
