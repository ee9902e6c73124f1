import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { ASSEMBLYAI_ID, assemblyAiSttOptionsSchema, createAssemblyAiSttWire } from './stt-wire';

export { assemblyAiSttOptionsSchema, assemblyAiSttWire, createAssemblyAiSttWire, decodeAssemblyAi } from './stt-wire';

export interface AssemblyAiSttTuning {
  /** KeepAlive interval while no audio flows (default 5000 ms). Tests shorten it. */
  readonly keepAliveIntervalMs?: number;
}

/**
 * The registered `assemblyai` STT (Universal-Streaming v3): the shared socket base with the AssemblyAI wire,
 * whose `audioMessageMs` and `replayPacing` keep every message within 50–1000 ms and a reconnect's replay
 * within real time (stt-wire.ts). The block's `formatTurns` picks the wire (formatted or plain end of turn);
 * capabilities are the same.
 */
export function createAssemblyAiStt(deps: SocketProviderDeps, tuning?: AssemblyAiSttTuning): SpeechToText & Registrable {
  const keepAlive = tuning?.keepAliveIntervalMs !== undefined ? { keepAliveIntervalMs: tuning.keepAliveIntervalMs } : {};
  const plain = createSocketStt(createAssemblyAiSttWire({ formatTurns: false, ...keepAlive }), deps);
  const formatted = createSocketStt(createAssemblyAiSttWire({ formatTurns: true, ...keepAlive }), deps);
  return {
    id: ASSEMBLYAI_ID,
    requiresCredential: true,
    capabilities: plain.capabilities,
    optionsSchema: assemblyAiSttOptionsSchema,
    open(options, onEvent) {
      // Invalid options go to the plain wire, whose connect reports them.
      const parsed = assemblyAiSttOptionsSchema.safeParse(options.options);
      return (parsed.success && parsed.data.formatTurns ? formatted : plain).open(options, onEvent);
    },
  };
}
