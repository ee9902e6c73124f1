/** What went wrong, in words a visitor understands, with a stable code for the page's own handling. */
export interface WidgetError {
  readonly code: WidgetErrorCode;
  readonly message: string;
  /** The call is over because of it (the widget is in state `error`). */
  readonly fatal: boolean;
  /** The server's or the browser's own words, for developers. */
  readonly detail?: string;
}

export type WidgetErrorCode =
  | 'MIC_PERMISSION_DENIED'
  | 'MIC_NOT_FOUND'
  | 'MIC_UNAVAILABLE'
  | 'MIC_LOST'
  | 'AUDIO_UNSUPPORTED'
  | 'SESSION_REFUSED'
  | 'NETWORK'
  | 'CONNECTION_LOST'
  | 'CALL_REFUSED'
  | 'SERVER_ERROR';

const MESSAGES: Record<WidgetErrorCode, string> = {
  MIC_PERMISSION_DENIED: 'Microphone access was blocked. Allow the microphone for this site in the browser (the icon in the address bar), then try again, or type your message instead.',
  MIC_NOT_FOUND: 'No microphone was found. Connect one and try again, or type your message instead.',
  MIC_UNAVAILABLE: 'The microphone could not be opened (another application may be using it). Close that application and try again, or type your message instead.',
  MIC_LOST: 'The microphone stopped working (it may have been unplugged). The call goes on: type your message, or restart the call.',
  AUDIO_UNSUPPORTED: 'This browser cannot run the voice widget (it needs Web Audio worklets on a secure https page).',
  SESSION_REFUSED: 'The assistant could not be reached with this widget configuration.',
  NETWORK: 'Could not connect to the assistant. Check your internet connection and try again.',
  CONNECTION_LOST: 'The connection was lost and could not be restored in time. Start a new call.',
  CALL_REFUSED: 'The call could not be started.',
  SERVER_ERROR: 'The assistant ran into a problem and the call stopped. Please try again in a moment.',
};

export function widgetError(code: WidgetErrorCode, options: { fatal?: boolean; detail?: string; message?: string } = {}): WidgetError {
  return {
    code,
    message: options.message ?? MESSAGES[code],
    fatal: options.fatal ?? true,
    ...(options.detail ? { detail: options.detail } : {}),
  };
}

/** A getUserMedia rejection in plain words. */
export function microphoneError(error: unknown): WidgetError {
  const name = (error as { name?: string } | undefined)?.name;
  const detail = String((error as { message?: string } | undefined)?.message ?? error);
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return widgetError('MIC_PERMISSION_DENIED', { detail });
    case 'NotFoundError':
    case 'OverconstrainedError':
      return widgetError('MIC_NOT_FOUND', { detail });
    case 'NotReadableError':
    case 'AbortError':
      return widgetError('MIC_UNAVAILABLE', { detail });
    default:
      return widgetError('AUDIO_UNSUPPORTED', { detail });
  }
}

/** Why the server refused a session (POST /v1/talk/web/session), from its status and error body. */
export function sessionError(status: number, body: { error?: { code?: string; message?: string } } | undefined): WidgetError {
  const code = body?.error?.code;
  const detail = body?.error?.message ? `${code ?? status}: ${body.error.message}` : `HTTP ${status}`;
  if (status === 401) return widgetError('SESSION_REFUSED', { detail, message: 'This widget’s key is not valid (unknown or revoked publishable key). The site owner needs to update it.' });
  if (status === 403) return widgetError('SESSION_REFUSED', { detail, message: 'This website is not allowed to use this assistant (the publishable key does not list this origin).' });
  if (status === 404) return widgetError('SESSION_REFUSED', { detail, message: 'This assistant does not exist (check data-assistant).' });
  if (status === 422) return widgetError('SESSION_REFUSED', { detail, message: 'This assistant cannot take calls right now.' });
  if (status === 503 || status === 429) return widgetError('SESSION_REFUSED', { detail, message: 'The assistant is busy right now. Please try again in a moment.' });
  return widgetError(status >= 500 ? 'SERVER_ERROR' : 'SESSION_REFUSED', { detail });
}

/** A close code that ends the call for good (no re-attach), in plain words. */
export function closeError(code: number, serverMessage: string | undefined): WidgetError {
  const detail = serverMessage ? `${code}: ${serverMessage}` : `close ${code}`;
  switch (code) {
    case 4401:
    case 4409:
      return widgetError('CALL_REFUSED', { detail, message: 'This call is already connected elsewhere (for example in another tab).' });
    case 4404:
      return widgetError('CALL_REFUSED', { detail, message: 'This call session does not exist. Start a new call.' });
    case 4410:
      return widgetError('CALL_REFUSED', { detail, message: 'This call has already ended or its link expired. Start a new call.' });
    case 4400:
    case 1008:
      return widgetError('CALL_REFUSED', { detail, message: 'The assistant did not accept this widget’s settings (a protocol mismatch). Update the widget.' });
    case 1011: {
      // The server's fatal error names why its call could not start (`CODE: message`): a set-up problem of the
      // assistant (a provider that cannot run here, a missing credential) is not fixed by trying again.
      const code = /^([A-Z][A-Z0-9_]+): /.exec(serverMessage ?? '')?.[1];
      if (code && code !== 'INTERNAL') {
        return widgetError('CALL_REFUSED', { detail, message: `This assistant is not set up to take calls here (${serverMessage!.slice(code.length + 2)}).` });
      }
      return widgetError('SERVER_ERROR', { detail });
    }
    default:
      return widgetError('SERVER_ERROR', { detail });
  }
}
