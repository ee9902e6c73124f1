import { MULAW_8K, type AudioFormat } from '../../shared/audio/format';
import { ASTERISK_AUDIO_FORMATS, createAsteriskWsCodec } from '../../shared/telephony/asterisk-ws';
import type { CarrierCodec, CarrierLink } from '../../shared/telephony/carrier';
import { createExotelCarrierCodec, EXOTEL_DEFAULT_FORMAT } from '../../shared/telephony/exotel';
import { connectExotel } from './exotel-link';
import { twilioCarrierCodec } from '../../shared/telephony/twilio';
import { createVonageCarrierCodec, VONAGE_L16_16K } from '../../shared/telephony/vonage';

/**
 * The carriers whose media reaches this node over a WebSocket at `/v1/talk/{provider}/ctx/{contextId}`
 * (AudioSocket arrives over TCP and uses the same call loop). Adding a carrier = a pure codec in
 * shared/telephony plus one entry here; everything else (claim, start, pre-warm, pacing, marks, clear,
 * hang-up, bookkeeping) is one loop in media-node/server.ts.
 */
export interface CarrierMedia {
  /** The path segment and the call context's `provider`. */
  readonly provider: string;
  /** A codec for one connection (stateful codecs keep per-stream state). */
  codec(): CarrierCodec;
  /** The format the greeting is pre-synthesised in (a start message may still announce another). */
  readonly outputFormat: AudioFormat;
  /**
   * For a carrier whose framing needs I/O of its own (Exotel batches 20 ms frames into chunks over time, with a
   * flush timer): its codec and a link wrapping the transport, made together; used instead of `codec()`.
   */
  connect?(link: CarrierLink): { codec: CarrierCodec; link: CarrierLink };
  /**
   * The context id may also arrive as `?contextId=` on `/v1/talk/{provider}/ctx` or `/v1/talk/{provider}`:
   * for Asterisk, whose WebSocket client URI is fixed in websocket_client.conf and can only get parameters
   * appended per call (the dial string's `v()` option).
   */
  readonly contextIdInQuery?: boolean;
  /** The carrier sends no status callbacks (Asterisk, SIP): the end of the media is the end of the call. */
  readonly endsWithMedia?: boolean;
  /** The carrier can hand the caller over (SIP REFER): `transfer_call` uses it; a rejection is spoken as the fallback. */
  transfer?(to: string): Promise<void>;
}

export const CARRIER_MEDIA: ReadonlyMap<string, CarrierMedia> = new Map<string, CarrierMedia>([
  ['twilio', { provider: 'twilio', codec: () => twilioCarrierCodec, outputFormat: MULAW_8K }],
  // L16 16 kHz unless the answer URL asked for rate=8000 (then websocket:connected says so and the greeting is resampled once).
  ['vonage', { provider: 'vonage', codec: () => createVonageCarrierCodec(), outputFormat: VONAGE_L16_16K }],
  ['exotel', { provider: 'exotel', codec: createExotelCarrierCodec, outputFormat: EXOTEL_DEFAULT_FORMAT, connect: (link) => connectExotel(link) }],
  // chan_websocket: the codec MEDIA_START names (c(...) in the dial string); slin16 is what the guide recommends.
  ['asterisk', { provider: 'asterisk', codec: createAsteriskWsCodec, outputFormat: ASTERISK_AUDIO_FORMATS.slin16!, contextIdInQuery: true, endsWithMedia: true }],
]);

/** `/v1/talk/{provider}/ctx/{contextId}` (a trailing slash and query parameters allowed). */
export const CARRIER_MEDIA_PATH = /^\/v1\/talk\/([a-z0-9-]+)\/ctx\/([^/]+)\/?$/;
/** `/v1/talk/{provider}/ctx` or `/v1/talk/{provider}` with the id in `?contextId=` (carriers with `contextIdInQuery`). */
const CARRIER_MEDIA_QUERY_PATH = /^\/v1\/talk\/([a-z0-9-]+)(?:\/ctx)?\/?$/;

export type CarrierMediaTarget =
  | { readonly media: CarrierMedia; readonly contextId: string }
  | { readonly refused: 400 | 404; readonly reason: string };

/**
 * Which carrier and call context a media WebSocket URL names. The path form wins; other query parameters are
 * ignored (Asterisk may append its own); a `contextId` parameter that contradicts the path id is refused.
 */
export function resolveCarrierMediaUrl(url: URL): CarrierMediaTarget {
  const inPath = CARRIER_MEDIA_PATH.exec(url.pathname);
  const inQueryPath = inPath ? undefined : CARRIER_MEDIA_QUERY_PATH.exec(url.pathname);
  const media = CARRIER_MEDIA.get((inPath ?? inQueryPath)?.[1] ?? '');
  if (!media) return { refused: 404, reason: 'no media endpoint here' };
  const fromQuery = media.contextIdInQuery ? (url.searchParams.get('contextId') ?? undefined) : undefined;
  if (inPath) {
    const contextId = decodeSegment(inPath[2]!);
    if (contextId === undefined) return { refused: 400, reason: 'the context id in the path is not valid percent-encoding' };
    if (fromQuery !== undefined && fromQuery !== contextId) return { refused: 400, reason: 'the path and ?contextId= name different contexts' };
    return { media, contextId };
  }
  if (!media.contextIdInQuery) return { refused: 404, reason: 'no media endpoint here' };
  if (!fromQuery) return { refused: 400, reason: 'name the call context: /ctx/{contextId} or ?contextId={contextId}' };
  return { media, contextId: fromQuery };
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
