import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { FakeProviderServer } from '../conformance/fake-server';
import { createEars } from './tone-ears';
import { startFakeWsHost, type Refusal } from './fake-ws-host';

/**
 * A local AssemblyAI Universal-Streaming v3 (`/v3/ws`), written from reference/providers.md §1.3 and §6,
 * never from the adapter.
 *
 * Handshake: the key as the raw `Authorization` header (or `token` query, standing in for a temporary
 * token); `sample_rate` (positive integer), `speech_model` (a known model) are required and `encoding` must be
 * `pcm_s16le` (the fake hears nothing else), else HTTP 400. A wrong or missing key is, as v3 does it, an
 * accepted socket that gets `Error` 1008 and close 1008 (`authFailure: 'handshake'` refuses with 401 instead).
 *
 * Session: `Begin` on open. Binary audio is heard through the tone alphabet, counting audio time (not wall
 * time). Each binary message must hold 50–1000 ms (else `Error` + close 3007 "Input duration violation").
 * After each word a `Turn` (end_of_turn false): `transcript` holds the finalized words, `words[]` all of them
 * with the newest `word_is_final:false`; a `SpeechStarted` before a turn's first word. After
 * `min_turn_silence` (query, default 400 ms) of audio silence the turn ends: a `Turn` with end_of_turn true,
 * and with `format_turns=true` a second, formatted one (capitalised, final period) with the same
 * `turn_order`. `ForceEndpoint` ends the current turn at once (nothing when no word is pending).
 * `Terminate` → the pending turn's end, `Termination`, close 1000. `KeepAlive` resets the inactivity timer;
 * `UpdateConfiguration` applies `format_turns`/`min_turn_silence`. Bad JSON / unknown type → `Error` + close
 * 3006. Inactivity (no audio or KeepAlive for `idleCloseMs`, else the query's `inactivity_timeout` seconds,
 * else never) → `Termination` + close 1000.
 *
 * Not faster than real time (3007 "Audio Transmission Rate Exceeded") is off by default: the conformance
 * suite feeds 8× real time. `enforceRealTime` turns it on (audio received may lead wall time since the first
 * audio by `toleranceMs`).
 */

export interface AssemblyAiFakeOptions {
  /** Close after this long without audio or KeepAlive (overrides the query's `inactivity_timeout`). */
  readonly idleCloseMs?: number;
  /** How a bad key is reported: `frame` (v3: accept, `Error` 1008, close 1008; default) or `handshake` (HTTP 401). */
  readonly authFailure?: 'frame' | 'handshake';
  /** The real-time rule: close 3007 when audio leads wall time by more than `toleranceMs` (default 500). */
  readonly enforceRealTime?: boolean | { readonly toleranceMs: number };
  /** Delay before the bad-key `Error` frame (default 0: sent right after the upgrade). */
  readonly authCheckMs?: number;
}

type ErrorKind = 'auth' | 'bad-request' | 'rate-limit' | 'internal';

export interface AssemblyAiFakeServer extends FakeProviderServer {
  readonly control: FakeProviderServer['control'] & {
    dropAfterWords(words: number): void;
    errorAfterAccept(kind: ErrorKind): void;
    sendRaw(data: string | Uint8Array): void;
    /** Send this v3 error (`Error` frame, then close with the same code) on the open connection(s). */
    fail(code: number, message: string): void;
  };
}

const API_KEY = 'assemblyai-test-key';
const MODELS = new Set(['universal-streaming-english', 'universal-streaming-multilingual', 'u3-rt-pro', 'u3-pro', 'whisper-rt']);
const DEFAULT_MIN_TURN_SILENCE_MS = 400;
const ERRORS: Record<ErrorKind, { code: number; message: string }> = {
  auth: { code: 1008, message: 'Unauthorized Connection: Invalid API key' },
  'bad-request': { code: 3006, message: 'Invalid Message: test' },
  'rate-limit': { code: 3009, message: 'Unauthorized Connection: Too many concurrent sessions' },
  internal: { code: 3005, message: 'Session Cancelled: An error occurred' },
};

function keyOf(headers: IncomingMessage['headers'] | Readonly<Record<string, string>>, url: URL): string | undefined {
  const header = headers.authorization;
  if (typeof header === 'string' && header) return header;
  return url.searchParams.get('token') ?? undefined;
}

function badRequest(message: string): Refusal {
  return { status: 400, body: JSON.stringify({ error: message }) };
}

interface Session {
  fail(code: number, message: string): void;
}

export async function startAssemblyAiFake(options: AssemblyAiFakeOptions = {}): Promise<AssemblyAiFakeServer> {
  let dropAfter: number | undefined;
  let errorNext: ErrorKind | undefined;
  const sessions = new Set<Session>();
  const shouldDrop = (): boolean => {
    if (dropAfter === undefined) return false;
    dropAfter--;
    if (dropAfter > 0) return false;
    dropAfter = undefined;
    return true;
  };

  const host = await startFakeWsHost({
    refusalBody: (status) => JSON.stringify({ error: `refused by the test (${status})` }),
    checkUpgrade(request, url) {
      if (url.pathname !== '/v3/ws') return { status: 404, body: JSON.stringify({ error: `no endpoint ${url.pathname}` }) };
      if (options.authFailure === 'handshake' && keyOf(request.headers, url) !== API_KEY) return { status: 401, body: JSON.stringify({ error: 'Invalid API key' }) };
      const rate = Number(url.searchParams.get('sample_rate'));
      if (!Number.isInteger(rate) || rate <= 0 || rate % 50 !== 0) return badRequest('sample_rate must be a positive integer');
      if ((url.searchParams.get('encoding') ?? 'pcm_s16le') !== 'pcm_s16le') return badRequest('the fake supports encoding=pcm_s16le only');
      const model = url.searchParams.get('speech_model');
      if (!model) return badRequest('speech_model is required');
      if (!MODELS.has(model)) return badRequest(`unknown speech_model ${model}`);
      return undefined;
    },
    onConnection(ws, record, url) {
      const session = startSession(ws, url, keyOf(record.headers, url), options, shouldDrop);
      sessions.add(session);
      ws.on('close', () => sessions.delete(session));
      if (errorNext) {
        const { code, message } = ERRORS[errorNext];
        errorNext = undefined;
        session.fail(code, message);
      }
    },
  });

  return {
    endpoint: host.endpoint,
    apiKey: API_KEY,
    connections: host.connections,
    control: {
      refuseNext: host.refuseNext,
      drop: host.drop,
      dropAfterWords(words) {
        dropAfter = words;
      },
      errorAfterAccept(kind) {
        errorNext = kind;
      },
      sendRaw(data) {
        for (const ws of host.openSockets()) ws.send(data);
      },
      fail(code, message) {
        for (const session of sessions) session.fail(code, message);
      },
    },
    close: host.close,
  };
}

interface PendingWord {
  readonly text: string;
  readonly startMs: number;
  readonly endMs: number;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function startSession(ws: WebSocket, url: URL, key: string | undefined, options: AssemblyAiFakeOptions, shouldDrop: () => boolean): Session {
  const rate = Number(url.searchParams.get('sample_rate'));
  const bytesPerMs = (rate * 2) / 1000;
  const startedAt = performance.now();
  let firstAudioAt: number | undefined;
  let formatTurns = url.searchParams.get('format_turns') === 'true';
  let minTurnSilenceMs = Number(url.searchParams.get('min_turn_silence') ?? DEFAULT_MIN_TURN_SILENCE_MS);
  const inactivityS = Number(url.searchParams.get('inactivity_timeout') ?? NaN);
  const idleCloseMs = options.idleCloseMs ?? (Number.isFinite(inactivityS) ? inactivityS * 1000 : undefined);
  const realTime = options.enforceRealTime ? { toleranceMs: typeof options.enforceRealTime === 'object' ? options.enforceRealTime.toleranceMs : 500 } : undefined;

  // Stream time of the last sound: the turn ends after min_turn_silence of audio after it.
  let lastSoundSec = 0;
  let turnOrder = 0;
  let words: PendingWord[] = [];
  let audioMs = 0;
  let ended = false;
  let idle: NodeJS.Timeout | undefined;

  const send = (message: object): void => {
    if (!ended && ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };

  /** v3 errors: an Error frame, then a close with the same code. */
  const fail = (code: number, message: string): void => {
    if (ended) return;
    send({ type: 'Error', error_code: code, error: message });
    ended = true;
    clearTimeout(idle);
    ws.close(code, message.length > 123 ? 'See Error message for details' : message);
  };

  const wordJson = (w: PendingWord, text: string, final: boolean) => ({ start: w.startMs, end: w.endMs, text, confidence: 0.9, word_is_final: final });

  function partialTurn(): void {
    const finalWords = words.slice(0, -1);
    send({
      type: 'Turn',
      turn_order: turnOrder,
      turn_is_formatted: false,
      end_of_turn: false,
      transcript: finalWords.map((w) => w.text).join(' '),
      end_of_turn_confidence: 0.01,
      utterance: '',
      words: words.map((w, i) => wordJson(w, w.text, i < words.length - 1)),
    });
  }

  function endTurn(): void {
    if (!words.length) return;
    const transcript = words.map((w) => w.text).join(' ');
    send({
      type: 'Turn',
      turn_order: turnOrder,
      turn_is_formatted: false,
      end_of_turn: true,
      transcript,
      end_of_turn_confidence: 0.9,
      utterance: transcript,
      words: words.map((w) => wordJson(w, w.text, true)),
    });
    if (formatTurns) {
      const formatted = words.map((w, i) => (i === 0 ? capitalised(w.text) : w.text) + (i === words.length - 1 ? '.' : ''));
      send({
        type: 'Turn',
        turn_order: turnOrder,
        turn_is_formatted: true,
        end_of_turn: true,
        transcript: formatted.join(' '),
        end_of_turn_confidence: 0.9,
        utterance: '',
        words: words.map((w, i) => wordJson(w, formatted[i]!, true)),
      });
    }
    turnOrder++;
    words = [];
  }

  const ears = createEars(
    {
      onToneStart() {},
      onWord(word) {
        const startMs = Math.round(word.start * 1000);
        if (!words.length) send({ type: 'SpeechStarted', timestamp: startMs });
        words.push({ text: word.word, startMs, endMs: Math.round(word.end * 1000) });
        lastSoundSec = word.end;
        if (shouldDrop()) {
          ended = true;
          ears.stop();
          ws.terminate(); // Mid-utterance, no close frame: the client sees 1006.
          return;
        }
        partialTurn();
      },
      afterFrame(nowSec) {
        if (ears.inWord) lastSoundSec = nowSec;
        else if (words.length && (nowSec - lastSoundSec) * 1000 >= minTurnSilenceMs - 1e-6) endTurn();
      },
    },
    rate,
  );

  function audio(bytes: Uint8Array): void {
    const ms = bytes.byteLength / bytesPerMs;
    if (ms < 50 || ms > 1000) return fail(3007, `Input duration violation: ${Math.round(ms)} ms. Expected between 50 and 1000 ms`);
    audioMs += ms;
    firstAudioAt ??= performance.now();
    if (realTime) {
      const wallMs = performance.now() - firstAudioAt;
      if (audioMs > wallMs + realTime.toleranceMs) {
        return fail(3007, `Audio Transmission Rate Exceeded: Received ${(audioMs / 1000).toFixed(2)} sec. audio in ${(wallMs / 1000).toFixed(2)} sec`);
      }
    }
    ears.push(bytes);
  }

  function terminate(): void {
    ears.flush();
    endTurn();
    send({ type: 'Termination', audio_duration_seconds: Math.round(audioMs / 1000), session_duration_seconds: Math.round((performance.now() - startedAt) / 1000) });
    ended = true;
    clearTimeout(idle);
    ws.close(1000, 'Terminated');
  }

  function armIdle(): void {
    if (idleCloseMs === undefined) return;
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (!ended) terminate();
    }, idleCloseMs);
  }

  function command(text: string): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail(3006, `Invalid JSON: ${text.slice(0, 60)}`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) return fail(3006, `Invalid Message: ${text.slice(0, 60)}`);
    const message = json as Record<string, unknown>;
    switch (message.type) {
      case 'ForceEndpoint':
        ears.flush();
        return endTurn();
      case 'Terminate':
        return terminate();
      case 'KeepAlive':
        return armIdle();
      case 'UpdateConfiguration':
        if (typeof message.format_turns === 'boolean') formatTurns = message.format_turns;
        if (typeof message.min_turn_silence === 'number') minTurnSilenceMs = message.min_turn_silence;
        return;
      default:
        return fail(3006, `Invalid Message Type: ${String(message.type).slice(0, 60)}`);
    }
  }

  if (key !== API_KEY) {
    // v3 accepts the upgrade, then reports the key.
    const reject = () => fail(1008, key ? 'Unauthorized Connection: Invalid API key' : 'Unauthorized Connection: Missing Authorization header');
    if (options.authCheckMs) setTimeout(reject, options.authCheckMs);
    else reject();
  } else {
    send({ type: 'Begin', id: randomUUID(), expires_at: Math.floor(Date.now() / 1000) + 3 * 3600 });
    armIdle();
  }

  ws.on('message', (data, isBinary) => {
    if (ended) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (key !== API_KEY) return;
    if (isBinary) {
      armIdle();
      audio(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return;
    }
    command(bytes.toString('utf8'));
  });
  ws.on('close', () => {
    ended = true;
    clearTimeout(idle);
  });

  return { fail };
}
