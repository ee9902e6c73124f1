import { alawEncode, mulawEncode } from '../../../../shared/audio/g711';
import { splitWords, synthesizeWords } from '../../../fakes/tones';
import { parseJson, type FakeSession, type SessionContext } from './session';

export interface SpeakPacing {
  /** Audio per binary frame. */
  readonly chunkMs: number;
  /** How much faster than real time audio is sent (Infinity: all at once). */
  readonly realtimeFactor: number;
}

export interface FlushLimit {
  readonly count: number;
  readonly windowMs: number;
}

/** What a speak URL may ask for (reference §2.1 and §5). */
export const SPEAK_RATES: Readonly<Record<string, readonly number[]>> = {
  linear16: [8000, 16_000, 24_000, 32_000, 48_000],
  mulaw: [8000, 16_000],
  alaw: [8000, 16_000],
};

export function speakFormat(q: URLSearchParams): { encoding: string; sampleRate: number } | string {
  const encoding = q.get('encoding') ?? 'linear16';
  const rates = SPEAK_RATES[encoding];
  if (!rates) return `encoding "${encoding}" is not supported on the speak WebSocket (linear16, mulaw, alaw)`;
  const sampleRate = Number(q.get('sample_rate') ?? (encoding === 'linear16' ? 24_000 : 8000));
  if (!rates.includes(sampleRate)) return `sample_rate ${sampleRate} is not supported for ${encoding} (${rates.join(', ')})`;
  return { encoding, sampleRate };
}

function encode(pcm: Int16Array, encoding: string): Uint8Array {
  if (encoding === 'linear16') return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
  const out = new Uint8Array(pcm.length);
  if (encoding === 'mulaw') mulawEncode(pcm, out);
  else alawEncode(pcm, out);
  return out;
}

/**
 * Aura (/v1/speak), after reference/providers.md §2.1: Metadata on open; Speak buffers text; Flush voices the
 * buffer (every word as its tone, in the URL's encoding and rate) as binary frames paced faster than real
 * time, then `Flushed` with the flush's sequence id (0, 1, 2... per socket); flushes are voiced in order;
 * past `flushLimit` per window a flush is ignored and a Warning says so; Clear drops the buffer, the queued
 * flushes and the audio not yet sent, then `Cleared`; Close voices the flushes already queued (unflushed
 * text is dropped: the reference leaves this open) and closes 1000. No word timings.
 */
export function createSpeakSession(ctx: SessionContext, format: { encoding: string; sampleRate: number }, pacing: SpeakPacing, flushLimit: FlushLimit): FakeSession {
  const bytesPerMs = (format.sampleRate / 1000) * (format.encoding === 'linear16' ? 2 : 1);
  const chunkBytes = Math.max(2, Math.round(pacing.chunkMs * bytesPerMs) & ~1);
  let buffer = '';
  const queue: { words: string[]; sequenceId: number }[] = [];
  let flushSequence = 0;
  let clearSequence = 0;
  const flushTimes: number[] = [];
  /** Bumped by Clear: a pending send of an older generation stops. */
  let generation = 0;
  let sending = false;
  let closeWhenIdle = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  ctx.send({ type: 'Metadata', request_id: ctx.requestId, model_name: ctx.url.searchParams.get('model') ?? 'aura-2-thalia-en', model_version: 'fake', model_uuid: ctx.requestId });

  function pump(): void {
    if (sending || !ctx.open) return;
    const job = queue.shift();
    if (!job) {
      if (closeWhenIdle) ctx.close(1000);
      return;
    }
    sending = true;
    const audio = job.words.length ? encode(synthesizeWords(job.words, format.sampleRate).pcm, format.encoding) : new Uint8Array(0);
    const mine = generation;
    let offset = 0;
    const step = () => {
      timer = undefined;
      if (mine !== generation || !ctx.open) return;
      if (offset < audio.length) {
        ctx.sendBinary(audio.subarray(offset, offset + chunkBytes));
        offset += chunkBytes;
        if (Number.isFinite(pacing.realtimeFactor)) {
          timer = setTimeout(step, pacing.chunkMs / pacing.realtimeFactor);
          return;
        }
        return step();
      }
      ctx.send({ type: 'Flushed', sequence_id: job.sequenceId });
      sending = false;
      pump();
    };
    step();
  }

  return {
    onBinary() {
      // Speak takes text only; a binary frame means nothing.
    },
    onText(text) {
      const message = parseJson(text);
      if (closeWhenIdle) return;
      switch (message?.type) {
        case 'Speak':
          if (typeof message.text === 'string') buffer += message.text;
          return;
        case 'Flush': {
          const now = Date.now();
          while (flushTimes.length && now - flushTimes[0]! >= flushLimit.windowMs) flushTimes.shift();
          if (flushTimes.length >= flushLimit.count) {
            ctx.send({
              type: 'Warning',
              description: `Exceeded the flush limit of ${flushLimit.count} per ${flushLimit.windowMs / 1000} seconds; this flush was not processed`,
              code: 'FLUSH_LIMIT_EXCEEDED',
            });
            return;
          }
          flushTimes.push(now);
          queue.push({ words: splitWords(buffer), sequenceId: flushSequence++ });
          buffer = '';
          return pump();
        }
        case 'Clear':
          generation++;
          if (timer) clearTimeout(timer);
          timer = undefined;
          sending = false;
          queue.length = 0;
          buffer = '';
          ctx.send({ type: 'Cleared', sequence_id: clearSequence++ });
          return;
        case 'Close':
          closeWhenIdle = true;
          return pump();
        default:
          return;
      }
    },
    onClose() {
      generation++;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
