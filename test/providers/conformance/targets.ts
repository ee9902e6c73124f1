import type { SpeechToText } from '../../../shared/contracts/stt';
import type { TextToSpeech } from '../../../shared/contracts/tts';
import type { FakeStarter } from './fake-server';

/** One STT adapter under the conformance suite (test/providers/conformance/stt-suite.ts). */
export interface SttConformanceTarget {
  readonly name: string;
  readonly startFake: FakeStarter;
  /**
   * The adapter wired to the Node socket factory with short retry delays (e.g. 20 ms). `replay: false` turns
   * reconnect replay off: the negative control, which must lose words.
   */
  create(options: { replay: boolean }): SpeechToText;
  /** The provider block for a session against the fake: model, language, options. */
  readonly session: { readonly model?: string; readonly language: string; readonly options: Record<string, unknown> };
  /** How this vendor reports a bad key: a refused upgrade (HTTP 401) or an accepted socket with an error frame. */
  readonly authFailure: 'handshake' | 'frame';
  /** Documented behaviour asserted where a capability is missing (never skipped), e.g. "finals only". */
  readonly notes?: Readonly<Record<string, string>>;
}

/** One TTS adapter under the conformance suite (test/providers/conformance/tts-suite.ts). */
export interface TtsConformanceTarget {
  readonly name: string;
  readonly startFake: FakeStarter;
  create(): TextToSpeech & { prewarm?(options: unknown): Promise<void>; close?(): Promise<void> };
  readonly session: { readonly voice?: string; readonly model?: string; readonly language: string; readonly options: Record<string, unknown> };
  readonly authFailure: 'handshake' | 'frame';
  readonly notes?: Readonly<Record<string, string>>;
}
