import { createAudioConverter } from '../audio/convert';
import { type AudioFormat, type AudioFrame, durationMs, PIPELINE_FORMAT, sameFormat } from '../audio/format';
import { createFrameAssembler } from '../audio/frame-assembler';
import type { ResamplerFactory } from '../audio/resampler';
import type { TtsBlock } from '../config/assistant';
import type { Clock } from '../contracts/clock';
import { ProviderError } from '../contracts/errors';
import type { TurnMetrics } from '../contracts/observer';
import type { TextToSpeech, TtsEvent, TtsStream } from '../contracts/tts';
import type { ResolvedProvider } from '../providers/registry';
import type { SpokenText } from './spoken-text';

const MAX_TTS_CHUNK_MS = 120_000;

/** Which provider of a chain is in use; shared by every turn of a call so a failed provider stays skipped. */
export interface ProviderCursor {
  index: number;
}

export interface SpeechOutputDeps {
  readonly chain: readonly ResolvedProvider<TextToSpeech, TtsBlock>[];
  readonly cursor: ProviderCursor;
  readonly channelFormat: AudioFormat;
  readonly resamplers: ResamplerFactory;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly spoken: SpokenText;
  readonly metrics: TurnMetrics;
  /** A 20 ms frame in the channel's format. */
  onFrame(frame: AudioFrame): void;
  /** Every piece is voiced (or cannot be): no more frames will come. */
  onEnd(): void;
  onError(provider: string, error: ProviderError, action: 'retry' | 'fallback' | 'ignored'): void;
}

/** Ask the TTS for the channel's own format when it can make it, so audio passes straight through. */
export function pickTtsFormat(offered: readonly AudioFormat[], channelFormat: AudioFormat): AudioFormat {
  return offered.find((f) => sameFormat(f, channelFormat)) ?? offered.find((f) => sameFormat(f, PIPELINE_FORMAT)) ?? offered[0] ?? PIPELINE_FORMAT;
}

interface OpenStream {
  readonly provider: ResolvedProvider<TextToSpeech, TtsBlock>;
  readonly stream: TtsStream;
  readonly format: AudioFormat;
  /** TTS piece index → index in SpokenText. */
  readonly pieceMap: number[];
  readonly convert: ReturnType<typeof createAudioConverter>;
  readonly assembler: ReturnType<typeof createFrameAssembler>;
}

/**
 * The TTS side of one assistant turn: text pieces in, paced-ready frames out, converted once to the
 * channel's format. A failing provider hands the not-yet-voiced pieces to the next one in the chain.
 */
export function createSpeechOutput(deps: SpeechOutputDeps) {
  let current: OpenStream | undefined;
  let ended = false;
  let finished = false;
  let cancelled = false;
  let retried = false;

  function open(): OpenStream | undefined {
    const provider = deps.chain[deps.cursor.index];
    if (!provider) return undefined;
    const format = pickTtsFormat(provider.impl.capabilities.outputFormats, deps.channelFormat);
    const block = provider.block;
    const pieceMap: number[] = [];
    // Events may arrive before `stream()` returns: they wait for the stream's record.
    const ref: { current?: OpenStream } = {};
    const stream = provider.impl.stream(
      {
        voice: block.voice,
        model: block.model,
        language: block.language,
        format,
        endpoint: block.endpoint,
        apiKey: provider.apiKey,
        options: block.options,
        signal: deps.signal,
      },
      (event) => {
        const s = ref.current;
        if (s) onEvent(s, event);
        else queueMicrotask(() => ref.current && onEvent(ref.current, event));
      },
    );
    const opened: OpenStream = {
      provider,
      stream,
      format,
      pieceMap,
      convert: createAudioConverter(format, deps.channelFormat, deps.resamplers),
      // A batch TTS may deliver a whole sentence in one chunk.
      assembler: createFrameAssembler(deps.channelFormat, { maxBufferedMs: MAX_TTS_CHUNK_MS }),
    };
    ref.current = opened;
    deps.metrics.providers.tts = provider.impl.id;
    return opened;
  }

  function pushTo(s: OpenStream, spokenIndex: number, text: string): void {
    deps.metrics.ttsRequest ??= deps.clock.now();
    s.pieceMap[s.stream.push(text)] = spokenIndex;
  }

  function finish(): void {
    if (finished) return;
    finished = true;
    if (current) {
      const tail = current.assembler.flush(true);
      if (tail) deps.onFrame(tail);
      current.convert.destroy();
    }
    deps.onEnd();
  }

  function onEvent(s: OpenStream, event: TtsEvent): void {
    // Output of a cancelled turn or a replaced stream never goes further.
    if (cancelled || finished || s !== current) return;
    switch (event.type) {
      case 'audio': {
        deps.metrics.ttsFirstAudio ??= deps.clock.now();
        const spokenIndex = s.pieceMap[event.textIndex];
        if (spokenIndex !== undefined) deps.spoken.addAudio(spokenIndex, durationMs(s.format, event.data.byteLength));
        const overflow = s.assembler.push(s.convert.convert(event.data), deps.onFrame);
        if (overflow) deps.onError(s.provider.impl.id, new ProviderError('TTS_CHUNK_TOO_LARGE', overflow.message, false, 'protocol'), 'ignored');
        return;
      }
      case 'words':
        deps.spoken.addWords(event.words);
        return;
      case 'done':
        if (ended) finish();
        return;
      case 'error':
        fail(s, event.error);
        return;
    }
  }

  function fail(s: OpenStream, error: ProviderError): void {
    s.stream.cancel();
    const tail = s.assembler.flush(true);
    if (tail) deps.onFrame(tail);
    s.convert.destroy();
    current = undefined;
    const sameAgain = error.retryable && !retried;
    if (sameAgain) retried = true;
    else deps.cursor.index++;
    const next = open();
    deps.onError(s.provider.impl.id, error, next ? (sameAgain ? 'retry' : 'fallback') : 'ignored');
    if (!next) {
      finish();
      return;
    }
    current = next;
    deps.spoken.startNewStream();
    for (const piece of deps.spoken.unvoicedPieces()) pushTo(next, piece.index, piece.text);
    if (ended) next.stream.end();
  }

  return {
    push(text: string): void {
      if (cancelled || finished) return;
      const spokenIndex = deps.spoken.addPiece(text);
      current ??= open();
      if (!current) return finish();
      pushTo(current, spokenIndex, text);
    },
    end(): void {
      if (ended || cancelled) return;
      ended = true;
      if (!current) finish();
      else current.stream.end();
    },
    cancel(): void {
      if (cancelled) return;
      cancelled = true;
      if (current) {
        current.stream.cancel();
        current.convert.destroy();
      }
    },
    get started() {
      return current !== undefined;
    },
  };
}

export type SpeechOutput = ReturnType<typeof createSpeechOutput>;
