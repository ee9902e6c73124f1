import { ProviderError } from '../../contracts/errors';

/**
 * Deepgram's failures as ProviderErrors, shared by listen (v1, v2) and speak: refused handshakes are plain
 * HTTP statuses with a JSON body (`err_code`, `err_msg`), broken streams are close frames whose reason names
 * the cause (`NET-0001`, `DATA-0000`), and Flux reports errors in an `Error` frame.
 */

const MAX_DETAIL_CHARS = 200;

/** `INVALID_AUTH: Invalid credentials.` out of a refusal body, or the body's start when it is not JSON. */
function describeBody(body: string): string {
  const trimmed = body.trim();
  if (!trimmed) return '';
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (parsed && typeof parsed === 'object') {
      const { err_code: code, err_msg: message, message: altMessage } = parsed as Record<string, unknown>;
      const text = [code, message ?? altMessage].filter((part) => typeof part === 'string' && part).join(': ');
      if (text) return text.slice(0, MAX_DETAIL_CHARS);
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): quote its start.
  }
  return trimmed.slice(0, MAX_DETAIL_CHARS);
}

export function classifyDeepgramHandshake(status: number | undefined, body: string): ProviderError {
  const detail = describeBody(body);
  const said = detail ? ` (${status} ${detail})` : status === undefined ? '' : ` (${status})`;
  if (status === undefined) {
    return new ProviderError('DEEPGRAM_UNAVAILABLE', `could not reach deepgram (network error or handshake timeout)${detail ? `: ${detail}` : ''}`, true, 'unavailable');
  }
  if (status === 401 || status === 403) {
    return new ProviderError('DEEPGRAM_AUTH', `the API key was rejected${said}. Check the deepgram credential of the project.`, false, 'auth');
  }
  if (status === 402) {
    return new ProviderError('DEEPGRAM_QUOTA', `the deepgram project has no credit left${said}. Top up the account or use another credential.`, false, 'quota');
  }
  if (status === 429) {
    return new ProviderError('DEEPGRAM_RATE_LIMIT', `too many concurrent streams or requests${said}`, true, 'rate-limit');
  }
  if (status === 408) {
    return new ProviderError('DEEPGRAM_TIMEOUT', `the handshake timed out${said}`, true, 'timeout');
  }
  if (status >= 500) {
    return new ProviderError('DEEPGRAM_UNAVAILABLE', `deepgram is unavailable${said}`, true, 'unavailable');
  }
  return new ProviderError(
    'DEEPGRAM_BAD_REQUEST',
    `the request was refused${said}. Check the model, language, format and options of the deepgram provider block.`,
    false,
    'bad-request',
  );
}

/** A close nobody asked for. `undefined`: a normal end (1000). */
export function classifyDeepgramClose(code: number, reason: string): ProviderError | undefined {
  if (code === 1000) return undefined;
  const said = reason ? `${code} ${reason}` : `${code}`;
  // DATA-0000: the audio could not be decoded; older docs say 1002, others 1008, so the reason decides.
  if (/DATA-0000/i.test(reason)) {
    return new ProviderError('DEEPGRAM_BAD_AUDIO', `deepgram could not decode the audio (${said}); the stream must be linear16 16 kHz mono`, false, 'bad-request');
  }
  if (/NET-000[01]/i.test(reason)) {
    // NET-0001: no audio within the timeout; NET-0000: no result within it. A new connection fixes both.
    return new ProviderError('DEEPGRAM_TIMEOUT', `deepgram closed the stream after a timeout (${said})`, true, 'timeout');
  }
  if (code === 1002 || code === 1003 || code === 1007 || code === 1008 || code === 1009) {
    return new ProviderError('DEEPGRAM_BAD_REQUEST', `deepgram refused what was sent (${said})`, false, 'bad-request');
  }
  // 1006 (connection dropped), 1001, 1005, 1011, 1012-1014 and anything unknown: a new connection may work.
  return new ProviderError('DEEPGRAM_CLOSED', `the connection closed unexpectedly (${said})`, true, 'unavailable');
}

/** An `Error` frame's code (Flux, and speak should it send one) → a ProviderError. */
export function deepgramErrorFrame(code: string | undefined, description: string | undefined): ProviderError {
  const said = [code, description].filter(Boolean).join(': ') || 'no detail';
  const upper = (code ?? '').toUpperCase();
  if (/AUTH|UNAUTHORI[SZ]ED|FORBIDDEN/.test(upper)) return new ProviderError('DEEPGRAM_AUTH', `deepgram rejected the credentials (${said})`, false, 'auth');
  if (/RATE|TOO_MANY|LIMIT/.test(upper)) return new ProviderError('DEEPGRAM_RATE_LIMIT', `deepgram is rate-limiting (${said})`, true, 'rate-limit');
  if (/INVALID|BAD_REQUEST|UNSUPPORTED|UNPROCESSABLE/.test(upper)) {
    return new ProviderError('DEEPGRAM_BAD_REQUEST', `deepgram refused the request (${said})`, false, 'bad-request');
  }
  return new ProviderError('DEEPGRAM_SERVER_ERROR', `deepgram reported an error (${said})`, true, 'unavailable');
}

/**
 * A frame we cannot read. The socket base counts and skips these (kind 'protocol'): one bad frame must not end
 * a call. Retryable for any other consumer: a new connection may well speak properly again.
 */
export function deepgramProtocolError(what: string, frame: string): ProviderError {
  return new ProviderError('DEEPGRAM_PROTOCOL', `${what}: ${frame.slice(0, MAX_DETAIL_CHARS)}`, true, 'protocol');
}
