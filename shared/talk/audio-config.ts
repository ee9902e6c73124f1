import type { AudioFormat } from '../audio/format';
import { AudioEncoding, StreamMode, type AudioConfig } from './gen/talk_api_pb';

/** Rates a browser or SDK may speak or hear (AudioContext rates and the telephony/pipeline ones). */
export const TALK_SAMPLE_RATES: readonly number[] = [8_000, 16_000, 24_000, 44_100, 48_000];
export const DEFAULT_TALK_FORMAT: AudioFormat = Object.freeze({ encoding: 'pcm16', sampleRateHz: 16_000 });

/** A client's AudioConfig that the server cannot honour: the stream is refused with this message. */
export class TalkConfigError extends Error {
  override readonly name = 'TalkConfigError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** An Initialization's AudioConfig (absent or zeros: PCM16 16 kHz mono) as the format the server reads or writes. */
export function audioFormatOf(config: AudioConfig | undefined, what: 'input_audio' | 'output_audio'): AudioFormat {
  if (!config) return DEFAULT_TALK_FORMAT;
  // Rate 0 means the encoding's usual rate: 8 kHz for mu-law, 16 kHz for PCM16.
  const rate = config.sampleRate === 0 ? (config.encoding === AudioEncoding.MULAW ? 8_000 : 16_000) : config.sampleRate;
  if (!TALK_SAMPLE_RATES.includes(rate)) {
    throw new TalkConfigError('AUDIO_CONFIG_INVALID', `${what}.sample_rate ${rate} is not supported; use one of ${TALK_SAMPLE_RATES.join(', ')}`);
  }
  if (config.channels > 1) throw new TalkConfigError('AUDIO_CONFIG_INVALID', `${what}.channels must be 1 (mono), got ${config.channels}`);
  switch (config.encoding) {
    case AudioEncoding.UNSPECIFIED:
    case AudioEncoding.LINEAR16:
      return { encoding: 'pcm16', sampleRateHz: rate };
    case AudioEncoding.MULAW:
      if (rate !== 8_000) throw new TalkConfigError('AUDIO_CONFIG_INVALID', `${what}: mu-law is 8000 Hz only, got ${rate}`);
      return { encoding: 'mulaw', sampleRateHz: rate };
    default:
      throw new TalkConfigError('AUDIO_CONFIG_INVALID', `${what}.encoding ${String(config.encoding)} is unknown`);
  }
}

/** The AudioConfig that describes `format` back to the client. */
export function audioConfigOf(format: AudioFormat): { sampleRate: number; encoding: AudioEncoding; channels: number } {
  return { sampleRate: format.sampleRateHz, encoding: format.encoding === 'mulaw' ? AudioEncoding.MULAW : AudioEncoding.LINEAR16, channels: 1 };
}

/** UNSPECIFIED means both ways; anything unknown is refused. */
export function streamModeOf(mode: StreamMode): StreamMode {
  if (mode === StreamMode.UNSPECIFIED) return StreamMode.BOTH;
  if (mode === StreamMode.TEXT || mode === StreamMode.AUDIO || mode === StreamMode.BOTH) return mode;
  throw new TalkConfigError('STREAM_MODE_INVALID', `stream_mode ${String(mode)} is unknown`);
}
