import WebSocket from 'ws';

/** A raw `ws` client for testing fakes directly: every message kept, waits by predicate, close observed. */
export interface RawClient {
  readonly ws: WebSocket;
  /** Text frames parsed as JSON (non-JSON text kept as the string), binary as Buffer. */
  readonly messages: unknown[];
  readonly closed: Promise<{ code: number; reason: string }>;
  send(data: string | Uint8Array | object): void;
  /** Resolves with the first message (from `from` on) that matches, or rejects after `timeoutMs`. */
  waitFor<T = Record<string, unknown>>(match: (m: Record<string, unknown>) => boolean, timeoutMs?: number, from?: number): Promise<T>;
}

export async function connectRaw(url: string, headers: Record<string, string> = {}): Promise<RawClient> {
  const ws = new WebSocket(url, { headers });
  const messages: unknown[] = [];
  const listeners = new Set<() => void>();
  ws.on('message', (data, isBinary) => {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) messages.push(buffer);
    else {
      const text = buffer.toString('utf8');
      try {
        messages.push(JSON.parse(text));
      } catch {
        messages.push(text);
      }
    }
    for (const listener of [...listeners]) listener();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body })));
    });
  });
  ws.on('error', () => {});
  return {
    ws,
    messages,
    closed,
    send(data) {
      ws.send(typeof data === 'string' || data instanceof Uint8Array ? data : JSON.stringify(data));
    },
    waitFor(match, timeoutMs = 3000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = from; i < messages.length; i++) {
            const m = messages[i];
            if (m && typeof m === 'object' && !Buffer.isBuffer(m) && match(m as Record<string, unknown>)) {
              listeners.delete(check);
              clearTimeout(timer);
              resolve(m as never);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages.filter((m) => !Buffer.isBuffer(m))).slice(0, 600)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

/** The HTTP status and body of a refused upgrade (rejects if the upgrade succeeds). */
export async function refusedWith(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  try {
    const client = await connectRaw(url, headers);
    client.ws.terminate();
  } catch (error) {
    const e = error as { status?: number; body?: string };
    if (e.status !== undefined) return { status: e.status, body: e.body ?? '' };
    throw error;
  }
  throw new Error(`the upgrade to ${url} was accepted`);
}
