import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { chunkSessionAudio, chunkSocketAudio } from './audio-chunks';
import { ASSEMBLYAI_ID, assemblyAiSttOptionsSchema, createAssemblyAiSttWire } from './stt-wire';

export { createAudioChunker, chunkSessionAudio, chunkSocketAudio } from './audio-chunks';
export { assemblyAiSttOptionsSchema, assemblyAiSttWire, createAssemblyAiSttWire, decodeAssemblyAi } from './stt-wire';

export interface AssemblyAiSttTuning {
  /** KeepAlive interval while no audio flows (default 5000 ms). Tests shorten it. */
  readonly keepAliveIntervalMs?: number;
}

/**
 * The registered `assemblyai` STT (Universal-Streaming v3): the shared socket base with the AssemblyAI wire,
 * plus the audio chunking v3 needs (messages of 50–1000 ms, audio-chunks.ts) on both sides of the base. The
 * block's `formatTurns` picks the wire (formatted or plain end of turn, stt-wire.ts); capabilities are the same.
 */
export function createAssemblyAiStt(deps: SocketProviderDeps, tuning?: AssemblyAiSttTuning): SpeechToText & Registrable {
  const chunkedDeps: SocketProviderDeps = { ...deps, connect: chunkSocketAudio(deps.connect) };
  const keepAlive = tuning?.keepAliveIntervalMs !== undefined ? { keepAliveIntervalMs: tuning.keepAliveIntervalMs } : {};
  const plain = createSocketStt(createAssemblyAiSttWire({ formatTurns: false, ...keepAlive }), chunkedDeps);
  const formatted = createSocketStt(createAssemblyAiSttWire({ formatTurns: true, ...keepAlive }), chunkedDeps);
  return {
    id: ASSEMBLYAI_ID,
    requiresCredential: true,
    capabilities: plain.capabilities,
    optionsSchema: assemblyAiSttOptionsSchema,
    async open(options, onEvent) {
      // Invalid options go to the plain wire, whose connect reports them.
      const parsed = assemblyAiSttOptionsSchema.safeParse(options.options);
      const stt = parsed.success && parsed.data.formatTurns ? formatted : plain;
      return chunkSessionAudio(await stt.open(options, onEvent));
    },
  };
}
