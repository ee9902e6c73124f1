import { createToneDecoder } from '../../fakes/tones';

/** A word the fake heard, with its place in the stream (seconds since the connection's first sample). */
export interface HeardWord {
  readonly word: string;
  readonly start: number;
  readonly end: number;
}


/**
 * What an STT fake hears: PCM16 bytes (16 kHz unless told) of any chunking in, 20 ms frames through the tone
 * decoder, words out with start/end in stream time. Time is counted in samples, never on the wall clock, so
 * audio fed faster than real time gives the same results.
 */
export function createEars(handlers: {
  /** A tone began after silence (what a VAD would call speech starting). */
  onToneStart(atSec: number): void;
  onWord(word: HeardWord): void;
  /** After every whole 20 ms frame, with the stream time at its end. */
  afterFrame(nowSec: number): void;
}, rateHz = 16_000) {
  const RATE_HZ = rateHz;
  const FRAME_SAMPLES = rateHz / 50;
  const FRAME_BYTES = FRAME_SAMPLES * 2;
  const pending = new Uint8Array(FRAME_BYTES);
  let fill = 0;
  let samples = 0;
  let frameStartSec = 0;
  let runStartSec = 0;
  let wordEnded = false;
  let stopped = false;

  const decoder = createToneDecoder(RATE_HZ, (word) => {
    wordEnded = true;
    // The decoder ends a word on the frame after it (silence or another tone): the word ended where that frame began.
    handlers.onWord({ word, start: runStartSec, end: frameStartSec });
  });

  function frame(): void {
    frameStartSec = samples / RATE_HZ;
    const wasInWord = decoder.inWord;
    wordEnded = false;
    decoder.push(new Int16Array(pending.buffer.slice(0, FRAME_BYTES)));
    samples += FRAME_SAMPLES;
    if (decoder.inWord && (!wasInWord || wordEnded)) runStartSec = frameStartSec;
    if (decoder.inWord && !wasInWord && !stopped) handlers.onToneStart(frameStartSec);
    if (!stopped) handlers.afterFrame(samples / RATE_HZ);
  }

  return {
    push(bytes: Uint8Array): void {
      let offset = 0;
      while (offset < bytes.length && !stopped) {
        const take = Math.min(FRAME_BYTES - fill, bytes.length - offset);
        pending.set(bytes.subarray(offset, offset + take), fill);
        fill += take;
        offset += take;
        if (fill === FRAME_BYTES) {
          fill = 0;
          frame();
        }
      }
    },
    /** End a word still sounding (a finalize or the end of the stream counts it). */
    flush(): void {
      frameStartSec = samples / RATE_HZ;
      decoder.flush();
    },
    /** No more events (the connection was dropped mid-chunk). */
    stop(): void {
      stopped = true;
    },
    get nowSec(): number {
      return samples / RATE_HZ;
    },
    get inWord(): boolean {
      return decoder.inWord;
    },
  };
}
