import { loadWasmModulesNode } from '../../media-node/audio/wasm-node';
import { type AudioFormat, FRAME_MS } from '../../shared/audio/format';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import type { ResamplerFactory } from '../../shared/audio/resampler';
import { type AssistantConfigInput, parseAssistantConfig } from '../../shared/config/assistant';
import type { Channel } from '../../shared/contracts/channel';
import type { KnowledgeBase } from '../../shared/contracts/knowledge';
import type { ToolExecutor } from '../../shared/contracts/llm';
import type { CallEvent, CallObserver, TurnMetrics } from '../../shared/contracts/observer';
import type { Vad, VadFactory } from '../../shared/contracts/vad';
import { createCommunication } from '../../shared/engine/communication';
import { createProviderRegistry, noCredentials, resolveChain, type ResolvedProvider } from '../../shared/providers/registry';
import { openSttEarly, recordSpeech, replayTts, type EarlyStt } from '../../shared/engine/prewarm';
import type { TextToSpeech } from '../../shared/contracts/tts';
import type { TtsBlock } from '../../shared/config/assistant';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';
import { createFakeChannel, type FakeChannelOptions } from './channel';
import { createFakeClock } from './clock';
import { createFakeLlm, type FakeLlmOptions } from './llm';
import { createFakeStt, type FakeSttOptions } from './stt';
import { createFakeTts, type FakeTtsOptions } from './tts';

let shared: Promise<{ resamplers: ResamplerFactory; webrtc: VadFactory }> | undefined;

/** One WASM instance per test process, as in production. */
export function audioRuntime() {
  shared ??= loadWasmModulesNode().then(async (m) => ({
    resamplers: await createSpeexResamplerFactory(m.speexResampler),
    webrtc: await createWebRtcVadFactory(m.fvad),
  }));
  return shared;
}

export interface CallSetup {
  readonly config?: Partial<AssistantConfigInput>;
  readonly llm?: Omit<FakeLlmOptions, 'clock'>;
  /** Extra LLMs used as fallbacks, in order. */
  readonly llmFallbacks?: Omit<FakeLlmOptions, 'clock'>[];
  readonly stt?: Omit<FakeSttOptions, 'clock'>;
  readonly sttFallbacks?: Omit<FakeSttOptions, 'clock'>[];
  readonly tts?: Omit<FakeTtsOptions, 'clock'>;
  readonly ttsFallbacks?: Omit<FakeTtsOptions, 'clock'>[];
  readonly channel?: Omit<FakeChannelOptions, 'clock'> & { outputFormat?: AudioFormat };
  readonly tools?: ToolExecutor;
  readonly variables?: Record<string, string>;
  /** A second observer behind the recording one (e.g. a sink under test). */
  readonly observer?: CallObserver;
  /** A prepared greeting (pre-warm): built from the call's own TTS before the call starts. */
  readonly prewarmGreeting?: boolean;
  /** The first STT session opened before the call starts (pre-warm), as the media node does while the phone rings. */
  readonly prewarmStt?: boolean;
  /** A VAD of the test's own (default: the real WebRTC VAD). */
  readonly vad?: Vad;
  /** Passed to the engine as `maxInboundFrames` (default: the engine's). */
  readonly maxInboundFrames?: number;
  /** Wrap the fake channel before the engine gets it (to observe or alter what crosses it). */
  readonly wrapChannel?: (channel: Channel) => Channel;
  /** Knowledge bases searched on every user turn (engine dep `knowledge`), and the retrieval budget (default 150 ms). */
  readonly knowledge?: { readonly bases: readonly KnowledgeBase[]; readonly budgetMs?: number };
}

/**
 * A whole call on a fake clock: real engine, real WebRTC VAD and speex resampler, fake providers that
 * speak and hear the tone alphabet, and an in-memory channel.
 */
export async function startCall(setup: CallSetup = {}) {
  const { resamplers, webrtc } = await audioRuntime();
  const clock = createFakeClock(1_000);
  const registry = createProviderRegistry();

  const llms = [setup.llm ?? { reply: () => 'okay' }, ...(setup.llmFallbacks ?? [])].map((o, i) => createFakeLlm({ id: `fake-llm-${i}`, ...o, clock }));
  const stts = [setup.stt ?? {}, ...(setup.sttFallbacks ?? [])].map((o, i) => createFakeStt({ id: `fake-stt-${i}`, ...o, clock }));
  const ttss = [setup.tts ?? {}, ...(setup.ttsFallbacks ?? [])].map((o, i) => createFakeTts({ id: `fake-tts-${i}`, ...o, clock }));
  for (const x of llms) registry.llm.register(x.llm);
  for (const x of stts) registry.stt.register(x.stt);
  for (const x of ttss) registry.tts.register(x.tts);

  const config = parseAssistantConfig({
    prompt: 'You are a helpful test assistant.',
    stt: { provider: 'fake-stt-0', fallbacks: stts.slice(1).map((s) => ({ provider: s.stt.id })) },
    llm: { provider: 'fake-llm-0', fallbacks: llms.slice(1).map((l) => ({ provider: l.llm.id })) },
    tts: { provider: 'fake-tts-0', fallbacks: ttss.slice(1).map((t) => ({ provider: t.tts.id })) },
    // Mode 1 voices every word of the tone alphabet on its own (mode 2 learns some steady tones as noise).
    vad: { provider: 'webrtc', webrtcMode: 1 },
    ...setup.config,
  });
  const fake = createFakeChannel({ clock, ...setup.channel });
  const events: CallEvent[] = [];
  const vad = setup.vad ?? (await webrtc({ threshold: config.vad.threshold, webrtcMode: config.vad.webrtcMode }));
  const ttsChain = await resolveChain(config.tts, registry.tts, noCredentials);
  let greetingTts: ResolvedProvider<TextToSpeech, TtsBlock> | undefined;
  if (setup.prewarmGreeting) {
    const recording = recordSpeech(ttsChain[0]!, config.greeting, { ...config.variables, ...setup.variables }, fake.channel.outputFormat);
    await clock.advance(5_000); // the phone rings while the greeting is synthesised
    greetingTts = { impl: replayTts(await recording), block: ttsChain[0]!.block, apiKey: undefined };
  }
  const sttChain = await resolveChain(config.stt, registry.stt, noCredentials);
  let earlyStt: EarlyStt | undefined;
  if (setup.prewarmStt) {
    const opening = openSttEarly(sttChain[0]!);
    await clock.advance(5_000); // the phone rings while STT connects
    earlyStt = await opening;
  }
  const comm = createCommunication({
    callId: 'call-test',
    config,
    channel: setup.wrapChannel ? setup.wrapChannel(fake.channel) : fake.channel,
    clock,
    vad,
    stt: sttChain,
    earlyStt,
    llm: await resolveChain(config.llm, registry.llm, noCredentials),
    tts: ttsChain,
    resamplers,
    observer: {
      onEvent(e) {
        events.push(e);
        setup.observer?.onEvent(e);
      },
    },
    tools: setup.tools,
    ...(greetingTts ? { greetingTts } : {}),
    variables: setup.variables,
    maxInboundFrames: setup.maxInboundFrames,
    ...(setup.knowledge ? { knowledge: () => setup.knowledge!.bases, retrievalBudgetMs: setup.knowledge.budgetMs } : {}),
  });
  // start() waits for STT to connect; on the fake clock that time has to be advanced.
  let started = false;
  const startedAtMs = clock.now();
  const starting = comm.start().then(() => void (started = true));
  await Promise.race([starting, new Promise((r) => setImmediate(r))]);
  while (!started) await clock.advance(FRAME_MS);
  await starting;

  const of = <T extends CallEvent['type']>(type: T) => events.filter((e): e is Extract<CallEvent, { type: T }> => e.type === type);
  return {
    comm,
    clock,
    /** The clock when the call started (after any pre-warm). */
    startedAtMs,
    fake,
    config,
    events,
    of,
    llm: llms[0]!,
    llms,
    stt: stts[0]!,
    stts,
    tts: ttss[0]!,
    ttss,
    metrics: (): TurnMetrics[] => of('turnMetrics').map((e) => e.metrics),
    /** Run the call for `ms` of virtual time. */
    run: (ms: number) => clock.advance(ms),
    /** Run until `predicate` holds (checked every 20 ms), at most `maxMs`. */
    async runUntil(predicate: () => boolean, maxMs = 20_000): Promise<boolean> {
      for (let t = 0; t < maxMs; t += 20) {
        if (predicate()) return true;
        await clock.advance(20);
      }
      return predicate();
    },
    async end(): Promise<void> {
      await comm.end('test-done');
      fake.stop();
    },
  };
}

export type TestCall = Awaited<ReturnType<typeof startCall>>;
