import { ConfigError } from '../contracts/errors';

/**
 * The TwiML documents the runtime answers Twilio with (telephony reference §1.2). Every string that reaches
 * the XML goes through `escapeXml`, so caller-controlled values (parameters, spoken text) cannot change the
 * document's structure.
 */

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

export interface ConnectStreamTwimlOptions {
  /** The media WebSocket URL: `wss://` (Twilio rejects other schemes with error 31922; `ws://` is allowed for local fakes). */
  readonly streamUrl: string;
  /** Per-call data; comes back in the `start` message's `customParameters`. Twilio strips query strings from the URL. */
  readonly parameters?: Readonly<Record<string, string>>;
  /** The stream's `name` attribute. */
  readonly name?: string;
  /** Stream status callback (`stream-started`, `stream-stopped`, `stream-error`). */
  readonly statusCallback?: string;
  readonly statusCallbackMethod?: 'GET' | 'POST';
}

/**
 * `<Connect><Stream>`: a bidirectional media stream; the call stays in it until the WebSocket closes.
 * Throws a ConfigError for a URL Twilio would refuse or silently change (not ws/wss, or with a query string:
 * per-call data belongs in `parameters` or a path segment).
 */
export function connectStreamTwiml(options: ConnectStreamTwimlOptions): string {
  const { streamUrl } = options;
  if (!/^wss?:\/\/[^/?#]+/i.test(streamUrl)) {
    throw new ConfigError('TWILIO_STREAM_URL', `the media stream URL must start with wss:// (ws:// for local tests), got "${streamUrl}"`);
  }
  if (/[?#]/.test(streamUrl)) {
    throw new ConfigError(
      'TWILIO_STREAM_URL',
      `Twilio drops query strings from the stream URL "${streamUrl}"; pass per-call data as parameters or a path segment`,
    );
  }
  let attributes = ` url="${escapeXml(streamUrl)}"`;
  if (options.name !== undefined) attributes += ` name="${escapeXml(options.name)}"`;
  if (options.statusCallback !== undefined) {
    attributes += ` statusCallback="${escapeXml(options.statusCallback)}" statusCallbackMethod="${options.statusCallbackMethod ?? 'POST'}"`;
  }
  const parameters = Object.entries(options.parameters ?? {})
    .map(([name, value]) => `<Parameter name="${escapeXml(name)}" value="${escapeXml(value)}"/>`)
    .join('');
  const stream = parameters ? `<Stream${attributes}>${parameters}</Stream>` : `<Stream${attributes}/>`;
  return `${XML_DECLARATION}<Response><Connect>${stream}</Connect></Response>`;
}

/** Refuses the call before answering it (no charge); `busy` plays a busy tone, `rejected` a not-in-service one. */
export function rejectTwiml(reason: 'rejected' | 'busy' = 'rejected'): string {
  return `${XML_DECLARATION}<Response><Reject reason="${reason}"/></Response>`;
}

export function hangupTwiml(): string {
  return `${XML_DECLARATION}<Response><Hangup/></Response>`;
}

export interface SayOptions {
  /** Twilio voice, e.g. `alice`, `Polly.Joanna`. */
  readonly voice?: string;
  /** BCP-47, e.g. `en-US`. */
  readonly language?: string;
}

/** Says `text` to the caller, then hangs up: the clear way to fail a call (misconfiguration, over capacity). */
export function sayAndHangupTwiml(text: string, options: SayOptions = {}): string {
  let attributes = '';
  if (options.voice !== undefined) attributes += ` voice="${escapeXml(options.voice)}"`;
  if (options.language !== undefined) attributes += ` language="${escapeXml(options.language)}"`;
  return `${XML_DECLARATION}<Response><Say${attributes}>${escapeXml(text)}</Say><Hangup/></Response>`;
}

const XML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  // Character references, so attribute-value normalisation does not turn them into spaces.
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

/**
 * Escapes text for XML 1.0 element content and (double- or single-quoted) attribute values. Characters XML 1.0
 * cannot carry at all are replaced: C0 controls other than tab/LF/CR and U+FFFE/U+FFFF are dropped, unpaired
 * surrogates become U+FFFD.
 */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '') // eslint-disable-line no-control-regex
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(/[&<>"'\t\n\r]/g, (char) => XML_ESCAPES[char] ?? char);
}
