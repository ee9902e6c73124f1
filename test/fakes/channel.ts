import { type AudioFormat, type AudioFrame, PIPELINE_FORMAT, pcm16View, samplesPerFrame } from '../../shared/audio/format';
import { alawDecode, mulawDecode } from '../../shared/audio/g711';
import type { Channel, ChannelHandlers } from '../../shared/contracts/channel';
import type { Clock } from '../../shared/contracts/clock';
import { createToneDecoder, splitWords, synthesizeWords } from './tones';

export interface FakeChannelOptions {
  readonly clock: Clock;
  readonly outputFormat?: AudioFormat;
  readonly marks?: boolean;
  /** The far end reports marks this long after playing them. */
  readonly markDelayMs?: number;
  /** Mix the assistant's played audio into the caller's microphone at this gain (echo). PCM16 16 kHz output only. */
  readonly echoGain?: number;
  /** Inbound frames (by index) lost before they reach the runtime. */
  readonly dropInbound?: (frameIndex: number) => boolean;
  /** Keep every played frame for `heardWords` (default); load benchmarks turn it off and only count. */
  readonly recordPlayed?: boolean;
  /** Gives the line a transfer capability: called with the target; throwing = the carrier refused it. */
  readonly transfer?: (target: string) => void | Promise<void>;
}

interface Played {
  readonly atMs: number;
  readonly frame: AudioFrame;
}

/**
 * An in-memory phone line on a (fake) clock. The far end plays one frame every 20 ms from what it was
 * handed, reports marks as it reaches them (a clear reports the cleared marks at once, as Twilio does),
 * and records what was played. The caller streams 20 ms frames continuously: silence, or the tone words
 * a test makes it say.
 */
export function createFakeChannel(options: FakeChannelOptions) {
  const { clock } = options;
  const outputFormat = options.outputFormat ?? PIPELINE_FORMAT;
  const inSamples = samplesPerFrame(PIPELINE_FORMAT);
  const SILENCE = new Int16Array(inSamples);
  let handlers: ChannelHandlers | undefined;
  const farQueue: ({ frame: AudioFrame } | { mark: string })[] = [];
  const played: Played[] = [];
  const callerScript: Int16Array[] = [];
  let inboundIndex = 0;
  let running = false;
  let lastPlayed: AudioFrame | undefined;
  const stats = { played: 0, plays: 0, clears: 0, marksSent: 0, marksReported: [] as string[], maxLeadMs: 0, hangups: [] as string[], inboundSent: 0, transfers: [] as string[] };

  const queuedMs = () => farQueue.reduce((n, item) => n + ('frame' in item ? 20 : 0), 0);

  function reportMark(name: string): void {
    stats.marksReported.push(name);
    clock.setTimeout(() => handlers?.onMark(name), options.markDelayMs ?? 0);
  }

  function tick(): void {
    if (!running) return;
    // Far end: play one frame, then any marks right behind it.
    lastPlayed = undefined;
    while (farQueue[0] && 'mark' in farQueue[0]) reportMark((farQueue.shift() as { mark: string }).mark);
    const item = farQueue.shift();
    if (item && 'frame' in item) {
      stats.played++;
      if (options.recordPlayed !== false) played.push({ atMs: clock.now(), frame: item.frame });
      lastPlayed = item.frame;
    }
    while (farQueue[0] && 'mark' in farQueue[0]) reportMark((farQueue.shift() as { mark: string }).mark);
    // Caller: speak the next scripted frame, or silence.
    const speech = callerScript.shift();
    // Silence is one shared, never-written frame (the runtime only reads inbound audio); echo needs its own.
    const pcm = speech ?? (options.echoGain ? new Int16Array(inSamples) : SILENCE);
    if (options.echoGain && lastPlayed) {
      const echo = pcm16View(lastPlayed.data);
      for (let i = 0; i < pcm.length && i < echo.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, pcm[i]! + echo[i]! * options.echoGain));
    }
    const index = inboundIndex++;
    if (!options.dropInbound?.(index)) {
      stats.inboundSent++;
      handlers?.onAudio({ format: PIPELINE_FORMAT, data: new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength) });
    }
    clock.setTimeout(tick, 20);
  }

  const channel: Channel = {
    id: 'fake-channel',
    outputFormat,
    capabilities: { marks: options.marks ?? true, transfer: options.transfer !== undefined },
    start(h) {
      handlers = h;
      running = true;
      clock.setTimeout(tick, 20);
    },
    play(frame) {
      if (!running) return;
      stats.plays++;
      farQueue.push({ frame });
      stats.maxLeadMs = Math.max(stats.maxLeadMs, queuedMs());
    },
    clear() {
      stats.clears++;
      for (const item of farQueue.splice(0)) if ('mark' in item) reportMark(item.mark);
    },
    mark(name) {
      stats.marksSent++;
      farQueue.push({ mark: name });
    },
    async hangup(reason) {
      stats.hangups.push(reason);
      running = false;
    },
    ...(options.transfer
      ? {
          async transfer(target: string) {
            stats.transfers.push(target);
            await options.transfer!(target);
            // The carrier took the caller elsewhere: this media stream ends.
            running = false;
          },
        }
      : {}),
  };

  function decodePlayed(from: number, to: number): string[] {
    const words: string[] = [];
    const rate = outputFormat.sampleRateHz;
    const decoder = createToneDecoder(rate, (w) => words.push(w));
    for (const p of played) {
      if (p.atMs < from || p.atMs >= to) continue;
      decoder.push(toPcm(p.frame));
    }
    decoder.flush();
    return words;
  }

  return {
    channel,
    stats,
    played,
    /** The caller says these (tone-alphabet) words, starting at the next frame after anything already scripted. */
    say(text: string): number {
      const { pcm } = synthesizeWords(splitWords(text), PIPELINE_FORMAT.sampleRateHz);
      for (let i = 0; i < pcm.length; i += inSamples) {
        const frame = new Int16Array(inSamples);
        frame.set(pcm.subarray(i, i + inSamples));
        callerScript.push(frame);
      }
      return (pcm.length / PIPELINE_FORMAT.sampleRateHz) * 1000;
    },
    /** Caller-side noise without words (a cough): a broadband burst of `ms`. */
    noise(ms: number, amplitude = 6000): void {
      let seed = 12345;
      for (let t = 0; t < ms; t += 20) {
        const frame = new Int16Array(inSamples);
        for (let i = 0; i < inSamples; i++) {
          seed = (seed * 1103515245 + 12345) & 0x7fffffff;
          frame[i] = ((seed / 0x7fffffff) * 2 - 1) * amplitude;
        }
        callerScript.push(frame);
      }
    },
    pressDigit(digit: string): void {
      handlers?.onDtmf(digit);
    },
    farEndHangup(reason = 'caller-hangup'): void {
      running = false;
      handlers?.onClose(reason);
    },
    /** Words the caller heard, decoded from the audio the far end actually played. */
    heardWords(fromMs = -Infinity, toMs = Infinity): string[] {
      return decodePlayed(fromMs, toMs);
    },
    playedMs(): number {
      return played.length * 20;
    },
    get queuedMs() {
      return queuedMs();
    },
    stop(): void {
      running = false;
    },
  };

  function toPcm(frame: AudioFrame): Int16Array {
    if (frame.format.encoding === 'pcm16') return pcm16View(frame.data);
    const out = new Int16Array(frame.data.length);
    if (frame.format.encoding === 'mulaw') mulawDecode(frame.data, out);
    else alawDecode(frame.data, out);
    return out;
  }
}

export type FakeChannel = ReturnType<typeof createFakeChannel>;
