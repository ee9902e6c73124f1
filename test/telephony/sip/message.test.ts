import { describe, expect, it } from 'vitest';
import {
  SIP_MAX_HEADERS,
  bodyText,
  buildResponse,
  getHeader,
  getHeaders,
  parseNameAddr,
  parseSipMessage,
  parseVia,
  serializeSipMessage,
  type NameAddr,
  type SipRequest,
  type SipResponse,
} from '../../../shared/telephony/sip/message';
import { SipError } from '../../../shared/telephony/sip/sip-error';

/** Messages written by hand from RFC 3261 §7 / §20 and reference §6.1. */
const crlf = (lines: string[]) => lines.join('\r\n');
const SDP = 'v=0\r\no=- 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

function invite(extra: string[] = [], body = SDP, contentLength: string | null = String(new TextEncoder().encode(body).length)) {
  return crlf([
    'INVITE sip:+15551234567@media.example.com:5090 SIP/2.0',
    'Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport',
    'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1;received=198.51.100.2',
    'Max-Forwards: 70',
    'To: <sip:+15551234567@media.example.com>',
    'From: "Alice, Smith" <sip:alice@carrier.example>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pc33.example.com',
    'CSeq: 314159 INVITE',
    'Contact: <sip:alice@203.0.113.10:5060>',
    'Content-Type: application/sdp',
    ...extra,
    ...(contentLength === null ? [] : [`Content-Length: ${contentLength}`]),
    '',
    body,
  ]);
}

const asRequest = (value: unknown) => {
  expect(value).not.toBeInstanceOf(SipError);
  expect((value as SipRequest).kind).toBe('request');
  return value as SipRequest;
};

describe('SIP request parsing (RFC 3261 §7.1, §20)', () => {
  it('reads the request line, the mandatory headers and the body', () => {
    const req = asRequest(parseSipMessage(invite()));
    expect(req.method).toBe('INVITE');
    expect(req.requestUri).toMatchObject({ scheme: 'sip', user: '+15551234567', host: 'media.example.com', port: 5090 });
    expect(req.callId).toBe('a84b4c76e66710@pc33.example.com');
    expect(req.cseq).toEqual({ seq: 314159, method: 'INVITE' });
    expect(req.maxForwards).toBe(70);
    expect(req.from).toMatchObject({ displayName: 'Alice, Smith', tag: '1928301774' });
    expect(req.from.uri).toMatchObject({ user: 'alice', host: 'carrier.example' });
    expect(req.to.tag).toBeUndefined();
    expect(req.contact[0]!.uri).toMatchObject({ host: '203.0.113.10', port: 5060 });
    expect(bodyText(req)).toBe(SDP);
  });

  it('reads every Via in order with branch, received and rport', () => {
    const req = asRequest(parseSipMessage(invite()));
    expect(req.via).toHaveLength(2);
    expect(req.via[0]).toMatchObject({ transport: 'UDP', host: '203.0.113.10', port: 5060, branch: 'z9hG4bK776asdhds', rport: true });
    expect(req.via[1]).toMatchObject({ branch: 'z9hG4bKproxy1', received: '198.51.100.2' });
    expect(req.via[1]!.rport).toBeUndefined();
    expect(parseVia('SIP/2.0/udp [2001:db8::1]:5070;rport=5071;branch=z9hG4bKx')).toMatchObject({ transport: 'UDP', host: '[2001:db8::1]', port: 5070, rport: 5071 });
    expect(parseVia('SIP/2.0/UDP host;rport=99999')).toBeInstanceOf(SipError);
    expect(parseVia('SIP/3.0/UDP host')).toBeInstanceOf(SipError);
  });

  it('splits comma-separated Vias into separate values, keeping quoted commas intact', () => {
    const text = invite().replace(
      'Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1;received=198.51.100.2',
      'v: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport , SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1',
    );
    const req = asRequest(parseSipMessage(text));
    expect(req.via.map((v) => v.branch)).toEqual(['z9hG4bK776asdhds', 'z9hG4bKproxy1']);
    expect(getHeaders(req, 'VIA')).toHaveLength(2);
    // From is not a list header: the comma inside the quoted display name is not a separator.
    expect(getHeaders(req, 'from')).toHaveLength(1);
  });

  it('expands compact header forms and matches names case-insensitively', () => {
    const compact = crlf([
      'OPTIONS sip:media.example.com SIP/2.0',
      'v: SIP/2.0/UDP 203.0.113.10;branch=z9hG4bKc1',
      'f: <sip:ping@carrier.example>;tag=9',
      't: <sip:media.example.com>',
      'i: opt-1@carrier.example',
      'CSEQ: 7 OPTIONS',
      'm: <sip:ping@203.0.113.10>',
      'k: timer',
      's: hello',
      'c: text/plain',
      'l: 2',
      '',
      'hiEXTRA',
    ]);
    const req = asRequest(parseSipMessage(compact));
    expect(req.callId).toBe('opt-1@carrier.example');
    expect(getHeader(req, 'Supported')).toBe('timer');
    expect(getHeader(req, 'subject')).toBe('hello');
    expect(getHeader(req, 'content-type')).toBe('text/plain');
    expect(getHeader(req, 'c')).toBe('text/plain');
    expect(req.headers.map((h) => h.name)).toEqual(['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Supported', 'Subject', 'Content-Type', 'Content-Length']);
    expect(bodyText(req)).toBe('hi');
    expect(req.maxForwards).toBeUndefined();
  });

  it('joins folded header lines (RFC 3261 §7.3.1)', () => {
    const req = asRequest(parseSipMessage(invite(['Subject: I know you are there,', '    pick up the phone', '\tand talk to me!'])));
    expect(getHeader(req, 'subject')).toBe('I know you are there, pick up the phone and talk to me!');
  });

  it('cuts the body to Content-Length and takes the rest of the datagram when UDP has none', () => {
    const longer = asRequest(parseSipMessage(invite([], `${SDP}trailing-garbage`, String(SDP.length))));
    expect(bodyText(longer)).toBe(SDP);
    const missing = asRequest(parseSipMessage(invite([], SDP, null)));
    expect(bodyText(missing)).toBe(SDP);
    expect(parseSipMessage(invite([], SDP, null), { transport: 'stream' })).toMatchObject({ code: 'missing' });
    const zero = asRequest(parseSipMessage(invite([], '', '0')));
    expect(zero.body).toHaveLength(0);
  });

  it('accepts leading keep-alive CRLFs and bare-LF line ends', () => {
    const req = asRequest(parseSipMessage(`\r\n\r\n${invite()}`));
    expect(req.method).toBe('INVITE');
    const lfBody = SDP.replace(/\r\n/g, '\n');
    const lf = asRequest(parseSipMessage(invite([], lfBody).replace(/\r\n/g, '\n')));
    expect(lf.cseq.seq).toBe(314159);
    expect(bodyText(lf)).toBe(lfBody);
  });

  it('reads a response status line', () => {
    const text = crlf([
      'SIP/2.0 180 Ringing',
      'Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds8',
      'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
      'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710',
      'CSeq: 314159 INVITE',
      'Content-Length: 0',
      '',
      '',
    ]);
    const res = parseSipMessage(text) as SipResponse;
    expect(res).toMatchObject({ kind: 'response', status: 180, reason: 'Ringing' });
    expect(res.to).toMatchObject({ displayName: 'Bob', tag: 'a6c85cf' });
  });

  it('parses name-addr forms: quoted, unquoted, bare addr-spec with header params', () => {
    expect(parseNameAddr('"A \\"q\\" B" <sip:a@b.example>;tag=x')).toMatchObject({ displayName: 'A "q" B', tag: 'x' });
    const bare = parseNameAddr('sip:bob@example.com;tag=88');
    expect(bare).toMatchObject({ tag: '88' });
    expect((bare as NameAddr).uri.params.size).toBe(0);
    const uriParams = parseNameAddr('<sip:bob@example.com;transport=udp;lr>;expires=60');
    expect((uriParams as NameAddr).uri.params).toEqual(new Map([['transport', 'udp'], ['lr', null]]));
    expect(parseNameAddr('tel:+1-555-0100')).toMatchObject({ uri: { scheme: 'tel', user: '+1-555-0100' } });
    expect(parseNameAddr('<http://example.com>')).toBeInstanceOf(SipError);
    expect(parseNameAddr('"unterminated <sip:a@b>')).toBeInstanceOf(SipError);
    expect(parseNameAddr('<sip:a@b')).toBeInstanceOf(SipError);
  });
});

describe('SIP parsing errors: typed values, never exceptions', () => {
  const cases: [string, string, string][] = [
    ['truncated request line', invite().replace('INVITE sip:+15551234567@media.example.com:5090 SIP/2.0', 'INVITE sip:+1555'), 'malformed'],
    ['wrong version', invite().replace(' SIP/2.0\r\n', ' SIP/3.0\r\n'), 'malformed'],
    ['bad status code', 'SIP/2.0 99 Odd\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n', 'malformed'],
    ['missing Call-ID', invite().replace('Call-ID: a84b4c76e66710@pc33.example.com\r\n', ''), 'missing'],
    ['missing Via', invite().replace(/Via: [^\r]*\r\n/g, ''), 'missing'],
    ['missing From', invite().replace(/From: [^\r]*\r\n/, ''), 'missing'],
    ['missing To', invite().replace(/To: [^\r]*\r\n/, ''), 'missing'],
    ['missing CSeq', invite().replace(/CSeq: [^\r]*\r\n/, ''), 'missing'],
    ['bad CSeq number', invite().replace('CSeq: 314159 INVITE', 'CSeq: abc INVITE'), 'malformed'],
    ['CSeq over 2^31', invite().replace('CSeq: 314159 INVITE', 'CSeq: 4294967295 INVITE'), 'malformed'],
    ['CSeq method mismatch', invite().replace('CSeq: 314159 INVITE', 'CSeq: 314159 BYE'), 'malformed'],
    ['bad Max-Forwards', invite().replace('Max-Forwards: 70', 'Max-Forwards: 300'), 'malformed'],
    ['bad Content-Length', invite([], SDP, '12x'), 'malformed'],
    ['Content-Length beyond the datagram', invite([], SDP, String(SDP.length + 1)), 'truncated'],
    ['header line without colon', invite(['NoColonHere']), 'malformed'],
    ['continuation before any header', 'INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n', 'malformed'],
    ['bad Via', invite().replace('Via: SIP/2.0/UDP 203.0.113.10:5060', 'Via: SIP/2.0/UDP 203.0.113.10:notaport'), 'malformed'],
    ['bad Request-URI', invite().replace('INVITE sip:+15551234567@media.example.com:5090', 'INVITE mailto:x@y'), 'malformed'],
    ['status code of four digits', 'SIP/2.0 2000 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n', 'malformed'],
    ['two different Call-IDs', invite(['Call-ID: other@example']), 'malformed'],
    ['empty', '', 'truncated'],
    ['only CRLFs', '\r\n\r\n', 'truncated'],
  ];
  it.each(cases)('%s', (_name, text, code) => {
    const result = parseSipMessage(text);
    expect(result).toBeInstanceOf(SipError);
    expect((result as SipError).code).toBe(code);
    expect((result as SipError).message.length).toBeGreaterThan(10);
  });

  it('rejects a datagram over 64 KiB and more than 100 headers', () => {
    const big = parseSipMessage(invite([], 'x'.repeat(65 * 1024)));
    expect(big).toMatchObject({ code: 'too-large' });
    expect((big as SipError).message).toContain('65536');
    const many = parseSipMessage(invite(Array.from({ length: SIP_MAX_HEADERS }, (_, i) => `X-H${i}: ${i}`)));
    expect(many).toMatchObject({ code: 'too-large' });
    const justUnder = parseSipMessage(invite(Array.from({ length: SIP_MAX_HEADERS - 12 }, (_, i) => `X-H${i}: ${i}`)));
    expect(justUnder).not.toBeInstanceOf(SipError);
  });

  it('never throws on random bytes or mutated messages (fixed seed)', () => {
    let state = 0x1234abcd;
    const next = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state;
    };
    const valid = new TextEncoder().encode(invite());
    let parsed = 0;
    for (let round = 0; round < 3000; round += 1) {
      let bytes: Uint8Array;
      if (round % 2 === 0) {
        bytes = new Uint8Array(next() % 1500);
        for (let i = 0; i < bytes.length; i += 1) bytes[i] = next() & 0xff;
      } else {
        bytes = valid.slice(0, next() % (valid.length + 1));
        const flips = next() % 8;
        for (let i = 0; i < flips && bytes.length; i += 1) bytes[next() % bytes.length] = next() & 0xff;
      }
      const result = parseSipMessage(bytes);
      if (!(result instanceof SipError)) parsed += 1;
      else expect(result.type).toBe('protocolError');
    }
    // Some mutations (e.g. inside the body) still parse: the generator really exercises both paths.
    expect(parsed).toBeGreaterThan(0);
  });
});

describe('buildResponse and serialization (RFC 3261 §8.2.6)', () => {
  it('copies all Vias in order, From, Call-ID, CSeq verbatim and adds our To-tag', () => {
    const req = asRequest(parseSipMessage(invite()));
    const res = buildResponse(req, 200, 'OK', [{ name: 'Contact', value: '<sip:agent@198.51.100.7:5090>' }, { name: 'Content-Type', value: 'application/sdp' }], 'v=0\r\n', { toTag: 'abc123' });
    const bytes = serializeSipMessage(res);
    const text = new TextDecoder().decode(bytes);
    expect(text.startsWith('SIP/2.0 200 OK\r\n')).toBe(true);
    expect(text).toContain('Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1;received=198.51.100.2\r\n');
    expect(text).toContain('From: "Alice, Smith" <sip:alice@carrier.example>;tag=1928301774\r\n');
    expect(text).toContain('To: <sip:+15551234567@media.example.com>;tag=abc123\r\n');
    expect(text).toContain('Call-ID: a84b4c76e66710@pc33.example.com\r\n');
    expect(text).toContain('CSeq: 314159 INVITE\r\n');
    expect(text.endsWith('Content-Length: 5\r\n\r\nv=0\r\n')).toBe(true);
    // Round trip: what we write, we read back the same.
    const back = parseSipMessage(bytes) as SipResponse;
    expect(back).toMatchObject({ kind: 'response', status: 200, callId: req.callId, cseq: req.cseq });
    expect(back.to.tag).toBe('abc123');
    expect(back.via.map((v) => v.branch)).toEqual(req.via.map((v) => v.branch));
  });

  it('keeps an existing To-tag (in-dialog request) and 100 Trying may omit ours', () => {
    const inDialog = asRequest(parseSipMessage(invite().replace('To: <sip:+15551234567@media.example.com>', 'To: <sip:+15551234567@media.example.com>;tag=ours')));
    const res = buildResponse(inDialog, 200, 'OK', [], undefined, { toTag: 'other' });
    expect(res.headers.find((h) => h.name === 'To')!.value).toBe('<sip:+15551234567@media.example.com>;tag=ours');
    const trying = buildResponse(asRequest(parseSipMessage(invite())), 100, 'Trying');
    expect(trying.headers.find((h) => h.name === 'To')!.value).toBe('<sip:+15551234567@media.example.com>');
    expect(new TextDecoder().decode(serializeSipMessage(trying))).toContain('Content-Length: 0\r\n\r\n');
  });

  it('fills rport and received on the top Via from the packet source (RFC 3581)', () => {
    const req = asRequest(parseSipMessage(invite()));
    const res = buildResponse(req, 100, 'Trying', [], undefined, { source: { address: '198.51.100.99', port: 61000 } });
    const vias = res.headers.filter((h) => h.name === 'Via').map((h) => h.value);
    expect(vias[0]).toBe('SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport=61000;received=198.51.100.99');
    expect(vias[1]).toBe('SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1;received=198.51.100.2');
    // No rport requested and the source matches sent-by: the Via goes back unchanged.
    const plain = asRequest(parseSipMessage(invite().replace(';branch=z9hG4bK776asdhds;rport', ';branch=z9hG4bK776asdhds')));
    const same = buildResponse(plain, 100, 'Trying', [], undefined, { source: { address: '203.0.113.10', port: 5060 } });
    expect(same.headers[0]!.value).toBe('SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds');
  });

  it('copies Record-Route into 2xx of INVITE but not into other responses', () => {
    const req = asRequest(parseSipMessage(invite(['Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>'])));
    expect(buildResponse(req, 200, 'OK').headers.filter((h) => h.name === 'Record-Route').map((h) => h.value)).toEqual(['<sip:p1.example;lr>', '<sip:p2.example;lr>']);
    expect(buildResponse(req, 486, 'Busy Here').headers.some((h) => h.name === 'Record-Route')).toBe(false);
  });

  it('serializes a request and replaces a stale Content-Length', () => {
    const bytes = serializeSipMessage({
      kind: 'request', method: 'BYE', requestUri: 'sip:alice@203.0.113.10:5060',
      headers: [
        { name: 'Via', value: 'SIP/2.0/UDP 198.51.100.7:5090;branch=z9hG4bKbye1;rport' },
        { name: 'From', value: '<sip:agent@198.51.100.7>;tag=abc' },
        { name: 'To', value: '<sip:alice@carrier.example>;tag=1928301774' },
        { name: 'Call-ID', value: 'c1' },
        { name: 'CSeq', value: '2 BYE' },
        { name: 'Max-Forwards', value: '70' },
        { name: 'Content-Length', value: '999' },
      ],
    });
    const text = new TextDecoder().decode(bytes);
    expect(text).not.toContain('999');
    expect(parseSipMessage(bytes)).toMatchObject({ kind: 'request', method: 'BYE', cseq: { seq: 2, method: 'BYE' }, maxForwards: 70 });
  });
});
