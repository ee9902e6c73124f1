import { encodeBase64 } from './base64';

/**
 * `X-Twilio-Signature` (telephony reference §1.6, as twilio-node's `validateRequest` computes it):
 *
 *   data = url exactly as Twilio requested it (query string included, never re-encoded)
 *        + for each form key in sorted order: key + value   (repeated keys: each unique value, sorted)
 *   signature = base64(HMAC-SHA1(authToken, UTF-8(data)))
 *
 * A signature is accepted for the URL as given and for its default-port twin (`https://h/x` ↔
 * `https://h:443/x`, `http`/`ws` ↔ `:80`, `wss` ↔ `:443`), because Twilio signs either form.
 * JSON-bodied webhooks carry `bodySHA256=<hex>` in the URL: the signature covers the URL with no params and
 * the hash must match the raw body.
 * Web Crypto only (crypto.subtle), so it runs unchanged in workerd and Node.
 */

/** Form parameters: a parsed body (repeated keys kept) or a plain record (an array value = a repeated key). */
export type TwilioParams = URLSearchParams | Readonly<Record<string, string | readonly string[]>>;

export interface VerifyTwilioSignatureInput {
  readonly authToken: string;
  /** The full URL Twilio requested, as it requested it: public base URL + path + query string. */
  readonly url: string;
  /** POST form parameters, every one received (Twilio adds parameters without notice). None for GET. */
  readonly params?: TwilioParams;
  /** The raw body, needed when the URL carries `bodySHA256` (JSON-bodied webhooks). */
  readonly body?: string;
  /** The `X-Twilio-Signature` header (missing → false). */
  readonly signature: string | null | undefined;
}

export interface SignTwilioRequestInput {
  readonly authToken: string;
  readonly url: string;
  readonly params?: TwilioParams;
}

/** True when `signature` is Twilio's signature of this request. Never throws; a missing token or header is false. */
export async function verifyTwilioSignature(input: VerifyTwilioSignatureInput): Promise<boolean> {
  const { authToken, url, signature } = input;
  if (!authToken || !signature) return false;
  const bodyHash = bodySha256Of(url);
  let params = input.params;
  if (bodyHash !== undefined) {
    if (input.body === undefined) return false;
    params = undefined;
  }
  try {
    const key = await hmacKey(authToken);
    let valid = false;
    for (const candidate of twilioSignatureUrlVariants(url)) {
      const expected = await sign(key, twilioSignaturePayload(candidate, params));
      // No early exit: every variant costs the same whether or not an earlier one matched.
      valid = constantTimeEqual(signature, expected) || valid;
    }
    if (bodyHash !== undefined) {
      const actual = await twilioBodySha256(input.body ?? '');
      valid = constantTimeEqual(bodyHash.toLowerCase(), actual) && valid;
    }
    return valid;
  } catch {
    return false; // Web Crypto refused the key or data: not a valid signature, whatever the reason
  }
}

/** The signature Twilio would send for this request (for the simulator, fakes and tests). */
export async function signTwilioRequest(input: SignTwilioRequestInput): Promise<string> {
  if (!input.authToken) throw new TypeError('signTwilioRequest: authToken must not be empty');
  return sign(await hmacKey(input.authToken), twilioSignaturePayload(input.url, input.params));
}

/** Hex SHA-256 of a raw body, as Twilio puts it in `bodySHA256`. */
export async function twilioBodySha256(body: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(body)));
  let hex = '';
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/** `url` with `bodySHA256=<hex of body>` appended to its query string, as Twilio builds JSON webhook URLs. */
export async function withTwilioBodySha256(url: string, body: string): Promise<string> {
  const hash = await twilioBodySha256(body);
  const hashAt = url.indexOf('#');
  const base = hashAt < 0 ? url : url.slice(0, hashAt);
  const separator = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${separator}bodySHA256=${hash}${hashAt < 0 ? '' : url.slice(hashAt)}`;
}

/** The string that gets signed: the URL, then each sorted key with its value(s). */
export function twilioSignaturePayload(url: string, params?: TwilioParams): string {
  if (!params) return url;
  const byKey = new Map<string, string[]>();
  const add = (key: string, value: string) => {
    const values = byKey.get(key);
    if (values) values.push(value);
    else byKey.set(key, [value]);
  };
  if (params instanceof URLSearchParams) {
    params.forEach((value, key) => add(key, value));
  } else {
    for (const [key, value] of Object.entries(params)) {
      if (typeof value === 'string') add(key, value);
      else for (const item of value) add(key, item);
    }
  }
  // Default JavaScript sort (UTF-16 code units), as twilio-node does; identical to code-point order for the
  // ASCII keys Twilio sends.
  let data = url;
  for (const key of [...byKey.keys()].sort()) {
    const values = byKey.get(key)!;
    if (values.length === 1) data += key + values[0];
    else for (const value of [...new Set(values)].sort()) data += key + value;
  }
  return data;
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { https: '443', wss: '443', http: '80', ws: '80' };

/**
 * The URL as given plus its default-port twin, found by editing the authority in place so the path and query
 * string stay byte for byte what Twilio requested. Non-default ports and unknown schemes have no twin.
 */
export function twilioSignatureUrlVariants(url: string): string[] {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(url);
  if (!match) return [url];
  const [, scheme = '', authority = '', rest = ''] = match;
  const defaultPort = DEFAULT_PORTS[scheme.toLowerCase()];
  if (!defaultPort) return [url];
  const at = authority.lastIndexOf('@');
  const userInfo = authority.slice(0, at + 1);
  const hostPort = authority.slice(at + 1);
  // The port follows the last ':' unless that ':' is inside an IPv6 literal ([::1]).
  const colon = hostPort.lastIndexOf(':');
  const hasPort = colon >= 0 && colon > hostPort.lastIndexOf(']');
  const host = hasPort ? hostPort.slice(0, colon) : hostPort;
  const port = hasPort ? hostPort.slice(colon + 1) : '';
  if (!host) return [url];
  if (!hasPort || port === '') return [url, `${scheme}://${userInfo}${host}:${defaultPort}${rest}`];
  if (port === defaultPort) return [url, `${scheme}://${userInfo}${host}${rest}`];
  return [url];
}

/** The `bodySHA256` query parameter, when the URL has one. */
function bodySha256Of(url: string): string | undefined {
  const queryAt = url.indexOf('?');
  if (queryAt < 0) return undefined;
  const hashAt = url.indexOf('#', queryAt);
  const query = new URLSearchParams(url.slice(queryAt + 1, hashAt < 0 ? undefined : hashAt));
  return query.get('bodySHA256') ?? undefined;
}

const utf8 = new TextEncoder();

function hmacKey(authToken: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', utf8.encode(authToken), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
}

async function sign(key: CryptoKey, data: string): Promise<string> {
  return encodeBase64(new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8.encode(data))));
}

/** Compares in time that depends only on the lengths (a signature's length is public: always 28). */
function constantTimeEqual(a: string, b: string): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) difference |= (a.charCodeAt(i) ^ b.charCodeAt(i)) | 0;
  return difference === 0;
}
