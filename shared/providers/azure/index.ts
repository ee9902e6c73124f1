import type { SpeechToText } from '../../contracts/stt';
import type { Registrable } from '../registry';
import type { SocketProviderDeps } from '../streaming/deps';
import { createSocketStt } from '../streaming/stt-socket';
import { createSocketTts, type SocketTts } from '../streaming/tts-socket';
import { AZURE_ID, type AzureDefaults } from './connection';
import { AZURE_STT_CAPABILITIES, azureSttOptionsSchema, createAzureSttWire } from './stt-wire';
import { createAzureTtsWire } from './tts-wire';

export { AZURE_ID, type AzureDefaults } from './connection';
export { AZURE_STT_CAPABILITIES, azureSttOptionsSchema, createAzureSttWire } from './stt-wire';
export { AZURE_TTS_DEFAULT_VOICE, AZURE_TTS_FORMATS, azureTtsOptionsSchema, createAzureTtsWire } from './tts-wire';

/**
 * Azure Speech streaming STT (`stt.provider: azure-speech-service`) over the SDKs' WebSocket protocol. The
 * wire holds the session's turn state (request id, turn offsets), so each session gets its own wire on the
 * shared socket base. `defaults.region` serves blocks that name neither a region nor an endpoint.
 */
export function createAzureStt(deps: SocketProviderDeps, defaults: AzureDefaults = {}): SpeechToText & Registrable {
  return {
    id: AZURE_ID,
    requiresCredential: true,
    capabilities: AZURE_STT_CAPABILITIES,
    optionsSchema: azureSttOptionsSchema,
    open: (options, onEvent) => createSocketStt(createAzureSttWire(defaults), deps).open(options, onEvent),
  };
}

/** Azure Speech streaming TTS (`tts.provider: azure-speech-service`): one turn per text piece, pooled sockets. */
export function createAzureTts(deps: SocketProviderDeps, defaults: AzureDefaults = {}): SocketTts {
  return { ...createSocketTts(createAzureTtsWire(defaults), deps), requiresCredential: true };
}
