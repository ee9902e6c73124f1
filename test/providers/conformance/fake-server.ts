/**
 * What every local fake of a vendor's streaming API offers the conformance suite. A fake is written from
 * ../shared/reference/providers.md (never from the adapter), listens on 127.0.0.1 on a free port and
 * speaks the vendor's real framing. The suite steers it through `control` to produce each case.
 */

export interface FakeConnectionRecord {
  /** Path and query of the upgrade request, e.g. `/v1/listen?model=nova-3&encoding=linear16&...`. */
  readonly url: string;
  /** Lower-cased handshake headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Every client frame received, in order (text as string, binary as Uint8Array). */
  readonly received: (string | Uint8Array)[];
  /** Close code the fake saw (undefined while open). */
  closeCode?: number;
}

export interface FakeProviderControl {
  /** Refuse the next `count` upgrades with this HTTP status (401 bad key, 429 concurrency, 503). */
  refuseNext(status: number, count?: number): void;
  /**
   * Drop the current connection(s) abruptly (TCP destroy, no close frame: the client sees 1006), or with a
   * close frame of this code/reason, e.g. 1011 "NET-0001".
   */
  drop(close?: { code: number; reason: string }): void;
  /** STT: drop the connection after the fake has recognised this many more words (mid-utterance). */
  dropAfterWords?(words: number): void;
  /** Accept the upgrade, then send the vendor's error frame for this kind and close (vendors that do this). */
  errorAfterAccept?(kind: 'auth' | 'bad-request' | 'rate-limit' | 'internal'): void;
  /**
   * Send this frame as-is on the open connection(s): string as a text frame, Uint8Array as binary. The suites
   * inject malformed messages with it (e.g. `'{"type":'` or a JSON message of an unknown shape) and check
   * the session survives.
   */
  sendRaw?(data: string | Uint8Array): void;
}

export interface FakeProviderServer {
  /** What goes into the provider block's `endpoint` (scheme + host + port; the adapter adds its path). */
  readonly endpoint: string;
  /** The only API key the fake accepts. */
  readonly apiKey: string;
  /** Every upgrade attempt, refused ones included, in order. */
  readonly connections: readonly FakeConnectionRecord[];
  readonly control: FakeProviderControl;
  close(): Promise<void>;
}

/**
 * STT fakes derive words from the audio itself: the tone alphabet of test/fakes/tones.ts (createToneDecoder
 * on the received PCM16 16 kHz), so audio lost on the way shows up as words missing from the transcript.
 * An interim after each recognised word; a final after ~300 ms without a word (or on the vendor's finalize).
 *
 * TTS fakes speak words as tones (synthesizeWords from test/fakes/tones.ts) in the requested format, so the
 * suite decodes the audio back to the words it sent; word timings (where the vendor offers them) come from
 * the synthesis.
 */
export type FakeStarter = (options?: { idleCloseMs?: number }) => Promise<FakeProviderServer>;
