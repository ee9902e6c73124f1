import type { AudioFormat } from '../../shared/audio/format';
import type { SttCapabilities } from '../../shared/contracts/stt';
import type { TtsCapabilities } from '../../shared/contracts/tts';
import { assemblyAiSttWire } from '../../shared/providers/assemblyai';
import { AZURE_STT_CAPABILITIES, createAzureTtsWire } from '../../shared/providers/azure';
import { cartesiaSttWire, cartesiaTtsWire } from '../../shared/providers/cartesia';
import { deepgramFluxWire, deepgramSttWire, deepgramTtsWire } from '../../shared/providers/deepgram';
import { createElevenLabsTtsWire } from '../../shared/providers/elevenlabs';
import { revAiSttWire } from '../../shared/providers/revai';
import { sarvamSttWire, sarvamTtsWire } from '../../shared/providers/sarvam';
import { GOOGLE_STT_CAPABILITIES, GOOGLE_TTS_CAPABILITIES } from './google';
import { LOCAL_STT_CAPABILITIES } from './local-stt/pocketsphinx-stt';
import { LOCAL_TTS_CAPABILITIES } from './local-tts/flite-tts';

type SttRow = { id: string; name: string; capabilities: SttCapabilities & { keepAlive?: boolean } };
type TtsRow = { id: string; name: string; capabilities: TtsCapabilities & { cancelWithoutClosing?: boolean; multiplexed?: boolean } };

/** What each speech adapter declares, straight from its wire (or engine): the README's tables are rendered from this. */
export function speechCatalog(): { stt: SttRow[]; tts: TtsRow[] } {
  return {
    stt: [
      { id: 'deepgram', name: 'Deepgram Nova (live, /v1/listen)', capabilities: deepgramSttWire.capabilities },
      { id: 'deepgram', name: 'Deepgram Flux (`flux-*` models, /v2/listen)', capabilities: deepgramFluxWire.capabilities },
      { id: 'cartesia', name: 'Cartesia Ink', capabilities: cartesiaSttWire.capabilities },
      { id: 'sarvamai', name: 'Sarvam AI (streaming, /speech-to-text/ws)', capabilities: sarvamSttWire.capabilities },
      { id: 'assemblyai', name: 'AssemblyAI Universal-Streaming (v3)', capabilities: assemblyAiSttWire.capabilities },
      { id: 'revai', name: 'Rev.ai streaming', capabilities: revAiSttWire.capabilities },
      { id: 'azure-speech-service', name: 'Azure Speech (SDK WebSocket protocol)', capabilities: AZURE_STT_CAPABILITIES },
      { id: 'google-speech-service', name: 'Google Speech-to-Text v2 (gRPC StreamingRecognize)', capabilities: GOOGLE_STT_CAPABILITIES },
      { id: 'local', name: 'PocketSphinx (offline, development)', capabilities: LOCAL_STT_CAPABILITIES },
    ],
    tts: [
      { id: 'deepgram', name: 'Deepgram Aura', capabilities: deepgramTtsWire.capabilities },
      { id: 'elevenlabs', name: 'ElevenLabs (multi-context stream-input)', capabilities: createElevenLabsTtsWire().capabilities },
      { id: 'cartesia', name: 'Cartesia Sonic', capabilities: cartesiaTtsWire.capabilities },
      { id: 'sarvamai', name: 'Sarvam Bulbul', capabilities: sarvamTtsWire.capabilities },
      { id: 'azure-speech-service', name: 'Azure Speech neural voices (one turn per piece)', capabilities: createAzureTtsWire().capabilities },
      { id: 'google-speech-service', name: 'Google Text-to-Speech (gRPC StreamingSynthesize, Chirp 3 HD)', capabilities: GOOGLE_TTS_CAPABILITIES },
      { id: 'local', name: 'Flite (offline, worker threads)', capabilities: LOCAL_TTS_CAPABILITIES },
    ],
  };
}

const yes = (value: boolean | undefined) => (value ? 'yes' : '—');
const formatName = (f: AudioFormat) => `${f.encoding === 'pcm16' ? 'PCM16' : f.encoding === 'mulaw' ? 'μ-law' : f.encoding === 'alaw' ? 'A-law' : f.encoding} ${f.sampleRateHz / 1000} kHz`;
const formats = (list: readonly AudioFormat[]) => list.map(formatName).join(', ');

/** The two Markdown tables of the README's provider section. */
export function renderSpeechTables(): string {
  const { stt, tts } = speechCatalog();
  const lines = [
    '| STT | `provider` | Interim results | Finalize | Keep-alive | Word timings | Own end of turn | Edge |',
    '|---|---|---|---|---|---|---|---|',
    ...stt.map(
      (r) =>
        `| ${r.name} | \`${r.id}\` | ${yes(r.capabilities.interimResults)} | ${yes(r.capabilities.finalize)} | ${yes(r.capabilities.keepAlive)} | ${yes(r.capabilities.wordTimings)} | ${yes(r.capabilities.endOfTurn)} | ${yes(r.capabilities.edgeCapable)} |`,
    ),
    '',
    '| TTS | `provider` | Word timings | Cancel without closing | Contexts on one socket | Output formats | Edge |',
    '|---|---|---|---|---|---|---|',
    ...tts.map(
      (r) =>
        `| ${r.name} | \`${r.id}\` | ${yes(r.capabilities.wordTimings)} | ${yes(r.capabilities.cancelWithoutClosing)} | ${yes(r.capabilities.multiplexed)} | ${formats(r.capabilities.outputFormats)} | ${yes(r.capabilities.edgeCapable)} |`,
    ),
  ];
  return lines.join('\n');
}
