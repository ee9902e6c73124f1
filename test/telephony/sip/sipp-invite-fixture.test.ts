import { describe, expect, it } from 'vitest';
import { bodyText, buildResponse, getHeader, parseSipMessage, serializeSipMessage, type SipRequest, type SipResponse } from '../../../shared/telephony/sip/message';
import { answerSdp, parseSdp, type SdpAnswer, type SessionDescription } from '../../../shared/telephony/sip/sdp';
import { SipError } from '../../../shared/telephony/sip/sip-error';

/**
 * The INVITE of sipp's built-in `uac` scenario (`sipp -sn uac`), written from its documented template with
 * the keywords filled in as sipp fills them: sipp sends CRLF line ends, pads `[len]` to a fixed width, makes
 * the branch `z9hG4bK-<pid>-<call>-<msg>`, the From-tag `<pid>SIPpTag00<call>` and the Call-ID `<call>-<pid>@<ip>`.
 */
const TEMPLATE = `INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Subject: Performance Test
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
`;

function sippInvite(): string {
  const values: Record<string, string> = {
    service: 'service', remote_ip: '127.0.0.1', remote_port: '5090', transport: 'UDP', local_ip: '127.0.0.1', local_port: '5061',
    branch: 'z9hG4bK-4242-1-0', pid: '4242', call_number: '1', call_id: '1-4242@127.0.0.1', local_ip_type: '4', media_ip_type: '4',
    media_ip: '127.0.0.1', media_port: '6000',
  };
  const filled = TEMPLATE.replace(/\[(\w+)\]/g, (whole, key: string) => (key === 'len' ? whole : values[key] ?? whole)).replace(/\n/g, '\r\n');
  const body = filled.slice(filled.indexOf('\r\n\r\n') + 4);
  return filled.replace('[len]', String(body.length).padStart(5, ' '));
}

describe('the INVITE of sipp uac, answered with a 200 OK', () => {
  it('parses exactly as sipp sends it', () => {
    const invite = parseSipMessage(sippInvite());
    expect(invite).not.toBeInstanceOf(SipError);
    const req = invite as SipRequest;
    expect(req).toMatchObject({ kind: 'request', method: 'INVITE', callId: '1-4242@127.0.0.1', cseq: { seq: 1, method: 'INVITE' }, maxForwards: 70 });
    expect(req.requestUri).toMatchObject({ user: 'service', host: '127.0.0.1', port: 5090 });
    expect(req.via).toHaveLength(1);
    expect(req.via[0]).toMatchObject({ transport: 'UDP', host: '127.0.0.1', port: 5061, branch: 'z9hG4bK-4242-1-0' });
    expect(req.from).toMatchObject({ displayName: 'sipp', tag: '4242SIPpTag001' });
    expect(req.to).toMatchObject({ displayName: 'service', uri: { user: 'service' } });
    expect(req.to.tag).toBeUndefined();
    // sipp's Contact is a bare addr-spec.
    expect(req.contact[0]!.uri).toMatchObject({ user: 'sipp', host: '127.0.0.1', port: 5061 });
    expect(getHeader(req, 'subject')).toBe('Performance Test');
    expect(bodyText(req).startsWith('v=0\r\n')).toBe(true);
    expect(bodyText(req).endsWith('a=rtpmap:0 PCMU/8000\r\n')).toBe(true);
  });

  it('answers with 100 Trying, then a 200 OK carrying our To-tag, Contact and a PCMU SDP answer', () => {
    const req = parseSipMessage(sippInvite()) as SipRequest;
    const offer = parseSdp(req.body) as SessionDescription;
    const answer = answerSdp(offer, { address: '127.0.0.1', rtpPort: 10000, sessionId: '1', sessionVersion: 1 }) as SdpAnswer;
    expect(answer).toMatchObject({ type: 'answer', codec: 'PCMU', payloadType: 0, remote: { address: '127.0.0.1', port: 6000 }, onHold: false });
    expect(answer.telephoneEventPayloadType).toBeUndefined();

    const source = { address: '127.0.0.1', port: 5061 };
    const trying = new TextDecoder().decode(serializeSipMessage(buildResponse(req, 100, 'Trying', [], undefined, { source })));
    expect(trying).toBe([
      'SIP/2.0 100 Trying',
      'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0',
      'From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001',
      'To: service <sip:service@127.0.0.1:5090>',
      'Call-ID: 1-4242@127.0.0.1',
      'CSeq: 1 INVITE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));

    const ok = serializeSipMessage(buildResponse(
      req, 200, 'OK',
      [{ name: 'Contact', value: '<sip:agent@127.0.0.1:5090>' }, { name: 'Content-Type', value: 'application/sdp' }],
      answer.sdp,
      { toTag: 'a1b2c3d4', source },
    ));
    const text = new TextDecoder().decode(ok);
    expect(text.startsWith([
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0',
      'From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001',
      'To: service <sip:service@127.0.0.1:5090>;tag=a1b2c3d4',
      'Call-ID: 1-4242@127.0.0.1',
      'CSeq: 1 INVITE',
      'Contact: <sip:agent@127.0.0.1:5090>',
      'Content-Type: application/sdp',
      `Content-Length: ${answer.sdp.length}`,
      '',
      'v=0',
    ].join('\r\n'))).toBe(true);

    // What sipp receives parses back, and its SDP names our media port with PCMU only.
    const back = parseSipMessage(ok) as SipResponse;
    expect(back).toMatchObject({ kind: 'response', status: 200, callId: req.callId, to: { tag: 'a1b2c3d4' } });
    const answered = parseSdp(back.body) as SessionDescription;
    expect(answered.media[0]).toMatchObject({ media: 'audio', port: 10000, formats: ['0'], direction: 'sendrecv', ptimeMs: 20 });
  });
});
