import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { FakeProviderServer } from '../conformance/fake-server';
import { createEars } from './tone-ears';
import { startFakeWsHost } from './fake-ws-host';

/**
 * A local Rev.ai streaming STT (`/speechtotext/v1/stream`), written from reference/providers.md §1.8 (and
 * §0: Rev refuses a bad token on the upgrade), never from the adapter.
 *
 * Handshake: `access_token` query (the only key form; a missing or wrong one → HTTP 401, or with
 * `authFailure: 'close'` an accepted socket closed 4001). `content_type` must be raw interleaved S16LE mono
 * (`audio/x-raw;layout=interleaved;rate=<n>;format=S16LE;channels=1`), else the socket is accepted and
 * closed 4002 (the fake hears nothing else).
 *
 * Session: `{"type":"connected","id"}` on open. Binary audio of any size is heard through the tone alphabet,
 * counting audio time. After each word a `partial` (bare `text` elements of the open segment, `ts`/`end_ts`
 * in seconds); after 300 ms of audio silence a `final`: the first word capitalised, `punct` " " between words,
 * a final "." element, text elements with `ts`/`end_ts`/`confidence`. The text frame `EOS` → the pending
 * final, then close 1000; any other text frame → close 4002. No keep-alive exists: no audio for
 * `idleCloseMs` (default 60 s; the real idle limit is not documented) → close 1000 "idle timeout".
 * `errorAfterAccept`: auth 4001, bad-request 4002, rate-limit 4013, internal 1011; `closeAfterAccept` any code
 * (4003 insufficient credits, ...).
 */

export interface RevAiFakeOptions {
  /** Close after this long without audio (default 60 s). */
  readonly idleCloseMs?: number;
  /** How a bad token is reported: `handshake` (HTTP 401, default) or `close` (accepted, then close 4001). */
  readonly authFailure?: 'handshake' | 'close';
}

type ErrorKind = 'auth' | 'bad-request' | 'rate-limit' | 'internal';

export interface RevAiFakeServer extends FakeProviderServer {
  readonly control: FakeProviderServer['control'] & {
    dropAfterWords(words: number): void;
    errorAfterAccept(kind: ErrorKind): void;
    /** Accept the next upgrade, then close it at once with this code and reason. */
    closeAfterAccept(code: number, reason: string): void;
    sendRaw(data: string | Uint8Array): void;
  };
}

const ACCESS_TOKEN = 'revai-test-token';
const FINAL_SILENCE_MS = 300;
const CLOSES: Record<ErrorKind, { code: number; reason: string }> = {
  auth: { code: 4001, reason: 'Unauthorized' },
  'bad-request': { code: 4002, reason: 'Bad request' },
  'rate-limit': { code: 4013, reason: 'Too many concurrent connections' },
  internal: { code: 1011, reason: 'Internal server error' },
};

/** `audio/x-raw;layout=interleaved;rate=16000;format=S16LE;channels=1` → its rate, or undefined if not that shape. */
function rawPcmRate(contentType: string | null): number | undefined {
  if (!contentType) return undefined;
  const [mime, ...params] = contentType.split(';').map((p) => p.trim());
  if (mime !== 'audio/x-raw') return undefined;
  const fields = new Map(params.map((p) => p.split('=').map((s) => s.trim()) as [string, string]));
  const rate = Number(fields.get('rate'));
  if (fields.get('layout') !== 'interleaved' || fields.get('format') !== 'S16LE' || fields.get('channels') !== '1') return undefined;
  return Number.isInteger(rate) && rate >= 8000 && rate % 50 === 0 ? rate : undefined;
}

export async function startRevAiFake(options: RevAiFakeOptions = {}): Promise<RevAiFakeServer> {
  let dropAfter: number | undefined;
  let closeNext: { code: number; reason: string } | undefined;
  const shouldDrop = (): boolean => {
    if (dropAfter === undefined) return false;
    dropAfter--;
    if (dropAfter > 0) return false;
    dropAfter = undefined;
    return true;
  };

  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ title: `refused by the test (${status})`, status }),
    checkUpgrade(_request, url) {
      if (url.pathname !== '/speechtotext/v1/stream') return { status: 404, body: JSON.stringify({ title: 'Not Found', status: 404 }) };
      if (options.authFailure !== 'close' && url.searchParams.get('access_token') !== ACCESS_TOKEN) {
        return { status: 401, body: JSON.stringify({ title: 'Authorization has been denied for this request', status: 401 }) };
      }
      return undefined;
    },
    onConnection(ws, _record, url) {
      const forced = closeNext;
      closeNext = undefined;
      if (forced) return void ws.close(forced.code, forced.reason);
      if (url.searchParams.get('access_token') !== ACCESS_TOKEN) return void ws.close(4001, 'Unauthorized');
      const rate = rawPcmRate(url.searchParams.get('content_type'));
      if (rate === undefined) return void ws.close(4002, 'content_type must be audio/x-raw;layout=interleaved;rate=<n>;format=S16LE;channels=1');
      session(ws, rate, options.idleCloseMs ?? 60_000, shouldDrop);
    },
  });

  return {
    endpoint: host.endpoint,
    apiKey: ACCESS_TOKEN,
    connections: host.connections,
    control: {
      refuseNext: host.refuseNext,
      drop: host.drop,
      dropAfterWords(words) {
        dropAfter = words;
      },
      errorAfterAccept(kind) {
        closeNext = CLOSES[kind];
      },
      closeAfterAccept(code, reason) {
        closeNext = { code, reason };
      },
      sendRaw(data) {
        for (const ws of host.openSockets()) ws.send(data);
      },
    },
    close: host.close,
  };
}

interface Word {
  readonly value: string;
  readonly startS: number;
  readonly endS: number;
}

function session(ws: WebSocket, rate: number, idleCloseMs: number, shouldDrop: () => boolean): void {
  let pending: Word[] = [];
  // Stream time of the last sound: a final follows FINAL_SILENCE_MS of audio after it.
  let lastSoundSec = 0;
  let ended = false;
  let idle: NodeJS.Timeout | undefined;

  const send = (message: object): void => {
    if (!ended && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const span = () => ({ ts: pending[0]!.startS, end_ts: pending.at(-1)!.endS });

  const ears = createEars(
    {
      onToneStart() {},
      onWord(word) {
        pending.push({ value: word.word, startS: word.start, endS: word.end });
        lastSoundSec = word.end;
        if (shouldDrop()) {
          ended = true;
          ears.stop();
          ws.terminate(); // Mid-utterance, no close frame: the client sees 1006.
          return;
        }
        send({ type: 'partial', ...span(), elements: pending.map((w) => ({ type: 'text', value: w.value })) });
      },
      afterFrame(nowSec) {
        if (ears.inWord) lastSoundSec = nowSec;
        else if (pending.length && nowSec - lastSoundSec >= FINAL_SILENCE_MS / 1000 - 1e-9) final();
      },
    },
    rate,
  );

  function final(): void {
    if (!pending.length) return;
    const elements: object[] = [];
    pending.forEach((w, i) => {
      if (i > 0) elements.push({ type: 'punct', value: ' ' });
      const value = i === 0 ? w.value.charAt(0).toUpperCase() + w.value.slice(1) : w.value;
      elements.push({ type: 'text', value, ts: w.startS, end_ts: w.endS, confidence: 0.95 });
    });
    elements.push({ type: 'punct', value: '.' });
    send({ type: 'final', ...span(), speaker_id: 0, elements });
    pending = [];
  }

  function close(code: number, reason: string): void {
    if (ended) return;
    ended = true;
    clearTimeout(idle);
    ws.close(code, reason);
  }

  function armIdle(): void {
    clearTimeout(idle);
    idle = setTimeout(() => close(1000, 'idle timeout: no audio received'), idleCloseMs);
  }

  send({ type: 'connected', id: randomUUID().replace(/-/g, '').slice(0, 12) });
  armIdle();
  ws.on('message', (data, isBinary) => {
    if (ended) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      armIdle();
      ears.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return;
    }
    const text = bytes.toString('utf8');
    if (text !== 'EOS') return close(4002, `unexpected text message "${text.slice(0, 40)}"`);
    ears.flush();
    final();
    close(1000, 'End of stream');
  });
  ws.on('close', () => {
    ended = true;
    clearTimeout(idle);
  });
}
