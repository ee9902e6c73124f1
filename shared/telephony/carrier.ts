import type { AudioFormat } from '../audio/format';

/**
 * What a telephony carrier's media WebSocket says, normalised. Each carrier is a pure codec from its wire
 * messages to these events and back; one channel implementation (media-node/channels/carrier-channel.ts)
 * does the I/O for all of them.
 */
export type CarrierEvent =
  /** The stream is up; `streamId` names it in every outbound message; `parameters` are per-call data. */
  | { readonly type: 'start'; readonly streamId: string; readonly callId?: string; readonly parameters: Readonly<Record<string, string>> }
  /** Caller audio in the carrier's `inputFormat`. */
  | { readonly type: 'media'; readonly audio: Uint8Array }
  | { readonly type: 'dtmf'; readonly digit: string }
  /** A mark we sent has been played (or discarded by a clear). */
  | { readonly type: 'mark'; readonly name: string }
  | { readonly type: 'stop' }
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
}
