/**
 * The capture AudioWorkletProcessor (bundled on its own into a string, loaded from a Blob URL): microphone
 * render quanta in, 20 ms PCM16 16 kHz frames posted to the main thread.
 */
import { createCaptureCore } from './capture-core';
import { CAPTURE_PROCESSOR, type CaptureCommand, type CaptureEvent } from './worklet-messages';

// The AudioWorkletGlobalScope, which TypeScript's DOM library does not describe.
declare const sampleRate: number;
declare function registerProcessor(name: string, processor: new () => unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}

class CaptureProcessor extends AudioWorkletProcessor {
  private readonly core = createCaptureCore({
    contextRateHz: sampleRate,
    onFrame: (frame) => {
      const event: CaptureEvent = { type: 'frame', pcm: frame.buffer as ArrayBuffer, peak: this.core.stats.peak };
      this.core.stats.peak = 0;
      this.port.postMessage(event, [event.pcm]);
    },
  });
  private mono = new Float32Array(128);

  constructor() {
    super();
    this.port.onmessage = (event: MessageEvent<CaptureCommand>) => {
      if (event.data.type === 'mute') this.core.setMuted(event.data.muted);
    };
  }

  process(inputs: Float32Array[][]): boolean {
    const channels = inputs[0];
    // No input connected yet (or the track ended): keep the node alive, send nothing.
    if (!channels || channels.length === 0) return true;
    const first = channels[0]!;
    if (channels.length === 1) {
      this.core.push(first);
      return true;
    }
    // A stereo microphone: the average of its channels.
    if (this.mono.length !== first.length) this.mono = new Float32Array(first.length);
    for (let i = 0; i < first.length; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i]!;
      this.mono[i] = sum / channels.length;
    }
    this.core.push(this.mono);
    return true;
  }
}

registerProcessor(CAPTURE_PROCESSOR, CaptureProcessor);
