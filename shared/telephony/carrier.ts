import type { AudioFormat } from '../audio/format';

/**
 * What a telephony carrier's media WebSocket says, normalised. Each carrier is a pure codec from its wire
 * messages to these events and back; one channel implementation (media-node/channels/carrier-channel.ts)
 * does the I/O for all of them.
 */
export type CarrierEvent =
  /** The stream is up; `streamId` names it in every outbound message; `parameters` are per-call data. */
  | {
      readonly type: 'start';
      readonly streamId: string;
      readonly callId?: string;
      readonly parameters: Readonly<Record<string, string>>;
      /** The audio this stream carries, where the carrier announces it (Exotel media_format, Asterisk MEDIA_START); else the codec's. */
      readonly format?: { readonly input: AudioFormat; readonly output: AudioFormat };
    }
  /** Caller audio in the carrier's `inputFormat`. */
  | { readonly type: 'media'; readonly audio: Uint8Array }
  | { readonly type: 'dtmf'; readonly digit: string }
  /** A mark we sent has been played (or discarded by a clear). */
  | { readonly type: 'mark'; readonly name: string }
  /** The stream ended; `reason` when it was not the caller hanging up (e.g. `rtp-timeout`). */
  | { readonly type: 'stop'; readonly reason?: string }
  /** The carrier asks us to stop sending audio for now (`paused`) or to go on (Asterisk MEDIA_XOFF / MEDIA_XON). */
  | { readonly type: 'flow'; readonly paused: boolean }
  /** A well-formed message the runtime has no use for (e.g. Twilio's `connected`). */
  | { readonly type: 'ignored' };

export interface CarrierProtocolError {
  readonly type: 'protocolError';
  readonly code: string;
  readonly message: string;
}

export interface CarrierCodec {
  readonly carrier: string;
  /** Audio the carrier sends and expects (Twilio: μ-law 8 kHz both ways). */
  readonly inputFormat: AudioFormat;
  readonly outputFormat: AudioFormat;
  readonly capabilities: { readonly marks: boolean; readonly clear: boolean };
  decode(message: string | Uint8Array): CarrierEvent | CarrierProtocolError;
  encodeMedia(streamId: string, audio: Uint8Array): string | Uint8Array;
  encodeMark(streamId: string, name: string): string | Uint8Array | undefined;
  encodeClear(streamId: string): string | Uint8Array | undefined;
  /** What to send before closing when we end the call (Asterisk `HANGUP`); absent: closing the socket is the hang-up. */
  encodeHangup?(streamId: string): string | Uint8Array | undefined;
}

/**
 * A carrier's media transport as the channel sees it: a WebSocket (`ws`) or a framed TCP connection
 * (AudioSocket). One message in = one carrier message (text or binary).
 */
export interface CarrierLink {
  onMessage(listener: (message: string | Uint8Array) => void): void;
  /** The transport ended (`error` true when it failed rather than closed). */
  onClose(listener: (error: boolean) => void): void;
  send(payload: string | Uint8Array): void;
  /** Close with a WebSocket close code (a TCP link ignores the code). */
  close(code: number, reason: string): void;
  readonly open: boolean;
  /** Bytes accepted but not yet written. */
  bufferedAmount(): number;
  /** Stop and restart reading (messages wait in the transport meanwhile). */
  pause(): void;
  resume(): void;
}
