import { describe, expect, it } from 'vitest';
import { loadWasmModulesNode } from '../../media-node/audio/wasm-node';
import { createSileroVadFactory } from '../../media-node/vad/silero';
import { parseAssistantConfig } from '../../shared/config/assistant';
import { ConfigError } from '../../shared/contracts/errors';
import { createVadFor } from '../../shared/vad/select';
import { createWebRtcVadFactory } from '../../shared/vad/webrtc';

const base = { prompt: 'p', stt: { provider: 's' }, llm: { provider: 'l' }, tts: { provider: 't' } };

describe('choosing the VAD per assistant', () => {
  it('silero is the default and webrtc is selectable, each with the configured options', async () => {
    const webrtc = await createWebRtcVadFactory((await loadWasmModulesNode()).fvad);
    const available = { silero: createSileroVadFactory(), webrtc };
    const silero = await createVadFor(parseAssistantConfig(base).vad, available);
    expect(silero.id).toBe('silero');
    silero.close();
    const chosen = await createVadFor(parseAssistantConfig({ ...base, vad: { provider: 'webrtc', webrtcMode: 3 } }).vad, available);
    expect(chosen.id).toBe('webrtc');
    chosen.close();
  });

  it('a VAD the host cannot run (silero on the edge) is a clear configuration error', async () => {
    const webrtc = await createWebRtcVadFactory((await loadWasmModulesNode()).fvad);
    const error = await createVadFor(parseAssistantConfig(base).vad, { webrtc }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('VAD_UNAVAILABLE');
    expect((error as Error).message).toContain('available: webrtc');
  });
});
