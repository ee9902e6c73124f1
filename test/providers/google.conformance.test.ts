/**
 * Google Cloud speech (`google-speech-service`, gRPC) under the STT and TTS conformance suites, against the
 * local Google fake (test/providers/fakes/google.ts).
 *
 * The suites were written for WebSocket vendors, where one socket is both the session and the connection.
 * gRPC splits the two, and each suite counts what its cases mean:
 * - STT counts sessions: one StreamingRecognize call per stream (a reconnect, a restart or an idle close is a
 *   new call), so the fake's `connections` are its calls. A call's clean end (OK after the half-close) is
 *   recorded as 1000; its metadata are the "handshake headers" (the API key travels as `x-goog-api-key`).
 * - TTS counts what the pool reuses and pre-warms: HTTP/2 connections (every utterance is calls on one
 *   connection), so `connections` are the fake's transports, each with the metadata of its first call; a
 *   connection closed by the client (`close()`) is 1000. A refused call closes its connection (as the WebSocket
 *   fakes answer a refused upgrade with `Connection: close`), so 429 → RESOURCE_EXHAUSTED and 503 → UNAVAILABLE
 *   each cost a connection; test/providers/google.test.ts covers refusals on a connection that stays.
 * Refusals map 401 → UNAUTHENTICATED, 429 → RESOURCE_EXHAUSTED, 503 → UNAVAILABLE; `drop` destroys the TCP
 * connection under the open calls; `dropAfterWords` ends the call with UNAVAILABLE mid-utterance.
 */
import { createGoogleStt, createGoogleTts } from '../../media-node/providers/google';
import { describeSttConformance } from './conformance/stt-suite';
import { describeTtsConformance } from './conformance/tts-suite';
import { startGoogleFake } from './fakes/google';

const retry = { attempts: 3, baseDelayMs: 20 };

describeSttConformance({
  name: 'google speech-to-text v2 (gRPC StreamingRecognize)',
  startFake: (options) => startGoogleFake({ ...options, connections: 'calls' }),
  create: ({ replay }) => createGoogleStt({ retry, ...(replay ? {} : { replayMs: 0 }) }),
  session: { model: 'long', language: 'en-US', options: { project: 'fake-project' } },
  authFailure: 'handshake',
  notes: {
    keepAlive: 'none (Google has no keep-alive message): the idle close (OUT_OF_RANGE) is survived by a new stream with the next audio',
    finalize: 'no flush message: the stream is half-closed (finals, then OK) and the next stream takes the audio from there',
  },
});

describeTtsConformance({
  name: 'google text-to-speech v1 (gRPC StreamingSynthesize)',
  startFake: (options) => startGoogleFake({ ...options, connections: 'transports' }),
  create: () => createGoogleTts({ retry }),
  session: { voice: 'en-US-Chirp3-HD-Charon', language: 'en-US', options: {} },
  authFailure: 'handshake',
});
