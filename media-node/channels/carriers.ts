import { MULAW_8K, type AudioFormat } from '../../shared/audio/format';
import type { CarrierCodec } from '../../shared/telephony/carrier';
import { twilioCarrierCodec } from '../../shared/telephony/twilio';

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
}

export const CARRIER_MEDIA: ReadonlyMap<string, CarrierMedia> = new Map<string, CarrierMedia>([
  ['twilio', { provider: 'twilio', codec: () => twilioCarrierCodec, outputFormat: MULAW_8K }],
]);

/** `/v1/talk/{provider}/ctx/{contextId}` (a trailing slash and query parameters allowed). */
export const CARRIER_MEDIA_PATH = /^\/v1\/talk\/([a-z0-9-]+)\/ctx\/([^/]+)\/?$/;
