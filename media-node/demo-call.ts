/**
 * A scripted demo call through the real engine, in real time, with the test doubles (tone-alphabet STT,
 * scripted LLM, tone TTS, in-memory phone line) and the real WebRTC VAD and resampler. Prints the call
 * as it happens and each turn's timeline. Stand-in for `npm start` until the media node serves real calls.
 */
import { createSpeexResamplerFactory } from '../shared/audio/resampler';
import { parseAssistantConfig } from '../shared/config/assistant';
import { systemClock } from '../shared/contracts/clock';
import { type CallEvent, type CallObserver, combineObservers, type TurnMetrics } from '../shared/contracts/observer';
import { createCommunication } from '../shared/engine/communication';
import { createProviderRegistry, noCredentials, resolveChain } from '../shared/providers/registry';
import { createVadFor } from '../shared/vad/select';
import { createWebRtcVadFactory } from '../shared/vad/webrtc';
import { createFakeChannel } from '../test/fakes/channel';
import { createFakeLlm, lastUserText } from '../test/fakes/llm';
import { createFakeStt } from '../test/fakes/stt';
import { createFakeTts } from '../test/fakes/tts';
import { loadWasmModulesNode } from './audio/wasm-node';
import { createSileroVadFactory } from './vad/silero';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';

/** The demo assistant (its providers are the test doubles registered below). */
export const DEMO_ASSISTANT = {
  name: 'Demo assistant',
  prompt: 'You are a friendly demo assistant.',
  greeting: 'hello welcome',
  stt: { provider: 'fake-stt' },
  llm: { provider: 'fake-llm' },
  tts: { provider: 'fake-tts' },
  vad: { provider: 'webrtc', webrtcMode: 1 },
  idle: { timeoutMs: 0 },
} as const;

export interface DemoCallOptions {
  readonly print?: (line: string) => void;
  /** Another observer of the call (the node's call recorder). */
  readonly observer?: CallObserver;
}

export async function runDemoCall(options: DemoCallOptions = {}): Promise<TurnMetrics[]> {
  const print = options.print ?? console.log;
  const clock = systemClock;
  const wasm = await loadWasmModulesNode();
  const resamplers = await createSpeexResamplerFactory(wasm.speexResampler);
  const vadFactory = await createWebRtcVadFactory(wasm.fvad);
  const registry = createProviderRegistry();
  const { stt } = createFakeStt({ clock, latencyMs: 80 });
  const { llm } = createFakeLlm({
    clock,
    firstTokenDelayMs: 250,
    tokenDelayMs: 40,
    reply: (messages) => {
      const said = lastUserText(messages);
      if (said.includes('weather')) return 'it is sunny and warm today';
      if (said.includes('story')) return STORY;
      return 'okay sure';
    },
  });
  const { tts } = createFakeTts({ clock, firstAudioDelayMs: 120, realTimeFactor: 0.3 });
  registry.stt.register(stt);
  registry.llm.register(llm);
  registry.tts.register(tts);

  const config = parseAssistantConfig(DEMO_ASSISTANT);
  const line = createFakeChannel({ clock, markDelayMs: 40 });
  const start = clock.now();
  const t = (ms: number) => `${((ms - start) / 1000).toFixed(2).padStart(6)} s`;
  const turns: TurnMetrics[] = [];
  const describe = (e: CallEvent): string | undefined => {
    switch (e.type) {
      case 'userMessage':
        return `${t(e.atMs)}  caller   "${e.text}"`;
      case 'assistantMessage':
        return `${t(e.atMs)}  agent    "${e.text}"${e.interrupted ? '  (cut: caller interrupted)' : ''}`;
      case 'interruption':
        return `${t(e.atMs)}  barge-in ${e.phase}`;
      case 'turnMetrics':
        turns.push(e.metrics);
        return undefined;
      case 'callEnded':
        return `${t(e.atMs)}  call ended (${e.reason})`;
      default:
        return undefined;
    }
  };
  const comm = createCommunication({
    callId: 'demo',
    config,
    channel: line.channel,
    clock,
    vad: await createVadFor(config.vad, { webrtc: vadFactory, silero: createSileroVadFactory() }),
    stt: await resolveChain(config.stt, registry.stt, noCredentials),
    llm: await resolveChain(config.llm, registry.llm, noCredentials),
    tts: await resolveChain(config.tts, registry.tts, noCredentials),
    resamplers,
    observer: combineObservers(
      {
        onEvent(e) {
          const text = describe(e);
          if (text) print(text);
        },
      },
      ...(options.observer ? [options.observer] : []),
    ),
  });

  print('Demo call: the caller and the providers are test doubles speaking a tone alphabet; the engine is real.\n');
  await comm.start();
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await wait(1500);
  line.say('what is the weather today');
  await wait(4500);
  line.say('tell me a story');
  await wait(4000);
  line.say('stop');
  await wait(2500);
  await comm.end('demo-finished');
  line.stop();

  print('\nTurn timeline (ms from the caller\'s end of speech; voice-to-voice = first audio out):');
  print('turn  kind       stt_final  llm_request  llm_first_token  tts_first_audio  first_audio_out  interrupted');
  for (const m of turns) {
    const base = m.userSpeechEnd;
    const rel = (v: number | undefined) => (v === undefined || base === undefined ? '-' : String(Math.round(v - base)));
    print(
      `${String(m.turnId).padEnd(6)}${m.kind.padEnd(11)}${rel(m.sttFinal).padEnd(11)}${rel(m.llmRequest).padEnd(13)}${rel(m.llmFirstToken).padEnd(17)}${rel(m.ttsFirstAudio).padEnd(17)}${rel(m.firstAudioOut).padEnd(17)}${m.interrupted}`,
    );
  }
  return turns;
}
