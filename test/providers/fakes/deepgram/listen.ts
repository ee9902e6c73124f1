import { createEars, type HeardWord } from '../tone-ears';
import { parseJson, seconds, type FakeSession, type SessionContext } from './session';

/** Nova finalises a window that grows this long even while the caller keeps talking. */
const MAX_WINDOW_SEC = 5;
const WORD_CONFIDENCE = 0.99;

/**
 * Nova live (/v1/listen), after reference/providers.md §1.1: interim Results per recognised word (the current
 * window's words), a final (`is_final` + `speech_final`) after `endpointing` ms of silence (300 when the query
 * turns endpointing off, then without `speech_final`), SpeechStarted with `vad_events=true`, UtteranceEnd
 * with `utterance_end_ms` (and interim results), Finalize → a final with `from_finalize: true` when audio
 * is buffered, CloseStream (or an empty binary frame, its historic meaning) → the last final + Metadata +
 * close 1000. KeepAlive is accepted silently. Unknown text messages are recorded and ignored.
 */
export function createListenSession(ctx: SessionContext): FakeSession {
  const q = ctx.url.searchParams;
  const interimResults = q.get('interim_results') === 'true';
  const endpointing = q.get('endpointing');
  const speechFinal = endpointing !== 'false';
  const endpointingSec = (endpointing && endpointing !== 'false' ? Number(endpointing) : 300) / 1000;
  const utteranceEnd = q.get('utterance_end_ms');
  const utteranceEndSec = utteranceEnd && interimResults ? Number(utteranceEnd) / 1000 : undefined;
  const vadEvents = q.get('vad_events') === 'true';
  const model = q.get('model') ?? 'nova-3';

  let windowStart = 0;
  let windowWords: HeardWord[] = [];
  let lastWordEnd: number | undefined;
  let utteranceOpen = false;
  let speaking = false;
  let closing = false;
  let dropped = false;

  function results(isFinal: boolean, nowSec: number, extra: { speech_final?: boolean; from_finalize?: boolean } = {}): void {
    const transcript = windowWords.map((w) => w.word).join(' ');
    ctx.send({
      type: 'Results',
      channel_index: [0, 1],
      duration: seconds(nowSec - windowStart),
      start: seconds(windowStart),
      is_final: isFinal,
      speech_final: extra.speech_final ?? false,
      from_finalize: extra.from_finalize ?? false,
      channel: {
        alternatives: [
          {
            transcript,
            confidence: windowWords.length ? 0.98 : 0,
            words: windowWords.map((w) => ({
              word: w.word,
              start: seconds(w.start),
              end: seconds(w.end),
              confidence: WORD_CONFIDENCE,
              punctuated_word: w.word,
            })),
          },
        ],
      },
      metadata: { request_id: ctx.requestId, model_info: { name: `general-${model}`, version: 'fake', arch: model }, model_uuid: ctx.requestId },
      entities: [],
    });
  }

  function finalizeWindow(nowSec: number, extra: { speech_final?: boolean; from_finalize?: boolean }): void {
    results(true, nowSec, extra);
    windowStart = nowSec;
    windowWords = [];
  }

  const ears = createEars({
    onToneStart(atSec) {
      if (vadEvents && !speaking) ctx.send({ type: 'SpeechStarted', channel: [0, 1], timestamp: seconds(atSec) });
      speaking = true;
    },
    onWord(word) {
      windowWords.push(word);
      lastWordEnd = word.end;
      utteranceOpen = true;
      if (interimResults) results(false, ears.nowSec);
      if (ctx.wordHeard()) {
        // Dropped mid-utterance: the words of this window were never final, they die with the connection.
        dropped = true;
        ears.stop();
        ctx.terminate();
      }
    },
    afterFrame(nowSec) {
      if (ears.inWord || lastWordEnd === undefined) return;
      const silenceSec = nowSec - lastWordEnd;
      if (windowWords.length && silenceSec >= endpointingSec - 1e-9) {
        finalizeWindow(nowSec, { speech_final: speechFinal });
        speaking = false;
      } else if (windowWords.length && nowSec - windowStart >= MAX_WINDOW_SEC) {
        finalizeWindow(nowSec, {});
      }
      if (utteranceEndSec !== undefined && utteranceOpen && silenceSec >= utteranceEndSec - 1e-9) {
        ctx.send({ type: 'UtteranceEnd', channel: [0, 1], last_word_end: seconds(lastWordEnd) });
        utteranceOpen = false;
      }
    },
  });

  function closeStream(): void {
    if (closing) return;
    closing = true;
    ears.flush();
    if (dropped || !ctx.open) return;
    if (windowWords.length) finalizeWindow(ears.nowSec, {});
    ctx.send({
      type: 'Metadata',
      transaction_key: 'deprecated',
      request_id: ctx.requestId,
      sha256: '0'.repeat(64),
      created: new Date().toISOString(),
      duration: seconds(ears.nowSec),
      channels: 1,
    });
    ctx.close(1000);
  }

  return {
    onBinary(data) {
      if (closing) return;
      if (data.byteLength === 0) return closeStream();
      ears.push(data);
    },
    onText(text) {
      if (closing) return;
      const message = parseJson(text);
      switch (message?.type) {
        case 'Finalize':
          ears.flush();
          if (dropped || !ctx.open) return;
          // Only buffered audio yields a result (Deepgram: "only if there was buffered audio").
          if (ears.nowSec > windowStart) finalizeWindow(ears.nowSec, { from_finalize: true });
          speaking = false;
          return;
        case 'CloseStream':
          return closeStream();
        default:
          // KeepAlive (no reply) and anything unknown.
          return;
      }
    },
    onClose() {
      ears.stop();
    },
  };
}
