/**
 * The playback AudioWorkletProcessor (bundled on its own into a string, loaded from a Blob URL): the
 * assistant's PCM16 frames in, resampled to the context rate into a small jitter buffer, rendered out.
 * Reports marks as they are reached and its counters every ~100 ms and whenever playing starts or stops.
 */
import { createPlaybackCore, type PlaybackCore } from './playback-core';
import { PLAYBACK_PROCESSOR, type PlaybackCommand, type PlaybackEvent, type PlaybackProcessorOptions } from './worklet-messages';

declare const sampleRate: number;
declare function registerProcessor(name: string, processor: new (options: { processorOptions: PlaybackProcessorOptions }) => unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}

const STATS_EVERY_QUANTA = Math.max(1, Math.round((sampleRate * 0.1) / 128));

class PlaybackProcessor extends AudioWorkletProcessor {
  private readonly core: PlaybackCore;
  private quanta = 0;
  private wasPlaying = false;

  constructor(options: { processorOptions: PlaybackProcessorOptions }) {
    super();
    this.core = createPlaybackCore({
      sourceRateHz: options.processorOptions.sourceRateHz,
      contextRateHz: sampleRate,
      onMark: (id) => this.post({ type: 'mark', id }),
    });
    this.port.onmessage = (event: MessageEvent<PlaybackCommand>) => {
      const command = event.data;
      switch (command.type) {
        case 'audio':
          this.core.pushPcm16(new Int16Array(command.pcm));
          return;
        case 'mark':
          this.core.mark(command.id);
          return;
        case 'pause':
          this.core.pause();
          return;
        case 'continue':
          this.core.resume();
          return;
        case 'flush':
          this.core.flush();
          this.report();
          return;
      }
    };
  }

  private post(event: PlaybackEvent): void {
    this.port.postMessage(event);
  }

  private report(): void {
    const s = this.core.stats;
    this.wasPlaying = this.core.playing;
    this.post({
      type: 'stats',
      samplesPlayed: s.samplesPlayed,
      samplesReceived: s.samplesReceived,
      underruns: s.underruns,
      flushes: s.flushes,
      bufferedSamples: this.core.buffered,
      playing: this.wasPlaying,
    });
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const channels = outputs[0];
    if (!channels || channels.length === 0) return true;
    const first = channels[0]!;
    this.core.render(first);
    for (let c = 1; c < channels.length; c++) channels[c]!.set(first);
    this.quanta++;
    if (this.quanta % STATS_EVERY_QUANTA === 0 || this.core.playing !== this.wasPlaying) this.report();
    return true;
  }
}

registerProcessor(PLAYBACK_PROCESSOR, PlaybackProcessor);
