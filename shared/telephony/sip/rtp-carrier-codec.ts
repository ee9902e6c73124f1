import { ALAW_8K, MULAW_8K } from '../../audio/format';
import type { CarrierCodec, CarrierEvent, CarrierProtocolError } from '../carrier';
import { clipForMessage } from './sip-error';

/**
 * The carrier codec of a SIP call. The RTP link (media-node/sip/rtp-link.ts) has already done the wire work
 * (RTP decoding, jitter buffer, RFC 4733), so its messages are simple: a `Uint8Array` is one frame of G.711
 * payload in playout order; a string is control: `start` (first), `stop` (the far end hung up), `dtmf:<digit>`.
 * Outbound audio goes to the link as the raw G.711 bytes; the link frames and paces them.
 */

export type G711Name = 'PCMU' | 'PCMA';

/** One second of G.711: far more than a 20 ms frame, so anything larger is a bug upstream, not audio. */
const MAX_MEDIA_BYTES = 8000;
const DTMF_PREFIX = 'dtmf:';
const DTMF_DIGIT = /^[0-9*#A-D]$/;

const STOP: CarrierEvent = Object.freeze({ type: 'stop' });

function protocolError(code: string, message: string): CarrierProtocolError {
  return { type: 'protocolError', code, message };
}

export function createRtpCarrierCodec(options: { readonly codec: G711Name; readonly streamId: string; readonly callId?: string }): CarrierCodec {
  const format = options.codec === 'PCMA' ? ALAW_8K : MULAW_8K;
  const start: CarrierEvent = Object.freeze({
    type: 'start',
    streamId: options.streamId,
    ...(options.callId !== undefined ? { callId: options.callId } : {}),
    parameters: Object.freeze({}),
  });
  return {
    carrier: 'sip',
    inputFormat: format,
    outputFormat: format,
    capabilities: { marks: false, clear: false },
    decode(message) {
      if (typeof message !== 'string') {
        if (message.length === 0 || message.length > MAX_MEDIA_BYTES) {
          return protocolError('invalid-message', `an RTP audio frame must hold 1-${MAX_MEDIA_BYTES} bytes; got ${message.length}`);
        }
        return { type: 'media', audio: message };
      }
      if (message === 'start') return start;
      if (message === 'stop') return STOP;
      // `stop:<reason>`: the link ended the call itself (rtp-timeout), not the caller.
      if (message.startsWith('stop:') && /^[a-z-]{1,40}$/.test(message.slice(5))) return { type: 'stop', reason: message.slice(5) };
      if (message.startsWith(DTMF_PREFIX)) {
        const digit = message.slice(DTMF_PREFIX.length);
        if (DTMF_DIGIT.test(digit)) return { type: 'dtmf', digit };
        return protocolError('invalid-message', `"${clipForMessage(digit)}" is not a DTMF digit`);
      }
      return protocolError('unknown-event', `unknown RTP link message "${clipForMessage(message)}"`);
    },
    encodeMedia: (_streamId, audio) => audio,
    encodeMark: () => undefined,
    encodeClear: () => undefined,
  };
}
