import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { audioConfigOf, audioFormatOf, DEFAULT_TALK_FORMAT, streamModeOf, TALK_SAMPLE_RATES, TalkConfigError } from '../../shared/talk/audio-config';
import { AudioConfigSchema, AudioEncoding, StreamMode } from '../../shared/talk/gen/talk_api_pb';

const config = (init: { sampleRate?: number; encoding?: AudioEncoding; channels?: number }) => create(AudioConfigSchema, init);

/** The TalkConfigError `fn` throws (fails the test when it throws nothing or something else). */
function configError(fn: () => unknown): TalkConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof TalkConfigError) return error;
    throw error;
  }
  throw new Error('expected a TalkConfigError');
}

describe('audioFormatOf', () => {
  it('reads an absent config, and one left at zeros, as PCM16 16 kHz mono', () => {
    expect(audioFormatOf(undefined, 'input_audio')).toEqual({ encoding: 'pcm16', sampleRateHz: 16_000 });
    expect(audioFormatOf(config({}), 'input_audio')).toEqual({ encoding: 'pcm16', sampleRateHz: 16_000 });
    expect(audioFormatOf(config({ channels: 1, encoding: AudioEncoding.LINEAR16 }), 'output_audio')).toEqual({ encoding: 'pcm16', sampleRateHz: 16_000 });
    expect(Object.isFrozen(DEFAULT_TALK_FORMAT)).toBe(true);
  });

  it('accepts every rate a browser AudioContext or a phone uses, as PCM16', () => {
    expect(TALK_SAMPLE_RATES).toEqual([8_000, 16_000, 24_000, 44_100, 48_000]);
    for (const rate of TALK_SAMPLE_RATES) {
      expect(audioFormatOf(config({ sampleRate: rate, encoding: AudioEncoding.LINEAR16 }), 'input_audio')).toEqual({ encoding: 'pcm16', sampleRateHz: rate });
    }
  });

  it('accepts mu-law at 8 kHz only', () => {
    expect(audioFormatOf(config({ sampleRate: 8_000, encoding: AudioEncoding.MULAW }), 'output_audio')).toEqual({ encoding: 'mulaw', sampleRateHz: 8_000 });
    const e = configError(() => audioFormatOf(config({ sampleRate: 16_000, encoding: AudioEncoding.MULAW }), 'output_audio'));
    expect(e.code).toBe('AUDIO_CONFIG_INVALID');
    expect(e.message).toBe('output_audio: mu-law is 8000 Hz only, got 16000');
    // Rate left out: mu-law's own rate, not the PCM16 default.
    expect(audioFormatOf(config({ sampleRate: 0, encoding: AudioEncoding.MULAW }), 'input_audio')).toEqual({ encoding: 'mulaw', sampleRateHz: 8_000 });
  });

  it('refuses an unsupported rate, naming the field and the rates that work', () => {
    const e = configError(() => audioFormatOf(config({ sampleRate: 11_025 }), 'input_audio'));
    expect(e.code).toBe('AUDIO_CONFIG_INVALID');
    expect(e.message).toBe('input_audio.sample_rate 11025 is not supported; use one of 8000, 16000, 24000, 44100, 48000');
  });

  it('refuses stereo, and an encoding this server does not know', () => {
    const stereo = configError(() => audioFormatOf(config({ sampleRate: 48_000, channels: 2 }), 'input_audio'));
    expect(stereo.message).toBe('input_audio.channels must be 1 (mono), got 2');
    const unknown = configError(() => audioFormatOf(config({ sampleRate: 16_000, encoding: 7 as AudioEncoding }), 'output_audio'));
    expect(unknown.code).toBe('AUDIO_CONFIG_INVALID');
    expect(unknown.message).toBe('output_audio.encoding 7 is unknown');
  });
});

describe('audioConfigOf', () => {
  it('describes a format back to the client, and round-trips through audioFormatOf', () => {
    expect(audioConfigOf({ encoding: 'mulaw', sampleRateHz: 8_000 })).toEqual({ sampleRate: 8_000, encoding: AudioEncoding.MULAW, channels: 1 });
    expect(audioConfigOf({ encoding: 'pcm16', sampleRateHz: 48_000 })).toEqual({ sampleRate: 48_000, encoding: AudioEncoding.LINEAR16, channels: 1 });
    for (const format of [{ encoding: 'pcm16', sampleRateHz: 24_000 }, { encoding: 'mulaw', sampleRateHz: 8_000 }] as const) {
      expect(audioFormatOf(config(audioConfigOf(format)), 'input_audio')).toEqual(format);
    }
  });
});

describe('streamModeOf', () => {
  it('reads UNSPECIFIED as BOTH and keeps the three real modes', () => {
    expect(streamModeOf(StreamMode.UNSPECIFIED)).toBe(StreamMode.BOTH);
    for (const mode of [StreamMode.TEXT, StreamMode.AUDIO, StreamMode.BOTH]) expect(streamModeOf(mode)).toBe(mode);
  });

  it('refuses a mode it does not know', () => {
    const e = configError(() => streamModeOf(9 as StreamMode));
    expect(e.code).toBe('STREAM_MODE_INVALID');
    expect(e.message).toBe('stream_mode 9 is unknown');
  });
});
