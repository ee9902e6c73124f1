import type { AudioFormat } from '../audio/format';
import type { SttBlock, TtsBlock } from '../config/assistant';
import { fillTemplate } from '../config/template';
import { ProviderError } from '../contracts/errors';
import type { SpeechToText, SttEvent, SttSession } from '../contracts/stt';
import type { TextToSpeech, TtsEvent } from '../contracts/tts';
import type { ResolvedProvider } from '../providers/registry';
import { createChunker } from './chunker';
import { pickTtsFormat } from './speech-output';

/** A greeting synthesised ahead of the call: the TTS events of each piece, in order. */
export interface RecordedSpeech {
  readonly text: string;
  readonly pieces: readonly string[];
  readonly format: AudioFormat;
  readonly events: readonly TtsEvent[];
}

/** The greeting's speakable pieces, exactly as the engine's `say` cuts them. */
export function speakablePieces(text: string, variables: Readonly<Record<string, string>>): string[] {
  const chunker = createChunker();
  const filled = fillTemplate(text, variables);
  return [...chunker.push(filled), ...chunker.flush()];
}

/**
 * Synthesise `text` now (while the phone rings) with the first provider of the chain, in the channel's
 * format when the provider can make it. Resolves when the provider says `done`; rejects on its error or
 * after `timeoutMs`.
 */
export function recordSpeech(
  provider: ResolvedProvider<TextToSpeech, TtsBlock>,
  text: string,
  variables: Readonly<Record<string, string>>,
  channelFormat: AudioFormat,
  timeoutMs = 10_000,
): Promise<RecordedSpeech> {
  const pieces = speakablePieces(text, variables);
  const format = pickTtsFormat(provider.impl.capabilities.outputFormats, channelFormat);
  const abort = new AbortController();
  return new Promise<RecordedSpeech>((resolve, reject) => {
    const events: TtsEvent[] = [];
    const timer = setTimeout(() => {
      abort.abort();
      stream.cancel();
      reject(new Error(`PREWARM_TIMEOUT: the greeting was not synthesised within ${timeoutMs} ms`));
    }, timeoutMs);
    const stream = provider.impl.stream(
      {
        voice: provider.block.voice,
        model: provider.block.model,
        language: provider.block.language,
        format,
        endpoint: provider.block.endpoint,
        apiKey: provider.apiKey,
        options: provider.block.options,
        signal: abort.signal,
      },
      (event) => {
        if (event.type === 'error') {
          clearTimeout(timer);
          reject(event.error);
          return;
        }
        if (event.type === 'done') {
          clearTimeout(timer);
          resolve({ text, pieces, format, events });
          return;
        }
        // Copy: the provider may reuse its buffers once the event returns.
        events.push(event.type === 'audio' ? { ...event, data: event.data.slice() } : event);
      },
    );
    for (const piece of pieces) stream.push(piece);
    stream.end();
  });
}

/**
 * A TextToSpeech that replays a recording: the engine speaks the prepared greeting through its normal path
 * (playout, marks, barge-in, history), and the first frame leaves the moment the call starts. Text other
 * than the recorded pieces is refused with an error, so a mismatch falls back to the real TTS chain.
 */
export function replayTts(recorded: RecordedSpeech, id = 'prewarmed'): TextToSpeech & { readonly id: string } {
  return {
    id,
    capabilities: { wordTimings: recorded.events.some((e) => e.type === 'words'), outputFormats: [recorded.format], edgeCapable: true },
    stream(_options, onEvent) {
      let next = 0;
      let cancelled = false;
      const emit = (event: TtsEvent) => queueMicrotask(() => !cancelled && onEvent(event));
      return {
        push(text) {
          const index = next++;
          if (recorded.pieces[index] !== text) {
            emit({ type: 'error', error: new ProviderError('PREWARM_MISMATCH', 'the text differs from the prepared greeting', false, 'bad-request') });
            return index;
          }
          for (const event of recorded.events) {
            if ((event.type === 'audio' && event.textIndex === index) || (event.type === 'words' && index === 0)) emit(event);
          }
          return index;
        },
        end() {
          emit({ type: 'done' });
        },
        cancel() {
          cancelled = true;
        },
      };
    },
  };
}

/** An STT session opened while the phone rang; the engine adopts it instead of connecting at call start. */
export interface EarlyStt {
  readonly providerId: string;
  readonly session: SttSession;
  /** Route events to the engine; events that arrived before (at most a few) are delivered first. */
  attach(onEvent: (event: SttEvent) => void): void;
  /** Close it unused (the call never connected). */
  close(): Promise<void>;
}

const EARLY_EVENT_LIMIT = 32;

/**
 * Open the first STT provider of the chain now, so its connect time (TLS + auth, often 100-300 ms) is paid
 * while the phone rings. Keeping an idle connection alive until audio flows is the adapter's job (keep-alive).
 */
export async function openSttEarly(provider: ResolvedProvider<SpeechToText, SttBlock>, timeoutMs = 5_000): Promise<EarlyStt> {
  const held: SttEvent[] = [];
  let deliver: ((event: SttEvent) => void) | undefined;
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const opening = provider.impl.open(
    { language: provider.block.language, model: provider.block.model, endpoint: provider.block.endpoint, apiKey: provider.apiKey, options: provider.block.options, signal: abort.signal },
    (event) => {
      if (deliver) deliver(event);
      // Before the call starts there is no audio, so only errors and closes are expected: keep a few.
      else if (held.length < EARLY_EVENT_LIMIT) held.push(event);
    },
  );
  const session = await Promise.race([
    opening,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        // An open() that ignores the abort and resolves late would leak its session: close it when it arrives.
        opening.then((late) => late.close()).catch(() => {});
        reject(new Error(`PREWARM_TIMEOUT: ${provider.impl.id} did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    providerId: provider.impl.id,
    session,
    attach(onEvent) {
      deliver = onEvent;
      for (const event of held.splice(0)) onEvent(event);
    },
    close: () => session.close(),
  };
}
