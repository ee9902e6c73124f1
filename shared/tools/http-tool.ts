import { hasPlaceholderInOrigin, type CredentialHeaderRef, type ToolAction } from '../config/assistant';
import { fillTemplate } from '../config/template';
import { blockedReason, formatIp, inCidr, parseCidr, parseIp, type Cidr } from './ip';

/**
 * The `http` tool: one outbound request per call of the tool, its (JSON) answer given back to the model.
 * Web-standard `fetch` only, so it runs on the edge and on media nodes.
 *
 * SSRF guard: the target (and every redirect target) must not be a loopback, private (RFC 1918, fc00::/7),
 * link-local (169.254/16 with the cloud metadata address, fe80::/10), 0.0.0.0/8, CGNAT (100.64/10),
 * multicast or reserved address, unless the host or its address is in the allow-list (`TOOL_HTTP_ALLOW`,
 * e.g. `127.0.0.1,10.0.0.0/8,api.internal`). Host names are checked through an injected `resolve`: the
 * media node passes `dns.lookup(host, { all: true })`; on the edge there is no DNS API, so only literal IP
 * addresses (and `localhost`) can be checked there (Workers' fetch cannot reach private networks anyway).
 * The check happens before the request and `fetch` resolves the name again: a DNS answer that changes in
 * between (rebinding) is not caught; keep such hosts out of tools' URLs, or allow-list only what you mean.
 *
 * Redirects are followed by hand (at most 3), each target checked again; credential headers are dropped
 * when a redirect leaves the original origin.
 */

export class ToolError extends Error {
  override readonly name = 'ToolError';
}

export type ResolveHost = (host: string) => Promise<readonly string[]>;

export interface HostAllowList {
  readonly hosts: ReadonlySet<string>;
  readonly ranges: readonly Cidr[];
}

export const EMPTY_ALLOW_LIST: HostAllowList = { hosts: new Set(), ranges: [] };

/** `127.0.0.1,10.0.0.0/8,api.internal` → an allow-list; a malformed entry throws (a typo must not open the guard wider). */
export function parseHostAllowList(text: string | undefined): HostAllowList {
  const hosts = new Set<string>();
  const ranges: Cidr[] = [];
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    const range = parseCidr(entry.replace(/^\[(.*)\](\/\d+)?$/, '$1$2'));
    if (range) ranges.push(range);
    else if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(entry)) hosts.add(entry);
    else throw new Error(`TOOL_HTTP_ALLOW: "${raw.trim()}" is neither a host name, an IP address nor a CIDR range`);
  }
  return { hosts, ranges };
}

export interface HttpGuard {
  readonly allow: HostAllowList;
  /** Host name → addresses; absent on the edge (only literal addresses are checked there). */
  readonly resolve?: ResolveHost;
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself is left to settle unobserved). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/**
 * Throws a ToolError saying why `url` may not be requested. `signal` bounds the DNS lookup (the tool's
 * time-out or the call's cancel): a resolver that never answers does not hold the tool call.
 */
export async function assertReachable(url: URL, guard: HttpGuard, signal?: AbortSignal): Promise<void> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ToolError(`only http and https URLs can be requested, not ${url.protocol}`);
  if (url.username || url.password) throw new ToolError('URLs with credentials in them are refused');
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (guard.allow.hosts.has(host)) return;
  const literal = parseIp(host);
  const check = (address: Uint8Array, shown: string) => {
    if (guard.allow.ranges.some((range) => inCidr(address, range))) return;
    const reason = blockedReason(address);
    if (reason) throw new ToolError(`refused: ${shown} is ${reason} (add it to TOOL_HTTP_ALLOW to allow it)`);
  };
  if (literal) return check(literal, host);
  if (host === 'localhost' || host.endsWith('.localhost')) throw new ToolError(`refused: ${host} is a loopback name (add it to TOOL_HTTP_ALLOW to allow it)`);
  if (!guard.resolve) return;
  let addresses: readonly string[];
  try {
    addresses = await untilAborted(guard.resolve(host), signal);
  } catch (error) {
    if (signal?.aborted) throw new ToolError(`the lookup of ${host} was cut short (time-out or cancel)`);
    throw new ToolError(`could not resolve ${host}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (addresses.length === 0) throw new ToolError(`could not resolve ${host}: no addresses`);
  for (const text of addresses) {
    const address = parseIp(text);
    if (!address) throw new ToolError(`could not resolve ${host}: "${text}" is not an address`);
    check(address, `${host} (${formatIp(address)})`);
  }
}

export interface HttpToolDeps extends HttpGuard {
  readonly fetch?: typeof fetch;
  /** The stored text of a project credential by name (undefined: no such credential). */
  readonly credential?: (name: string) => Promise<string | undefined>;
}

type HttpAction = Extract<ToolAction, { type: 'http' }>;

const MAX_REDIRECTS = 3;
const ERROR_BODY_BYTES = 1000;

function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * Fills `{{name}}`: call variables first (the model cannot override them), then the call's arguments.
 * A placeholder left unfilled is an error the model reads.
 */
function fill(template: string, args: Readonly<Record<string, unknown>>, variables: Readonly<Record<string, string>>, encode: (v: string) => string, where: string): string {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(args)) values[k] = encode(valueText(v));
  for (const [k, v] of Object.entries(variables)) values[k] = encode(v);
  const filled = fillTemplate(template, values);
  const missing = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/.exec(filled);
  if (missing) throw new ToolError(`the ${where} needs "${missing[1]}", which neither the arguments nor the call variables give`);
  return filled;
}

function fillBody(template: unknown, args: Readonly<Record<string, unknown>>, variables: Readonly<Record<string, string>>): unknown {
  if (typeof template === 'string') {
    const whole = /^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$/.exec(template);
    if (whole) {
      const name = whole[1]!;
      if (Object.hasOwn(variables, name)) return variables[name];
      if (Object.hasOwn(args, name)) return args[name];
    }
    return fill(template, args, variables, (v) => v, 'body');
  }
  if (Array.isArray(template)) return template.map((item) => fillBody(item, args, variables));
  if (template && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillBody(v, args, variables)]));
  }
  return template;
}

async function credentialHeader(ref: CredentialHeaderRef, deps: HttpToolDeps): Promise<string> {
  const stored = deps.credential ? await deps.credential(ref.credential) : undefined;
  if (stored === undefined) throw new ToolError(`the tool's credential "${ref.credential}" is not stored in the project as an http credential (tools can use only credentials stored with provider "http")`);
  let secret: string | undefined = stored;
  if (stored.startsWith('{')) {
    try {
      const fields = JSON.parse(stored) as Record<string, unknown>;
      const value = fields[ref.field];
      secret = typeof value === 'string' ? value : undefined;
    } catch {
      secret = stored;
    }
  }
  if (!secret) throw new ToolError(`the tool's credential "${ref.credential}" has no "${ref.field}" field`);
  return ref.prefix + secret;
}

/** Reads at most `max` bytes; `truncated` says whether there was more. */
async function readBounded(response: Response, max: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  if (!response.body) return { bytes: new Uint8Array(0), truncated: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = max - size;
      if (value.byteLength > room) {
        chunks.push(value.subarray(0, room));
        size += room;
        truncated = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    if (truncated) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes, truncated };
}

/** Text of at most `max` bytes, never cut inside a UTF-8 sequence. */
function decodeText(bytes: Uint8Array, truncated: boolean): string {
  let end = bytes.length;
  if (truncated) {
    // Drop a trailing partial sequence: back up over continuation bytes to the lead byte.
    let i = end - 1;
    while (i >= 0 && (bytes[i]! & 0xc0) === 0x80) i--;
    if (i >= 0) {
      const lead = bytes[i]!;
      const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (i + length > end) end = i;
    }
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, end));
}

/**
 * Runs one request; resolves with the text the model gets: the JSON body (compact) when it is whole JSON,
 * else `{"status", "body", "truncated"?}`. A non-2xx answer, a refused target or a time-out throws a
 * ToolError (the executor turns it into `{"error": ...}` for the model).
 */
export async function runHttpTool(
  action: HttpAction,
  args: Readonly<Record<string, unknown>>,
  variables: Readonly<Record<string, string>>,
  deps: HttpToolDeps,
  signal: AbortSignal,
): Promise<string> {
  if (hasPlaceholderInOrigin(action.url)) throw new ToolError('placeholders are not allowed in the scheme, host or port of the URL');
  let url: URL;
  try {
    url = new URL(fill(action.url, args, variables, encodeURIComponent, 'URL'));
  } catch (error) {
    if (error instanceof ToolError) throw error;
    throw new ToolError(`the URL is not valid once filled in: ${error instanceof Error ? error.message : String(error)}`);
  }
  const headers = new Headers();
  const secretHeaders = new Set<string>();
  for (const [name, value] of Object.entries(action.headers)) {
    if (typeof value === 'string') {
      const text = fill(value, args, variables, (v) => v, `header ${name}`);
      if (/[\r\n]/.test(text)) throw new ToolError(`the header ${name} would contain a line break`);
      headers.set(name, text);
    } else {
      headers.set(name, await credentialHeader(value, deps));
      secretHeaders.add(name.toLowerCase());
    }
  }
  if (!headers.has('accept')) headers.set('accept', 'application/json');
  let method: string = action.method;
  let body: string | undefined;
  if (method !== 'GET' && method !== 'DELETE') {
    body = JSON.stringify(action.body === undefined ? args : fillBody(action.body, args, variables));
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  } else if (action.body !== undefined) {
    body = JSON.stringify(fillBody(action.body, args, variables));
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }

  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, action.timeoutMs);
  const onAbort = () => controller.abort();
  if (signal.aborted) controller.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const doFetch = deps.fetch ?? fetch;
  const origin = url.origin;
  try {
    for (let redirects = 0; ; redirects++) {
      try {
        await assertReachable(url, deps, controller.signal);
      } catch (error) {
        if (controller.signal.aborted) throw abortedError(timedOut, action.timeoutMs);
        throw error;
      }
      if (controller.signal.aborted) throw abortedError(timedOut, action.timeoutMs);
      let response: Response;
      try {
        response = await doFetch(url, { method, headers, body, redirect: 'manual', signal: controller.signal });
      } catch (error) {
        if (timedOut || signal.aborted) throw abortedError(timedOut, action.timeoutMs);
        throw new ToolError(`could not reach ${url.host}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel().catch(() => undefined);
        if (redirects >= MAX_REDIRECTS) throw new ToolError(`${url.host} redirected more than ${MAX_REDIRECTS} times`);
        let next: URL;
        try {
          next = new URL(response.headers.get('location')!, url);
        } catch {
          throw new ToolError(`${url.host} redirected to an invalid URL`);
        }
        if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          headers.delete('content-type');
        }
        if (next.origin !== origin) for (const name of secretHeaders) headers.delete(name);
        url = next;
        continue;
      }
      try {
        if (!response.ok) {
          const { bytes, truncated } = await readBounded(response, ERROR_BODY_BYTES);
          const text = decodeText(bytes, truncated).trim();
          throw new ToolError(`${url.host} answered HTTP ${response.status}${text ? `: ${text}` : ''}`);
        }
        const { bytes, truncated } = await readBounded(response, action.responseMaxBytes);
        const text = decodeText(bytes, truncated);
        if (!truncated) {
          try {
            return JSON.stringify(JSON.parse(text));
          } catch {
            // Not JSON: given as text below.
          }
        }
        return JSON.stringify({ status: response.status, body: text, ...(truncated ? { truncated: true } : {}) });
      } catch (error) {
        if (error instanceof ToolError) throw error;
        if (timedOut || signal.aborted) throw abortedError(timedOut, action.timeoutMs);
        throw new ToolError(`reading the answer of ${url.host} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

function abortedError(timedOut: boolean, timeoutMs: number): Error {
  if (timedOut) return new ToolError(`no answer within ${timeoutMs} ms`);
  const e = new Error('the tool call was cancelled');
  e.name = 'AbortError';
  return e;
}
