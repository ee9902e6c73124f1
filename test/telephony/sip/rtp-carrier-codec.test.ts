import { describe, expect, it } from 'vitest';
import { ALAW_8K, MULAW_8K } from '../../../shared/audio/format';
import { createRtpCarrierCodec } from '../../../shared/telephony/sip/rtp-carrier-codec';

describe('RTP carrier codec (the SIP call as the carrier channel sees it)', () => {
  it('describes a G.711 carrier without marks or clear', () => {
    const pcmu = createRtpCarrierCodec({ codec: 'PCMU', streamId: 's1' });
    expect(pcmu).toMatchObject({ carrier: 'sip', inputFormat: MULAW_8K, outputFormat: MULAW_8K, capabilities: { marks: false, clear: false } });
    const pcma = createRtpCarrierCodec({ codec: 'PCMA', streamId: 's1' });
    expect(pcma.inputFormat).toEqual(ALAW_8K);
    expect(pcma.outputFormat).toEqual(ALAW_8K);
  });

  it('decodes the control messages', () => {
    const codec = createRtpCarrierCodec({ codec: 'PCMU', streamId: 'call-1@host', callId: 'call-1@host' });
    expect(codec.decode('start')).toEqual({ type: 'start', streamId: 'call-1@host', callId: 'call-1@host', parameters: {} });
    expect(createRtpCarrierCodec({ codec: 'PCMU', streamId: 'x' }).decode('start')).toEqual({ type: 'start', streamId: 'x', parameters: {} });
    expect(codec.decode('stop')).toEqual({ type: 'stop' });
    expect(codec.decode('stop:rtp-timeout')).toEqual({ type: 'stop', reason: 'rtp-timeout' });
    expect(codec.decode('stop:Bad Reason!').type).toBe('protocolError');
    for (const digit of '0123456789*#ABCD') expect(codec.decode(`dtmf:${digit}`)).toEqual({ type: 'dtmf', digit });
  });

  it('passes audio through as it is (no copy), 1 to 8000 bytes', () => {
    const codec = createRtpCarrierCodec({ codec: 'PCMU', streamId: 's' });
    const frame = new Uint8Array(160).fill(0x7f);
    const event = codec.decode(frame);
    expect(event).toEqual({ type: 'media', audio: frame });
    expect((event as { audio: Uint8Array }).audio).toBe(frame);
    expect(codec.decode(new Uint8Array(8000)).type).toBe('media');
    expect(codec.decode(new Uint8Array(1)).type).toBe('media');
  });

  it('returns protocol errors for empty or oversized audio and unknown messages, never throws', () => {
    const codec = createRtpCarrierCodec({ codec: 'PCMA', streamId: 's' });
    expect(codec.decode(new Uint8Array(0))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(codec.decode(new Uint8Array(8001))).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(codec.decode('dtmf:')).toMatchObject({ type: 'protocolError', code: 'invalid-message' });
    expect(codec.decode('dtmf:55')).toMatchObject({ type: 'protocolError' });
    expect(codec.decode('dtmf:e')).toMatchObject({ type: 'protocolError' });
    expect(codec.decode('hello')).toMatchObject({ type: 'protocolError', code: 'unknown-event' });
    const long = codec.decode('x'.repeat(10_000));
    expect(long.type).toBe('protocolError');
    expect((long as { message: string }).message.length).toBeLessThan(100);
  });

  it('encodes media as the bytes themselves; marks and clear have no wire form', () => {
    const codec = createRtpCarrierCodec({ codec: 'PCMU', streamId: 's' });
    const audio = new Uint8Array(320).fill(1);
    expect(codec.encodeMedia('s', audio)).toBe(audio);
    expect(codec.encodeMark('s', 'm1')).toBeUndefined();
    expect(codec.encodeClear('s')).toBeUndefined();
  });
});
