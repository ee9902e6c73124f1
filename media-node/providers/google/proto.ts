import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Google's Speech-to-Text v2 and Text-to-Speech v1 messages, loaded at run time by `@grpc/proto-loader` from the
 * wire-compatible subsets in protos/google/ (Google's package, message and field numbers; everything else left
 * out and skipped as unknown fields). Why proto-loader and not a hand-written codec like grpc/health.ts: these
 * messages nest five deep (response → result → alternative → word → Duration) with oneofs and enums, the
 * .proto is the one spec the adapter and the test fake both read (the fake never imports adapter code), and
 * it can be diffed against googleapis line by line. proto-loader is grpc-js's own companion (already its
 * dependency), so it adds no new code to the install.
 *
 * Field names stay snake_case (keepCase), int64 Duration seconds come back as numbers, enums as their names.
 * Decoding is the adapter's business, not grpc-js's: a call's deserializer is the identity and `decode*`
 * returns undefined for bytes that are not a valid message, so one garbage frame never cancels the call
 * (grpc-js turns a throwing deserializer into status INTERNAL).
 */

export const PROTO_ROOT = fileURLToPath(new URL('../../../protos', import.meta.url));
export const SPEECH_PROTO = 'google/cloud/speech/v2/cloud_speech.proto';
export const TTS_PROTO = 'google/cloud/texttospeech/v1/tts.proto';

export const STREAMING_RECOGNIZE_PATH = '/google.cloud.speech.v2.Speech/StreamingRecognize';
export const STREAMING_SYNTHESIZE_PATH = '/google.cloud.texttospeech.v1.TextToSpeech/StreamingSynthesize';

export interface Duration {
  readonly seconds?: number;
  readonly nanos?: number;
}

// ---- Speech-to-Text v2 ----------------------------------------------------------------------------------------

export interface StreamingRecognizeRequest {
  readonly recognizer?: string;
  readonly streaming_config?: {
    readonly config: {
      readonly explicit_decoding_config: { readonly encoding: 'LINEAR16' | 'MULAW' | 'ALAW'; readonly sample_rate_hertz: number; readonly audio_channel_count: number };
      readonly model?: string;
      readonly language_codes: readonly string[];
      readonly features: {
        readonly profanity_filter?: boolean;
        readonly enable_word_time_offsets?: boolean;
        readonly enable_word_confidence?: boolean;
        readonly enable_automatic_punctuation?: boolean;
      };
    };
    readonly streaming_features: { readonly enable_voice_activity_events?: boolean; readonly interim_results?: boolean };
  };
  readonly audio?: Uint8Array;
}

export interface WordInfo {
  readonly start_offset?: Duration;
  readonly end_offset?: Duration;
  readonly word?: string;
  readonly confidence?: number;
}

export interface StreamingRecognitionResult {
  readonly alternatives?: readonly { readonly transcript?: string; readonly confidence?: number; readonly words?: readonly WordInfo[] }[];
  readonly is_final?: boolean;
  readonly stability?: number;
  readonly result_end_offset?: Duration;
}

export interface StreamingRecognizeResponse {
  readonly results?: readonly StreamingRecognitionResult[];
  /** Enum name; a value this subset does not know comes back as its number. */
  readonly speech_event_type?: string | number;
  readonly speech_event_offset?: Duration;
}

// ---- Text-to-Speech v1 ----------------------------------------------------------------------------------------

export type TtsAudioEncoding = 'LINEAR16' | 'MULAW' | 'ALAW' | 'PCM';

export type StreamingSynthesizeRequest =
  | {
      readonly streaming_config: {
        readonly voice: { readonly language_code: string; readonly name?: string };
        readonly streaming_audio_config: { readonly audio_encoding: TtsAudioEncoding; readonly sample_rate_hertz: number; readonly speaking_rate?: number };
      };
    }
  | { readonly input: { readonly text: string } };

export interface StreamingSynthesizeResponse {
  readonly audio_content?: Uint8Array;
}

// ---- codecs ---------------------------------------------------------------------------------------------------

type MethodDefinition = protoLoader.MethodDefinition<object, object>;

let loaded: { recognize: MethodDefinition; synthesize: MethodDefinition } | undefined;

function methods(): { recognize: MethodDefinition; synthesize: MethodDefinition } {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync([SPEECH_PROTO, TTS_PROTO], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const speech = definition['google.cloud.speech.v2.Speech'] as protoLoader.ServiceDefinition;
  const tts = definition['google.cloud.texttospeech.v1.TextToSpeech'] as protoLoader.ServiceDefinition;
  loaded = { recognize: speech.StreamingRecognize as MethodDefinition, synthesize: tts.StreamingSynthesize as MethodDefinition };
  return loaded;
}

export function encodeRecognizeRequest(request: StreamingRecognizeRequest): Buffer {
  return methods().recognize.requestSerialize(request);
}

export function decodeRecognizeResponse(bytes: Buffer): StreamingRecognizeResponse | undefined {
  try {
    return methods().recognize.responseDeserialize(bytes) as StreamingRecognizeResponse;
  } catch {
    return undefined;
  }
}

export function encodeSynthesizeRequest(request: StreamingSynthesizeRequest): Buffer {
  return methods().synthesize.requestSerialize(request);
}

export function decodeSynthesizeResponse(bytes: Buffer): StreamingSynthesizeResponse | undefined {
  try {
    return methods().synthesize.responseDeserialize(bytes) as StreamingSynthesizeResponse;
  } catch {
    return undefined;
  }
}

/** Duration → ms (undefined stays undefined: "not set" differs from 0 for offsets). */
export function durationMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  return (duration.seconds ?? 0) * 1000 + (duration.nanos ?? 0) / 1e6;
}

/** Load the protos now (the first call would otherwise pay ~20 ms of parsing). Throws when protos/ is missing. */
export function loadGoogleProtos(): void {
  methods();
}
