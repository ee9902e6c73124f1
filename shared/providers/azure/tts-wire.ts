import { z } from 'zod';
import { ALAW_8K, MULAW_8K, bytesPerSample, type AudioFormat } from '../../audio/format';
import { ProviderError } from '../../contracts/errors';
import type { TtsStreamOptions, TtsWordTiming } from '../../contracts/tts';
import type { TtsWire, TtsWireUtterance } from '../streaming/tts-wire';
import {
  AZURE_CLIENT_CONTEXT,
  AZURE_ID,
  type AzureDefaults,
  azureCloseError,
  azureHandshakeError,
  azureHandshakeHeaders,
  azureProtocolError,
  azureRegionSchema,
  azureUrl,
  decodeFrame,
  jsonBody,
  keyFingerprint,
  ticksToMs,
  zodIssues,
} from './connection';
import { azureTimestamp, encodeTextMessage, newRequestId } from './framing';

/**
 * Azure Speech TTS over the SDKs' WebSocket protocol (`/cognitiveservices/websocket/v1`, reference/providers.md
 * §2.5; reverse-engineered, unconfirmed: §7), as a mapping for the shared socket base.
 *
 * Azure synthesises one SSML document per turn, so every text piece is its own turn: `synthesis.context`
 * (output format, word boundaries on) and an `ssml` message under a new `X-RequestId`, sent as soon as the
 * piece arrives (low latency; the alternative, buffering the pieces into one document, would wait for the
 * LLM's last token). The service answers each turn with `turn.start`, `response`, `audio.metadata`
 * (WordBoundary), binary `Path: audio` frames (headers stripped here) and `turn.end`, which becomes the piece's
 * `pieceDone`: Azure has no end-of-utterance message, so after `end()` the last piece's `turn.end` ends the
 * utterance (`lastPieceEndsUtterance`). The request id names the piece, so audio carries its `textIndex`.
 * Word boundary offsets (100-ns ticks) count from the start of their turn's audio; the wire adds the audio of
 * the utterance's earlier turns, so word times are relative to the utterance as the contract wants.
 *
 * One utterance per socket at a time (`multiplexed: false`); `speech.config` once per socket. There is no
 * documented cancel, so `cancel()` closes the socket ('close-socket') and the next utterance takes a new one.
 * Voice and format travel in every request, so one socket serves any voice or format.
 */

export const AZURE_TTS_DEFAULT_VOICE = 'en-US-AvaMultilingualNeural';

export const azureTtsOptionsSchema = z.object({
  /** The Speech resource's region (`westeurope`); required unless the block sets `endpoint`. */
  region: azureRegionSchema.optional(),
});
export type AzureTtsOptions = z.infer<typeof azureTtsOptionsSchema>;

const WHERE = `${AZURE_ID} TTS`;

/** Raw (headerless) WebSocket output formats: the pipeline's encodings only. */
const OUTPUT_FORMATS: readonly (readonly [AudioFormat, string])[] = [
  [{ encoding: 'pcm16', sampleRateHz: 16_000 }, 'raw-16khz-16bit-mono-pcm'],
  [{ encoding: 'pcm16', sampleRateHz: 22_050 }, 'raw-22050hz-16bit-mono-pcm'],
  [{ encoding: 'pcm16', sampleRateHz: 24_000 }, 'raw-24khz-16bit-mono-pcm'],
  [{ encoding: 'pcm16', sampleRateHz: 48_000 }, 'raw-48khz-16bit-mono-pcm'],
  [MULAW_8K, 'raw-8khz-8bit-mono-mulaw'],
  [ALAW_8K, 'raw-8khz-8bit-mono-alaw'],
];

export const AZURE_TTS_FORMATS: readonly AudioFormat[] = Object.freeze(OUTPUT_FORMATS.map(([format]) => Object.freeze({ ...format })));

/** The output format string (`X-Microsoft-OutputFormat` on REST, `outputFormat` in `synthesis.context`). */
export function azureOutputFormat(format: AudioFormat): string {
  const found = OUTPUT_FORMATS.find(([f]) => f.encoding === format.encoding && f.sampleRateHz === format.sampleRateHz);
  if (!found) {
    throw new ProviderError(
      'AZURE_SPEECH_FORMAT',
      `${WHERE} cannot produce ${format.encoding} at ${format.sampleRateHz} Hz over WebSocket (${OUTPUT_FORMATS.map(([, name]) => name).join(', ')})`,
      false,
      'bad-request',
    );
  }
  return found[1];
}

const XML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text safe inside an XML element or a quoted attribute; control characters XML 1.0 forbids are dropped. */
export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '').replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
}

/** The SSML document of one piece. */
export function azureSsml(text: string, voice: string, language: string): string {
  return (
    `<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="${escapeXml(language)}">` +
    `<voice name="${escapeXml(voice)}">${escapeXml(text)}</voice></speak>`
  );
}

function optionsOf(options: TtsStreamOptions): AzureTtsOptions {
  const parsed = azureTtsOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    throw new ProviderError('AZURE_SPEECH_BAD_OPTIONS', `the options of the ${WHERE} block are invalid: ${zodIssues(parsed.error)}`, false, 'bad-request');
  }
  return parsed.data;
}

function url(options: TtsStreamOptions, defaults: AzureDefaults): string {
  return azureUrl('tts', WHERE, optionsOf(options).region ?? defaults.region, options.endpoint, '/cognitiveservices/websocket/v1');
}

const metadataSchema = z.object({
  Metadata: z.array(
    z.object({
      Type: z.string(),
      Data: z
        .object({
          Offset: z.number().optional(),
          Duration: z.number().optional(),
          text: z.object({ Text: z.string(), Length: z.number().optional(), BoundaryType: z.string().optional() }).optional(),
        })
        .passthrough()
        .optional(),
    }),
  ),
});

/** `audio.metadata` → the WordBoundary entries as timings relative to their turn's audio (punctuation, sentences, visemes dropped). */
export function wordBoundaries(body: unknown): TtsWordTiming[] | ProviderError {
  const parsed = metadataSchema.safeParse(body);
  if (!parsed.success) return azureProtocolError(`${WHERE} sent malformed audio.metadata: ${zodIssues(parsed.error)}`);
  const words: TtsWordTiming[] = [];
  for (const entry of parsed.data.Metadata) {
    if (entry.Type !== 'WordBoundary' || !entry.Data) continue;
    const { Offset, Duration, text } = entry.Data;
    if (Offset === undefined || !text || (text.BoundaryType !== undefined && text.BoundaryType !== 'WordBoundary')) continue;
    const startMs = ticksToMs(Offset);
    words.push({ word: text.Text, startMs, endMs: startMs + ticksToMs(Duration ?? 0) });
  }
  return words;
}

// ---- the wire ---------------------------------------------------------------------------------------------------

/** One utterance as the decoder sees it: which piece each request voices, and how much audio came so far. */
interface UtteranceState {
  readonly contextId: string;
  readonly bytesPerMs: number;
  audioMs: number;
  readonly requests: Set<string>;
}

interface Request {
  readonly utterance: UtteranceState;
  readonly index: number;
  /** The utterance's audio before this turn (set at `turn.start`). */
  startMs: number | undefined;
}

/** Requests whose `turn.end` never came (a socket failed) are forgotten beyond this many. */
const MAX_TRACKED_REQUESTS = 4096;

export function createAzureTtsWire(defaults: AzureDefaults = {}): TtsWire {
  /** Every request in flight on any socket of this provider, by `X-RequestId` (unique). */
  const requests = new Map<string, Request>();

  const track = (id: string, request: Request): void => {
    requests.set(id, request);
    request.utterance.requests.add(id);
    if (requests.size > MAX_TRACKED_REQUESTS) {
      const oldest = requests.keys().next().value;
      if (oldest !== undefined) forget(oldest);
    }
  };

  const forget = (id: string): void => {
    requests.get(id)?.utterance.requests.delete(id);
    requests.delete(id);
  };

  const withRequest = (message: { requestId: string | undefined }): Request | undefined => (message.requestId !== undefined ? requests.get(message.requestId) : undefined);

  const textMessage = (path: string, requestId: string, contentType: string, body: string): string =>
    encodeTextMessage(
      [
        ['Path', path],
        ['X-RequestId', requestId],
        ['X-Timestamp', azureTimestamp()],
        ['Content-Type', contentType],
      ],
      body,
    );

  return {
    id: AZURE_ID,
    capabilities: {
      wordTimings: true,
      outputFormats: AZURE_TTS_FORMATS,
      edgeCapable: true,
      multiplexed: false,
      cancelWithoutClosing: false,
      keepAlive: false,
    },
    optionsSchema: azureTtsOptionsSchema,
    lastPieceEndsUtterance: true,

    connect(options) {
      const headers = azureHandshakeHeaders(options.apiKey, WHERE);
      azureOutputFormat(options.format);
      return { url: url(options, defaults), headers };
    },

    connectionKey: (options) => `${url(options, defaults)}|${keyFingerprint(options.apiKey ?? '')}`,

    open: () => [textMessage('speech.config', newRequestId(), 'application/json; charset=utf-8', JSON.stringify({ context: AZURE_CLIENT_CONTEXT }))],

    utterance(contextId, options): TtsWireUtterance {
      const outputFormat = azureOutputFormat(options.format);
      const voice = options.voice ?? AZURE_TTS_DEFAULT_VOICE;
      const state: UtteranceState = {
        contextId,
        bytesPerMs: (options.format.sampleRateHz * bytesPerSample(options.format.encoding)) / 1000,
        audioMs: 0,
        requests: new Set(),
      };
      const context = JSON.stringify({
        synthesis: {
          audio: {
            metadataOptions: {
              bookmarkEnabled: false,
              punctuationBoundaryEnabled: false,
              sentenceBoundaryEnabled: false,
              sessionEndEnabled: false,
              visemeEnabled: false,
              wordBoundaryEnabled: true,
            },
            outputFormat,
          },
          language: { autoDetection: false },
        },
      });
      return {
        begin: () => [],
        text(text, index) {
          const requestId = newRequestId();
          track(requestId, { utterance: state, index, startMs: undefined });
          return [
            textMessage('synthesis.context', requestId, 'application/json; charset=utf-8', context),
            textMessage('ssml', requestId, 'application/ssml+xml', azureSsml(text.trim(), voice, options.language)),
          ];
        },
        // Every piece is its own turn already: the last piece's turn.end ends the utterance.
        end: () => [],
        cancel() {
          for (const id of [...state.requests]) forget(id);
          return 'close-socket';
        },
      };
    },

    decode(data) {
      const message = decodeFrame(data, WHERE);
      if (message instanceof ProviderError) return [{ type: 'error', error: message }];
      const request = withRequest(message);
      if (message.kind === 'binary') {
        if (message.path !== 'audio') return [{ type: 'error', error: azureProtocolError(`${WHERE} sent a binary ${message.path} message`) }];
        const audio = message.body as Uint8Array;
        // Audio of a request that is not ours (a cancelled utterance), or the empty end-of-audio marker.
        if (!request || audio.byteLength === 0) return [];
        const u = request.utterance;
        request.startMs ??= u.audioMs;
        u.audioMs += audio.byteLength / u.bytesPerMs;
        return [{ type: 'audio', contextId: u.contextId, data: audio, textIndex: request.index }];
      }
      switch (message.path) {
        case 'turn.start':
          if (request) request.startMs = request.utterance.audioMs;
          return [];
        case 'audio.metadata': {
          if (!request) return [];
          const body = jsonBody(message, WHERE);
          if (body instanceof ProviderError) return [{ type: 'error', error: body }];
          const words = wordBoundaries(body);
          if (words instanceof ProviderError) return [{ type: 'error', error: words }];
          const offset = request.startMs ?? request.utterance.audioMs;
          const shifted: TtsWordTiming[] = words.map((w) => ({ word: w.word, startMs: Math.round(offset + w.startMs), endMs: Math.round(offset + w.endMs) }));
          return shifted.length ? [{ type: 'words', contextId: request.utterance.contextId, words: shifted }] : [];
        }
        case 'turn.end': {
          if (!request || message.requestId === undefined) return [];
          forget(message.requestId);
          return [{ type: 'pieceDone', contextId: request.utterance.contextId }];
        }
        default:
          return []; // `response` (stream id), and messages newer than this adapter.
      }
    },

    classifyClose: (code, reason) => azureCloseError(code, reason, WHERE),
    classifyHandshake: (status, body) => azureHandshakeError(status, body, WHERE),
  };
}
