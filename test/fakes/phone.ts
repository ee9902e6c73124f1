import { MULAW_8K } from '../../shared/audio/format';
import { systemClock } from '../../shared/contracts/clock';
import type { ChatMessage } from '../../shared/contracts/llm';
import type { ProviderRegistry } from '../../shared/providers/registry';
import { createFakeLlm } from './llm';
import { createFakeStt } from './stt';
import { createFakeTts } from './tts';

/**
 * The fake providers of the real-time phone suites (a whole media node on the wall clock): tone-word STT,
 * an LLM that answers through `reply`, and a TTS that speaks Twilio's μ-law 8 kHz so audio passes through.
 */
export function registerPhoneFakes(registry: ProviderRegistry, reply: (messages: readonly ChatMessage[]) => string): void {
  registry.stt.register(createFakeStt({ clock: systemClock, latencyMs: 30 }).stt);
  registry.llm.register(createFakeLlm({ clock: systemClock, firstTokenDelayMs: 100, tokenDelayMs: 20, reply }).llm);
  registry.tts.register(createFakeTts({ clock: systemClock, formats: [MULAW_8K], firstAudioDelayMs: 50, realTimeFactor: 0.2 }).tts);
}

/** An assistant configuration (REST body) on those fakes. */
export function phoneAssistant(fields: { name: string; prompt: string; greeting: string; variables?: Record<string, string> }) {
  return {
    ...fields,
    stt: { provider: 'fake-stt' },
    llm: { provider: 'fake-llm' },
    tts: { provider: 'fake-tts' },
    vad: { provider: 'webrtc', webrtcMode: 1 },
    idle: { timeoutMs: 0 },
  };
}
