import { createEars, type HeardWord } from '../tone-ears';
import { parseJson, seconds, type FakeSession, type SessionContext } from './session';

/** Silence after the last word at which the fake's "model" calls the end of turn. */
const MODEL_EOT_SEC = 0.3;
/** Silence after which an EagerEndOfTurn comes (only with `eager_eot_threshold`). */
const EAGER_EOT_SEC = 0.15;
/** Flux sends an Update about every 0.25 s of audio while a turn is open. */
const UPDATE_EVERY_SEC = 0.25;

/**
 * Flux (/v2/listen), after reference/providers.md §1.2: Connected first; `sequence_id` counts every server
 * message from 0; per turn StartOfTurn (first word), Update (each word, and every 0.25 s of audio), with
 * `eager_eot_threshold` EagerEndOfTurn after a short pause and TurnResumed when speech comes back, then
 * EndOfTurn (trigger "model") after 300 ms of silence (`eot_threshold=1` turns that off, leaving
 * `eot_timeout_ms`, default 5000); `turn_index` increments after each EndOfTurn. ForceEndTurn → EndOfTurn
 * with trigger "manual" (ignored without a turn); Configure → ConfigureSuccess; CloseStream → Updates for
 * what is left, then a close without status code and without EndOfTurn.
 */
export function createFluxSession(ctx: SessionContext): FakeSession {
  const q = ctx.url.searchParams;
  let eotThreshold = numberParam(q.get('eot_threshold')) ?? 0.7;
  let eagerThreshold = numberParam(q.get('eager_eot_threshold'));
  let eotTimeoutSec = (numberParam(q.get('eot_timeout_ms')) ?? 5000) / 1000;

  let sequence = 0;
  let turnIndex = 0;
  let turnWords: HeardWord[] = [];
  let turnStart = 0;
  let lastWordEnd = 0;
  let lastTurnMessageAt = 0;
  let eagerSent = false;
  let closing = false;
  let dropped = false;

  function send(message: Record<string, unknown>): void {
    ctx.send({ ...message, request_id: ctx.requestId, sequence_id: sequence++ });
  }

  function turnInfo(event: string, nowSec: number, extra: Record<string, unknown> = {}): void {
    lastTurnMessageAt = nowSec;
    send({
      type: 'TurnInfo',
      event,
      turn_index: turnIndex,
      audio_window_start: seconds(turnStart),
      audio_window_end: seconds(nowSec),
      transcript: turnWords.map((w) => w.word).join(' '),
      words: turnWords.map((w) => ({ word: w.word, confidence: 0.98, start: seconds(w.start), end: seconds(w.end) })),
      end_of_turn_confidence: event === 'EndOfTurn' ? 0.9 : 0.1,
      ...extra,
    });
  }

  function endOfTurn(nowSec: number, trigger: 'model' | 'manual'): void {
    turnInfo('EndOfTurn', nowSec, { trigger });
    turnIndex++;
    turnWords = [];
    eagerSent = false;
  }

  const ears = createEars({
    onToneStart(atSec) {
      if (eagerSent) {
        eagerSent = false;
        turnInfo('TurnResumed', atSec);
      }
    },
    onWord(word) {
      const first = turnWords.length === 0;
      if (first) turnStart = word.start;
      turnWords.push(word);
      lastWordEnd = word.end;
      turnInfo(first ? 'StartOfTurn' : 'Update', ears.nowSec);
      if (ctx.wordHeard()) {
        // Dropped mid-turn: nothing of the turn was final, it dies with the connection.
        dropped = true;
        ears.stop();
        ctx.terminate();
      }
    },
    afterFrame(nowSec) {
      if (!turnWords.length) return;
      if (ears.inWord) {
        if (nowSec - lastTurnMessageAt >= UPDATE_EVERY_SEC) turnInfo('Update', nowSec);
        return;
      }
      const silenceSec = nowSec - lastWordEnd;
      const eotSec = eotThreshold >= 1 ? eotTimeoutSec : Math.min(MODEL_EOT_SEC, eotTimeoutSec);
      if (silenceSec >= eotSec - 1e-9) return endOfTurn(nowSec, 'model');
      if (eagerThreshold !== undefined && !eagerSent && silenceSec >= EAGER_EOT_SEC) {
        eagerSent = true;
        return turnInfo('EagerEndOfTurn', nowSec);
      }
      if (nowSec - lastTurnMessageAt >= UPDATE_EVERY_SEC) turnInfo('Update', nowSec);
    },
  });

  send({ type: 'Connected' });

  return {
    onBinary(data) {
      if (!closing) ears.push(data);
    },
    onText(text) {
      if (closing) return;
      const message = parseJson(text);
      switch (message?.type) {
        case 'ForceEndTurn':
          ears.flush();
          if (!dropped && ctx.open && turnWords.length) endOfTurn(ears.nowSec, 'manual');
          return;
        case 'Configure': {
          const thresholds = (message.thresholds ?? {}) as Record<string, unknown>;
          eotThreshold = numberParam(thresholds.eot_threshold) ?? eotThreshold;
          eagerThreshold = numberParam(thresholds.eager_eot_threshold) ?? eagerThreshold;
          eotTimeoutSec = (numberParam(thresholds.eot_timeout_ms) ?? eotTimeoutSec * 1000) / 1000;
          send({
            type: 'ConfigureSuccess',
            thresholds: { eot_threshold: eotThreshold, eager_eot_threshold: eagerThreshold, eot_timeout_ms: eotTimeoutSec * 1000 },
            keyterms: Array.isArray(message.keyterms) ? message.keyterms : [],
          });
          return;
        }
        case 'CloseStream':
          closing = true;
          // Updates for what is left, no EndOfTurn, and a close without status code (documented Flux behaviour).
          ears.flush();
          if (!dropped && ctx.open) ctx.close();
          return;
        default:
          // KeepAlive is not documented for Flux: recorded by the server, ignored here.
          return;
      }
    },
    onClose() {
      ears.stop();
    },
  };
}

function numberParam(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}
