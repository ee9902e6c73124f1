import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { SttSessionOptions, SttWord } from '../../contracts/stt';
import type { SttWire, SttWireEvent } from '../streaming/stt-wire';
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
  ticksToMs,
  zodIssues,
} from './connection';
import { azureTimestamp, encodeBinaryMessage, encodeTextMessage, newRequestId } from './framing';

/**
 * Azure Speech STT over the SDKs' WebSocket protocol (reference/providers.md §1.5; reverse-engineered,
 * unconfirmed: §7), as a mapping for the shared socket base. Chosen over the official SDK
 * (`microsoft-cognitiveservices-speech-sdk`): it runs on the edge as well as the media node, keeps one code path
 * with the other vendors (reconnect with replay, back-off, metrics), and is tested against a local fake that
 * speaks the same frames; the SDK is 10+ MB, Node/browser-only and hard to point at a fake.
 *
 * Per connection: `speech.config`, then the first turn's WAV header (`Path: audio`, `Content-Type: audio/x-wav`,
 * 16 kHz 16-bit mono, sizes 0 as for a stream), then raw PCM16 in `audio` messages, all with the turn's
 * `X-RequestId`. Server messages: `speech.hypothesis`/`speech.fragment` → interim; `speech.phrase` with
 * `RecognitionStatus: Success` → final (detailed format: `NBest[0].Display`, its confidence and word timings);
 * NoMatch/InitialSilenceTimeout/BabbleTimeout/EndOfDictation → nothing; Error/TooManyRequests → retryable,
 * BadRequest/Forbidden → fatal; `speech.startDetected` → speechStarted.
 *
 * Turns. Azure has no flush: the end of a turn's audio (an `audio` message with an empty body) makes the
 * service finish it (last phrase, `speech.endDetected`, `turn.end`). So `finalize()` ends the current turn, and
 * the next audio opens a new one: a new `X-RequestId` and a WAV header in front of that audio, in the same
 * message. A turn the service ends by itself (interactive mode after one phrase, service limits) is handled the
 * same way. Offsets (100-ns ticks) count from the start of their turn; the wire adds where the turn began in
 * the connection's audio, so `audioEndMs` and word times are connection stream time, as the base needs.
 * `close()` ends the open turn and waits for its `turn.end` (then the base closes with 1000).
 *
 * State: the current turn lives in the wire, so every session gets its own wire (`createAzureSttWire()`);
 * `finalize` and `closeMessage` are getters that are undefined when no turn has audio to finish (the base then
 * does nothing, or closes at once).
 *
 * Keep-alive: the protocol has no keep-alive message, and the contract's keep-alive can only send text, which
 * is not audio to Azure. `keepAlive` is false: the engine streams audio (silence included) all call long; if
 * it ever stops, the service's idle close is classified retryable and the base reconnects (with replay).
 */

export const azureSttOptionsSchema = z.object({
  /** The Speech resource's region (`westeurope`); required unless the block sets `endpoint`. */
  region: azureRegionSchema.optional(),
  /** `conversation` is continuous; `interactive` ends its turn after one phrase (a new turn then starts); `dictation` adds punctuation by voice. */
  mode: z.enum(['conversation', 'interactive', 'dictation']).default('conversation'),
  /** `detailed` brings confidence and word timings (`wordLevelTimestamps=true`); `simple` only the display text. */
  format: z.enum(['detailed', 'simple']).default('detailed'),
  profanity: z.enum(['masked', 'removed', 'raw']).default('masked'),
});
export type AzureSttOptions = z.infer<typeof azureSttOptionsSchema>;

export const AZURE_STT_CAPABILITIES = Object.freeze({
  interimResults: true,
  finalize: true,
  wordTimings: true,
  endOfTurn: false,
  edgeCapable: true,
  keepAlive: false,
});

const WHERE = `${AZURE_ID} STT`;
const SAMPLE_RATE_HZ = 16_000;
const BYTES_PER_MS = (SAMPLE_RATE_HZ * 2) / 1000;

function optionsOf(options: SttSessionOptions): AzureSttOptions {
  const parsed = azureSttOptionsSchema.safeParse(options.options);
  if (!parsed.success) {
    throw new ProviderError('AZURE_SPEECH_BAD_OPTIONS', `the options of the ${WHERE} block are invalid: ${zodIssues(parsed.error)}`, false, 'bad-request');
  }
  return parsed.data;
}

/** The RIFF/WAVE header the SDKs send first: PCM, mono, 16 kHz, 16 bit; RIFF and data sizes 0 (a stream). */
export function streamWavHeader(sampleRateHz = SAMPLE_RATE_HZ): Uint8Array {
  const header = new Uint8Array(44);
  const view = new DataView(header.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  view.setUint32(4, 0, true);
  ascii(8, 'WAVEfmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRateHz, true);
  view.setUint32(28, sampleRateHz * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  view.setUint32(40, 0, true);
  return header;
}

const WAV_HEADER = streamWavHeader();

// ---- server messages ------------------------------------------------------------------------------------------

const hypothesisSchema = z.object({ Text: z.string(), Offset: z.number().optional(), Duration: z.number().optional() });

const wordSchema = z.object({ Word: z.string(), Offset: z.number(), Duration: z.number(), Confidence: z.number().optional() });
const phraseSchema = z.object({
  RecognitionStatus: z.string(),
  Offset: z.number().optional(),
  Duration: z.number().optional(),
  DisplayText: z.string().optional(),
  NBest: z
    .array(
      z.object({
        Confidence: z.number().optional(),
        Lexical: z.string().optional(),
        ITN: z.string().optional(),
        MaskedITN: z.string().optional(),
        Display: z.string().optional(),
        Words: z.array(wordSchema).optional(),
      }),
    )
    .optional(),
});
export type AzurePhrase = z.infer<typeof phraseSchema>;

/**
 * What a `RecognitionStatus` means for the engine: `final` (Success), `ignore` (nothing was recognised, or a
 * dictation marker), a ProviderError (the service failed the recognition), or a protocol error for a status
 * this adapter does not know (the base ignores those).
 */
export function recognitionStatusOutcome(status: string): 'final' | 'ignore' | ProviderError {
  switch (status) {
    case 'Success':
      return 'final';
    case 'NoMatch':
    case 'InitialSilenceTimeout':
    case 'BabbleTimeout':
    case 'EndOfDictation':
      return 'ignore';
    case 'Error':
      return new ProviderError('AZURE_SPEECH_RECOGNITION_ERROR', `${WHERE} failed the recognition (RecognitionStatus Error); reconnecting`, true, 'unavailable');
    case 'TooManyRequests':
      return new ProviderError('AZURE_SPEECH_RATE_LIMIT', `${WHERE} is throttling this resource (RecognitionStatus TooManyRequests); retrying`, true, 'rate-limit');
    case 'BadRequest':
      return new ProviderError('AZURE_SPEECH_BAD_REQUEST', `${WHERE} rejected the request (RecognitionStatus BadRequest). Check the language and options of the block.`, false, 'bad-request');
    case 'Forbidden':
      return new ProviderError('AZURE_SPEECH_AUTH', `${WHERE} refused the recognition (RecognitionStatus Forbidden). Check the ${AZURE_ID} credential and its tier.`, false, 'auth');
    default:
      return azureProtocolError(`${WHERE} sent an unknown RecognitionStatus "${status.slice(0, 40)}"`);
  }
}

/**
 * A `speech.phrase` → events. `turnStartMs` is where the phrase's turn began in the connection's audio
 * (undefined when the turn is not known: then no `audioEndMs`, and word times are relative to the turn).
 */
export function phraseEvents(body: unknown, turnStartMs: number | undefined): readonly SttWireEvent[] {
  const parsed = phraseSchema.safeParse(body);
  if (!parsed.success) return [{ type: 'error', error: azureProtocolError(`${WHERE} sent a malformed speech.phrase: ${zodIssues(parsed.error)}`) }];
  const phrase = parsed.data;
  const outcome = recognitionStatusOutcome(phrase.RecognitionStatus);
  if (outcome === 'ignore') return [];
  if (outcome instanceof ProviderError) return [{ type: 'error', error: outcome }];
  const best = phrase.NBest?.[0];
  const text = (best?.Display ?? phrase.DisplayText ?? '').trim();
  if (!text) return [];
  const base = turnStartMs ?? 0;
  const words: SttWord[] | undefined = best?.Words?.map((w) => ({
    word: w.Word,
    startMs: Math.round(base + ticksToMs(w.Offset)),
    endMs: Math.round(base + ticksToMs(w.Offset + w.Duration)),
    ...(w.Confidence !== undefined ? { confidence: w.Confidence } : {}),
  }));
  const audioEndMs = turnStartMs !== undefined && phrase.Offset !== undefined && phrase.Duration !== undefined ? turnStartMs + ticksToMs(phrase.Offset + phrase.Duration) : undefined;
  return [
    {
      type: 'final',
      text,
      ...(best?.Confidence !== undefined ? { confidence: best.Confidence } : {}),
      ...(words?.length ? { words } : {}),
      ...(audioEndMs !== undefined ? { audioEndMs } : {}),
    },
  ];
}

// ---- the wire ---------------------------------------------------------------------------------------------------

interface Turn {
  /** Where the turn's audio began in the connection's audio (ms). */
  readonly startMs: number;
  /** Set when we ended it: its `turn.end` answers a finalize or the close. */
  endedBy?: 'finalize' | 'close';
}

/** One session's wire (it holds the session's turn state: make one per session). */
export function createAzureSttWire(defaults: AzureDefaults = {}): SttWire {
  let requestId = '';
  /** The current turn takes audio (its header went out, it has not been ended by either side). */
  let turnOpen = false;
  let turnAudioBytes = 0;
  /** PCM bytes sent on this connection: its stream time. */
  let connectionBytes = 0;
  const turns = new Map<string, Turn>();

  const audioHeaders = (contentType?: string): [string, string][] => [
    ['Path', 'audio'],
    ['X-RequestId', requestId],
    ['X-Timestamp', azureTimestamp()],
    ...(contentType ? [['Content-Type', contentType] as [string, string]] : []),
  ];

  const startTurn = (): void => {
    requestId = newRequestId();
    turns.set(requestId, { startMs: connectionBytes / BYTES_PER_MS });
    turnOpen = true;
    turnAudioBytes = 0;
  };

  const endTurn = (by: 'finalize' | 'close'): Uint8Array => {
    const turn = turns.get(requestId);
    if (turn) turn.endedBy = by;
    turnOpen = false;
    // An `audio` message with an empty body: the end of this turn's audio.
    return encodeBinaryMessage(audioHeaders(), new Uint8Array(0));
  };

  return {
    id: AZURE_ID,
    capabilities: AZURE_STT_CAPABILITIES,
    optionsSchema: azureSttOptionsSchema,

    connect(options) {
      const headers = azureHandshakeHeaders(options.apiKey, WHERE);
      const opts = optionsOf(options);
      const query: Record<string, string> = { language: options.language, format: opts.format, profanity: opts.profanity };
      if (opts.format === 'detailed') query.wordLevelTimestamps = 'true';
      return { url: azureUrl('stt', WHERE, opts.region ?? defaults.region, options.endpoint, `/speech/recognition/${opts.mode}/cognitiveservices/v1`, query), headers };
    },

    /** A new connection: the config, then a new turn whose WAV header goes out alone (as the SDKs do). */
    open(options) {
      const opts = optionsOf(options);
      turns.clear();
      connectionBytes = 0;
      startTurn();
      const config = {
        context: {
          ...AZURE_CLIENT_CONTEXT,
          audio: {
            source: { bitspersample: 16, channelcount: 1, connectivity: 'Unknown', manufacturer: 'Unknown', model: 'Unknown', samplerate: SAMPLE_RATE_HZ, type: 'Stream' },
          },
        },
        recognition: opts.mode,
      };
      return [
        encodeTextMessage(
          [
            ['Path', 'speech.config'],
            ['X-RequestId', requestId],
            ['X-Timestamp', azureTimestamp()],
            ['Content-Type', 'application/json; charset=utf-8'],
          ],
          JSON.stringify(config),
        ),
        encodeBinaryMessage(audioHeaders('audio/x-wav'), WAV_HEADER),
      ];
    },

    audio(chunk) {
      let message: Uint8Array;
      if (turnOpen) {
        message = encodeBinaryMessage(audioHeaders(), chunk);
      } else {
        // After a finalize (or a turn the service ended): a new turn, its WAV header in front of this audio.
        startTurn();
        const payload = new Uint8Array(WAV_HEADER.length + chunk.byteLength);
        payload.set(WAV_HEADER);
        payload.set(chunk, WAV_HEADER.length);
        message = encodeBinaryMessage(audioHeaders('audio/x-wav'), payload);
      }
      connectionBytes += chunk.byteLength;
      turnAudioBytes += chunk.byteLength;
      return message;
    },

    get finalize() {
      return turnOpen && turnAudioBytes > 0 ? () => endTurn('finalize') : undefined;
    },

    get closeMessage() {
      return turnOpen && turnAudioBytes > 0 ? () => endTurn('close') : undefined;
    },

    decode(data) {
      const message = decodeFrame(data, WHERE);
      if (message instanceof ProviderError) return [{ type: 'error', error: message }];
      if (message.kind === 'binary') return [{ type: 'error', error: azureProtocolError(`${WHERE} sent a binary ${message.path} message; only text messages are defined`) }];
      switch (message.path) {
        case 'turn.start':
        case 'speech.enddetected':
          return [];
        case 'speech.startdetected':
          return [{ type: 'speechStarted' }];
        case 'speech.hypothesis':
        case 'speech.fragment': {
          const body = jsonBody(message, WHERE);
          if (body instanceof ProviderError) return [{ type: 'error', error: body }];
          const parsed = hypothesisSchema.safeParse(body);
          if (!parsed.success) return [{ type: 'error', error: azureProtocolError(`${WHERE} sent a malformed ${message.path}: ${zodIssues(parsed.error)}`) }];
          return parsed.data.Text.trim() ? [{ type: 'interim', text: parsed.data.Text }] : [];
        }
        case 'speech.phrase': {
          const body = jsonBody(message, WHERE);
          if (body instanceof ProviderError) return [{ type: 'error', error: body }];
          const turn = message.requestId !== undefined ? turns.get(message.requestId) : undefined;
          return phraseEvents(body, turn?.startMs);
        }
        case 'turn.end': {
          const id = message.requestId;
          const turn = id !== undefined ? turns.get(id) : undefined;
          if (id !== undefined) turns.delete(id);
          if (turn?.endedBy === 'close') return [{ type: 'closed' }];
          if (turn?.endedBy === 'finalize') return [{ type: 'finalized' }];
          // The service ended the turn itself: the next audio opens a new one.
          if (turn && id === requestId) turnOpen = false;
          return [];
        }
        default:
          return []; // Messages newer than this adapter (e.g. `speech.keyword`, telemetry answers).
      }
    },

    classifyClose: (code, reason) => azureCloseError(code, reason, WHERE),
    classifyHandshake: (status, body) => azureHandshakeError(status, body, WHERE),
  };
}
