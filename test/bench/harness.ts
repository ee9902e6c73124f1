import { type AssistantConfigInput, parseAssistantConfig } from '../../shared/config/assistant';
import type { Clock } from '../../shared/contracts/clock';
import type { CallEvent } from '../../shared/contracts/observer';
import { createCommunication } from '../../shared/engine/communication';
import { createProviderRegistry, noCredentials, resolveChain } from '../../shared/providers/registry';
import { createFakeChannel, type FakeChannelOptions } from '../fakes/channel';
import { createFakeLlm } from '../fakes/llm';
import { createFakeStt } from '../fakes/stt';
import { createFakeTts } from '../fakes/tts';
import { audioRuntime } from '../fakes/call';
import { createScriptedStt } from './scripted-stt';

export interface BenchCallOptions {
  readonly engineClock: Clock;
  /** The far end and the fake providers may run on another clock (they are not part of the runtime). */
  readonly worldClock?: Clock;
  readonly reply?: string;
  readonly channel?: Omit<FakeChannelOptions, 'clock'>;
  readonly config?: Partial<AssistantConfigInput>;
  readonly onEvent?: (event: CallEvent) => void;
  /** Use the cheap energy-based STT (load tests) instead of the tone-decoding one. */
  readonly scriptedStt?: string;
}

/** A call with zero-latency fake providers; the engine, VAD and resampler are the real ones. */
export async function benchCall(options: BenchCallOptions) {
  const { resamplers, webrtc } = await audioRuntime();
  const world = options.worldClock ?? options.engineClock;
  const registry = createProviderRegistry();
  registry.stt.register(options.scriptedStt ? createScriptedStt(world, options.scriptedStt) : createFakeStt({ clock: world }).stt);
  registry.llm.register(createFakeLlm({ clock: world, reply: () => options.reply ?? 'okay sure' }).llm);
  registry.tts.register(createFakeTts({ clock: world }).tts);
  const config = parseAssistantConfig({
    prompt: 'bench',
    stt: { provider: 'fake-stt' },
    llm: { provider: 'fake-llm' },
    tts: { provider: 'fake-tts' },
    vad: { provider: 'webrtc', webrtcMode: 1 },
    idle: { timeoutMs: 0 },
    ...options.config,
  });
  const fake = createFakeChannel({ clock: world, ...options.channel });
  const comm = createCommunication({
    callId: 'bench',
    config,
    channel: fake.channel,
    clock: options.engineClock,
    vad: await webrtc({ threshold: config.vad.threshold, webrtcMode: config.vad.webrtcMode }),
    stt: await resolveChain(config.stt, registry.stt, noCredentials),
    llm: await resolveChain(config.llm, registry.llm, noCredentials),
    tts: await resolveChain(config.tts, registry.tts, noCredentials),
    resamplers,
    observer: { onEvent: (e) => options.onEvent?.(e) },
  });
  await comm.start();
  return { comm, fake };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
