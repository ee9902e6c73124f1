import { describe, expect, it } from 'vitest';
import { answerSdp, offerSdp, parseSdp, type LocalMedia, type SdpAnswer, type SessionDescription } from '../../../shared/telephony/sip/sdp';
import { SipError } from '../../../shared/telephony/sip/sip-error';

/** The typical carrier offer of reference §6.2, without its annotations. */
const CARRIER_OFFER = [
  'v=0',
  'o=- 3912345678 3912345678 IN IP4 203.0.113.10',
  's=-',
  'c=IN IP4 203.0.113.10',
  't=0 0',
  'm=audio 40000 RTP/AVP 0 8 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=sendrecv',
  '',
].join('\r\n');

const LOCAL: LocalMedia = { address: '198.51.100.7', rtpPort: 30000, sessionId: '4242', sessionVersion: 1 };

const parsed = (text: string) => {
  const sdp = parseSdp(text);
  expect(sdp).not.toBeInstanceOf(SipError);
  return sdp as SessionDescription;
};
const answered = (text: string, local: LocalMedia = LOCAL) => {
  const answer = answerSdp(parsed(text), local);
  expect(answer.type).toBe('answer');
  return answer as SdpAnswer;
};

describe('SDP offer parsing (RFC 4566)', () => {
  it('reads origin, session connection, the audio stream, rtpmap, fmtp, ptime and direction', () => {
    const sdp = parsed(CARRIER_OFFER);
    expect(sdp.origin).toEqual({ username: '-', sessionId: '3912345678', sessionVersion: '3912345678', addrType: 'IP4', address: '203.0.113.10' });
    expect(sdp.connection).toEqual({ addrType: 'IP4', address: '203.0.113.10' });
    const audio = sdp.media[0]!;
    expect(audio).toMatchObject({ media: 'audio', port: 40000, proto: 'RTP/AVP', formats: ['0', '8', '101'], ptimeMs: 20, direction: 'sendrecv' });
    expect(audio.rtpmap.get(101)).toEqual({ encoding: 'telephone-event', clockRateHz: 8000 });
    expect(audio.fmtp.get(101)).toBe('0-16');
  });

  it('prefers a media-level c= over the session one', () => {
    const sdp = parsed(CARRIER_OFFER.replace('a=ptime:20', 'c=IN IP4 192.0.2.55\r\na=ptime:20'));
    expect(sdp.media[0]!.connection).toEqual({ addrType: 'IP4', address: '192.0.2.55' });
    expect(answered(CARRIER_OFFER.replace('a=ptime:20', 'c=IN IP4 192.0.2.55\r\na=ptime:20')).remote).toEqual({ address: '192.0.2.55', port: 40000 });
  });

  it.each([
    ['no v=0 first', CARRIER_OFFER.replace('v=0\r\n', ''), 'malformed'],
    ['bad o= line', CARRIER_OFFER.replace('o=- 3912345678 3912345678 IN IP4', 'o=- x y IN IP4'), 'malformed'],
    ['missing o=', CARRIER_OFFER.replace(/o=[^\r]*\r\n/, ''), 'missing'],
    ['missing s=', CARRIER_OFFER.replace('s=-\r\n', ''), 'missing'],
    ['missing t=', CARRIER_OFFER.replace('t=0 0\r\n', ''), 'missing'],
    ['bad c=', CARRIER_OFFER.replace('c=IN IP4 203.0.113.10', 'c=IN IPX 203.0.113.10'), 'malformed'],
    ['bad m= port', CARRIER_OFFER.replace('m=audio 40000', 'm=audio 99999'), 'malformed'],
    ['truncated m=', CARRIER_OFFER.replace('m=audio 40000 RTP/AVP 0 8 101', 'm=audio'), 'malformed'],
    ['bad rtpmap', CARRIER_OFFER.replace('a=rtpmap:8 PCMA/8000', 'a=rtpmap:8 PCMA'), 'malformed'],
    ['bad ptime', CARRIER_OFFER.replace('a=ptime:20', 'a=ptime:twenty'), 'malformed'],
    ['not a type=value line', CARRIER_OFFER.replace('s=-', 'garbage'), 'malformed'],
    ['oversize', CARRIER_OFFER + 'a=x:' + 'y'.repeat(20_000) + '\r\n', 'too-large'],
  ])('rejects %s with a typed error', (_name, text, code) => {
    const result = parseSdp(text);
    expect(result).toBeInstanceOf(SipError);
    expect((result as SipError).code).toBe(code);
  });

  it('never throws on random text (fixed seed)', () => {
    let state = 7;
    const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
    const alphabet = 'vosctma=:/ 0123456789\r\nINIP4PCMU';
    for (let round = 0; round < 2000; round += 1) {
      let text = round % 2 ? 'v=0\r\n' : '';
      const length = next() % 300;
      for (let i = 0; i < length; i += 1) text += alphabet[next() % alphabet.length];
      const result = parseSdp(text);
      expect(result instanceof SipError || Array.isArray(result.media)).toBe(true);
    }
  });
});

describe('SDP answer (RFC 3264, reference §6.2)', () => {
  it('answers the carrier offer with PCMU + telephone-event 101, ptime 20, our address and port', () => {
    const answer = answered(CARRIER_OFFER);
    expect(answer).toMatchObject({ codec: 'PCMU', payloadType: 0, telephoneEventPayloadType: 101, remote: { address: '203.0.113.10', port: 40000 }, onHold: false, answerDirection: 'sendrecv' });
    expect(answer.sdp).toBe([
      'v=0',
      'o=- 4242 1 IN IP4 198.51.100.7',
      's=-',
      'c=IN IP4 198.51.100.7',
      't=0 0',
      'm=audio 30000 RTP/AVP 0 101',
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-16',
      'a=ptime:20',
      'a=sendrecv',
      '',
    ].join('\r\n'));
    // The answer is itself valid SDP whose formats are a subset of the offer's.
    const back = parsed(answer.sdp);
    expect(back.media[0]!.formats.every((f) => ['0', '8', '101'].includes(f))).toBe(true);
  });

  it('follows the offerer preference (PCMA first) and keeps a dynamic telephone-event number', () => {
    const offer = CARRIER_OFFER.replace('RTP/AVP 0 8 101', 'RTP/AVP 8 0 96').replace(/101/g, '96');
    const answer = answered(offer);
    expect(answer).toMatchObject({ codec: 'PCMA', payloadType: 8, telephoneEventPayloadType: 96 });
    expect(answer.sdp).toContain('m=audio 30000 RTP/AVP 8 96\r\n');
    expect(answer.sdp).toContain('a=rtpmap:8 PCMA/8000\r\n');
    expect(answer.sdp).toContain('a=rtpmap:96 telephone-event/8000\r\n');
  });

  it('honours our own preference when given, and static PTs without rtpmap', () => {
    const offer = 'v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 8\r\n';
    expect(answered(offer, { ...LOCAL, codecs: ['PCMA', 'PCMU'] })).toMatchObject({ codec: 'PCMA', payloadType: 8 });
    const noTe = answered(offer);
    expect(noTe.telephoneEventPayloadType).toBeUndefined();
    expect(noTe.sdp).not.toContain('telephone-event');
  });

  it('returns noCommonCodec (the caller sends 488) when no G.711 is offered', () => {
    const offer = CARRIER_OFFER.replace('RTP/AVP 0 8 101', 'RTP/AVP 9 18 101').replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:9 G722/8000').replace('a=rtpmap:8 PCMA/8000', 'a=rtpmap:18 G729/8000');
    const result = answerSdp(parsed(offer), LOCAL);
    expect(result.type).toBe('noCommonCodec');
    expect((result as { reason: string }).reason).toContain('PCMU/PCMA');
    // PCMU at the wrong clock rate is not PCMU for us either.
    const wrongClock = answerSdp(parsed(CARRIER_OFFER.replace('RTP/AVP 0 8 101', 'RTP/AVP 97').replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:97 PCMU/16000')), LOCAL);
    expect(wrongClock.type).toBe('noCommonCodec');
    // An audio stream with port 0 is disabled; video alone is nothing to answer.
    expect(answerSdp(parsed(CARRIER_OFFER.replace('m=audio 40000', 'm=audio 0')), LOCAL).type).toBe('noCommonCodec');
    expect(answerSdp(parsed('v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5006 RTP/AVP 96\r\n'), LOCAL).type).toBe('noCommonCodec');
  });

  it('keeps the m= line count and order, rejecting the others with port 0', () => {
    const offer = CARRIER_OFFER.replace('m=audio 40000', 'm=video 40002 RTP/AVP 96\r\nm=audio 40000');
    const answer = answered(offer);
    const lines = answer.sdp.split('\r\n').filter((l) => l.startsWith('m='));
    expect(lines).toEqual(['m=video 0 RTP/AVP 96', 'm=audio 30000 RTP/AVP 0 101']);
  });

  it.each([
    ['sendonly', 'recvonly', true],
    ['recvonly', 'sendonly', false],
    ['inactive', 'inactive', true],
    ['sendrecv', 'sendrecv', false],
  ] as const)('direction %s is answered %s (hold: %s)', (offered, answer, onHold) => {
    const result = answered(CARRIER_OFFER.replace('a=sendrecv', `a=${offered}`));
    expect(result).toMatchObject({ offeredDirection: offered, answerDirection: answer, onHold });
    expect(result.sdp).toContain(`a=${answer}\r\n`);
  });

  it('detects legacy hold (c=0.0.0.0) and a session-level direction', () => {
    expect(answered(CARRIER_OFFER.replace('c=IN IP4 203.0.113.10', 'c=IN IP4 0.0.0.0')).onHold).toBe(true);
    const sessionLevel = CARRIER_OFFER.replace('a=sendrecv\r\n', '').replace('t=0 0\r\n', 't=0 0\r\na=sendonly\r\n');
    expect(answered(sessionLevel)).toMatchObject({ offeredDirection: 'sendonly', answerDirection: 'recvonly', onHold: true });
  });

  it('writes an IPv6 address as IP6 and rejects a bad local port or a stream without c=', () => {
    expect(answered(CARRIER_OFFER, { ...LOCAL, address: '2001:db8::7' }).sdp).toContain('c=IN IP6 2001:db8::7\r\n');
    expect(answerSdp(parsed(CARRIER_OFFER), { ...LOCAL, rtpPort: 0 })).toMatchObject({ code: 'invalid-argument' });
    expect(answerSdp(parsed(CARRIER_OFFER.replace('c=IN IP4 203.0.113.10\r\n', '')), LOCAL)).toMatchObject({ code: 'missing' });
  });
});

describe('SDP offer (outbound calls)', () => {
  it('offers our G.711 codecs and telephone-event; the answer to it is read with answerSdp', () => {
    const local = { address: '198.51.100.10', rtpPort: 10002, sessionId: '42', sessionVersion: 1 };
    const offer = parseSdp(offerSdp(local));
    if (offer instanceof SipError) throw new Error(offer.message);
    expect(offer.origin).toMatchObject({ sessionId: '42', sessionVersion: '1', address: '198.51.100.10' });
    expect(offer.media[0]).toMatchObject({ media: 'audio', port: 10002, proto: 'RTP/AVP', formats: ['0', '8', '101'] });
    expect(offer.media[0]!.rtpmap.get(101)).toMatchObject({ encoding: 'telephone-event', clockRateHz: 8000 });
    // A callee keeping PCMA only: what we read from its answer.
    const calleeAnswer = parseSdp('v=0\r\no=- 7 7 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n');
    if (calleeAnswer instanceof SipError) throw new Error(calleeAnswer.message);
    const read = answerSdp(calleeAnswer, local);
    expect(read).toMatchObject({ type: 'answer', codec: 'PCMA', payloadType: 8, telephoneEventPayloadType: 101, remote: { address: '203.0.113.5', port: 40000 } });
    expect(parseSdp(offerSdp({ ...local, address: '2001:db8::1', codecs: ['PCMU'] }))).toMatchObject({ media: [{ formats: ['0', '101'] }] });
  });
});
