import { dialAsterisk, type AsteriskDialOptions } from './asterisk-carrier';
import { dialAudioSocket, type AudioSocketDialOptions } from './audiosocket-carrier';
import { readCallerWav, speechLike } from './caller';
import { dialExotel, type ExotelDialOptions } from './exotel-carrier';
import type { SimulatedCall } from './simulated-call';
import { dialTwilio, type TwilioDialOptions } from './twilio-carrier';
import { dialVonage, type VonageDialOptions } from './vonage-carrier';

/**
 * One simulated phone call against a running node: the chosen carrier dials (webhook or API, then media),
 * the caller speaks (a WAV, or speech-like bursts) in real time for `seconds` or until the node hangs up,
 * then the caller hangs up; the result holds what the caller heard and a summary.
 */
export const CARRIERS = ['twilio', 'vonage', 'exotel', 'asterisk', 'audiosocket'] as const;
export type CarrierName = (typeof CARRIERS)[number];

export type DialOptions =
  | ({ readonly carrier: 'twilio' } & TwilioDialOptions)
  | ({ readonly carrier: 'vonage' } & VonageDialOptions)
  | ({ readonly carrier: 'exotel' } & ExotelDialOptions)
  | ({ readonly carrier: 'asterisk' } & AsteriskDialOptions)
  | ({ readonly carrier: 'audiosocket' } & AudioSocketDialOptions);

export type SimulateOptions = DialOptions & {
  /** How long the call may last before the caller hangs up. */
  readonly seconds: number;
  /** The caller's audio (any WAV the converter reads); speech-like bursts when absent. */
  readonly wav?: string;
};

export interface SimulationSummary {
  readonly carrier: CarrierName;
  readonly sampleRateHz: number;
  readonly callMs: number;
  /** Milliseconds of audio the caller heard (played frames, silence included). */
  readonly heardMs: number;
  /** Milliseconds of that audio that were not silent. */
  readonly audibleMs: number;
  readonly endedBy: 'caller' | 'node';
  readonly conversationId?: string;
  /** The carrier's protocol counters (frames played, clears/flushes, marks…). */
  readonly counters: Readonly<Record<string, number>>;
}

export interface SimulationResult {
  readonly summary: SimulationSummary;
  /** What the caller heard, PCM16 at `summary.sampleRateHz`. */
  readonly heard: Int16Array;
}

export function dial(options: DialOptions): Promise<SimulatedCall> {
  switch (options.carrier) {
    case 'twilio':
      return dialTwilio(options);
    case 'vonage':
      return dialVonage(options);
    case 'exotel':
      return dialExotel(options);
    case 'asterisk':
      return dialAsterisk(options);
    case 'audiosocket':
      return dialAudioSocket(options);
  }
}

/** Runs one call to its end (the caller hangs up after `seconds`, or the node ends it first). */
export async function simulateCall(options: SimulateOptions): Promise<SimulationResult> {
  const startedAt = performance.now();
  const call = await dial(options);
  try {
    // The caller's audio is made at the rate the call settled on (known only once dialled).
    call.say(options.wav ? await readCallerWav(options.wav, call.sampleRateHz, options.seconds) : speechLike(options.seconds, call.sampleRateHz));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([call.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.seconds * 1000)))]);
    clearTimeout(timer);
  } finally {
    if (!call.endedByNode()) await call.hangUp();
  }
  const heard = call.heardPcm();
  return { heard, summary: summarise(options.carrier, call, heard, performance.now() - startedAt) };
}

function summarise(carrier: CarrierName, call: SimulatedCall, heard: Int16Array, callMs: number): SimulationSummary {
  // A 10 ms window counts as audible when its peak passes ~-50 dBFS (the node's comfort silence is zeros).
  const window = call.sampleRateHz / 100;
  let audibleWindows = 0;
  for (let at = 0; at < heard.length; at += window) {
    let peak = 0;
    for (let i = at; i < Math.min(at + window, heard.length); i++) peak = Math.max(peak, Math.abs(heard[i]!));
    if (peak > 100) audibleWindows++;
  }
  return {
    carrier,
    sampleRateHz: call.sampleRateHz,
    callMs: Math.round(callMs),
    heardMs: Math.round((heard.length / call.sampleRateHz) * 1000),
    audibleMs: audibleWindows * 10,
    endedBy: call.endedByNode() ? 'node' : 'caller',
    ...(call.conversationId ? { conversationId: call.conversationId } : {}),
    counters: call.counters(),
  };
}

/** One line for a person: `vonage: heard 6.2 s (3.1 s audible) at 16000 Hz in 8.0 s, ended by the caller; framesPlayed 310, clears 1, …`. */
export function formatSummary(summary: SimulationSummary): string {
  const counters = Object.entries(summary.counters).map(([name, value]) => `${name} ${value}`).join(', ');
  return (
    `${summary.carrier}: heard ${(summary.heardMs / 1000).toFixed(1)} s (${(summary.audibleMs / 1000).toFixed(1)} s audible) at ${summary.sampleRateHz} Hz ` +
    `in a ${(summary.callMs / 1000).toFixed(1)} s call, ended by the ${summary.endedBy}; ${counters}`
  );
}
