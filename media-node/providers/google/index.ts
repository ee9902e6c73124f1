/**
 * `google-speech-service`: Google Cloud Speech-to-Text v2 (StreamingRecognize) and Text-to-Speech v1
 * (StreamingSynthesize) over gRPC (@grpc/grpc-js with the .proto subsets in protos/google/). Node only
 * (`edgeCapable: false`): workerd has no HTTP/2 client for gRPC.
 *
 * Credential (the block's stored secret): a Google API key (sent as `x-goog-api-key`) or a service-account JSON
 * key (exchanged for an OAuth2 access token with a signed JWT, cached until a minute before it expires). The
 * block's `endpoint` replaces speech.googleapis.com:443 / texttospeech.googleapis.com:443 (`http://host:port`
 * = plaintext HTTP/2, `https://…` = TLS).
 *
 * Register one of each per media node, sharing the token cache:
 *   const auth = createGoogleAuth();
 *   registry.stt.register(createGoogleStt({ ...deps, auth }));
 *   registry.tts.register(createGoogleTts({ ...deps, auth }));
 */
export { createGoogleAuth, parseGoogleCredential } from './auth';
export type { GoogleAuth, GoogleCredential, ServiceAccountKey } from './auth';
export type { GoogleProviderDeps } from './deps';
export { GOOGLE_PROVIDER_ID, createClientPool } from './grpc';
export { loadGoogleProtos } from './proto';
export { GOOGLE_STT_CAPABILITIES, createGoogleStt, googleSttOptionsSchema } from './speech-stt';
export type { GoogleStt, GoogleSttSession } from './speech-stt';
export { GOOGLE_TTS_CAPABILITIES, GOOGLE_TTS_OUTPUT_FORMATS, createGoogleTts, googleTtsOptionsSchema } from './speech-tts';
export type { GoogleTts } from './speech-tts';
