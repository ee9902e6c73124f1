import type { AudioFormat, AudioFrame } from '../audio/format';

export interface ChannelHandlers {
  /** Inbound audio, already converted to PIPELINE_FORMAT by the channel. */
  onAudio(frame: AudioFrame): void;
  onDtmf(digit: string): void;
  /** A mark handed to `mark()` has been played out to the caller. */
  onMark(name: string): void;
  onClose(reason: string): void;
}

export interface ChannelCapabilities {
  readonly marks: boolean;
  readonly transfer: boolean;
}

/**
 * The transport of one call. The runtime paces outbound audio itself and hands the channel only a small
 * lead, so `clear()` loses little and the unplayed rest stays with the runtime.
 */
export interface Channel {
  readonly id: string;
  /** The format the far end plays; the engine converts once to it. */
  readonly outputFormat: AudioFormat;
  readonly capabilities: ChannelCapabilities;
  start(handlers: ChannelHandlers): void;
  play(frame: AudioFrame): void;
  /** Drop audio queued at the far end. */
  clear(): void;
  mark(name: string): void;
  hangup(reason: string): Promise<void>;
  transfer?(target: string): Promise<void>;
}
