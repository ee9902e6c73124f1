import { afterEach, describe, expect, it } from 'vitest';
import { bodyText, getHeader, getHeaders, type SipMessage, type SipRequest, type SipResponse } from '../../../shared/telephony/sip/message';
import { createSipStack, type IncomingInvite, type SipStackOptions } from '../../../media-node/sip/sip-stack';
import { createPeer, type Peer } from './sip-peer';
import { bindUdpTransport, type SipTransport } from '../../../media-node/sip/udp-transport';

/**
 * The UAS side of the SIP stack on loopback UDP: a raw datagram peer crafts requests and reads what the
 * stack answers. Timers are shortened (T1 20 ms, T2 80 ms, T4 100 ms: 64·T1 = 1.28 s).
 */

const T1 = 20;
const TIMERS = { t1Ms: T1, t2Ms: 80, t4Ms: 100 };
const SDP_OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
const SDP_ANSWER = 'v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';


const isResponse = (status: number, method?: string) => (m: SipMessage): boolean =>
  m.kind === 'response' && m.status === status && (method === undefined || m.cseq.method === method);
const isRequest = (method: string) => (m: SipMessage): boolean => m.kind === 'request' && m.method === method;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface RequestSpec {
  readonly method: string;
  readonly peerPort: number;
  readonly stackPort: number;
  readonly branch: string;
  readonly callId: string;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly cseq?: number;
  readonly cseqMethod?: string;
  readonly body?: string;
  readonly contentType?: string;
  readonly extra?: readonly string[];
  readonly rport?: boolean;
  readonly viaPort?: number;
}

function sipRequest(spec: RequestSpec): string {
  const body = spec.body ?? '';
  const lines = [
    `${spec.method} sip:agent@127.0.0.1:${spec.stackPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${spec.viaPort ?? spec.peerPort};branch=${spec.branch}${spec.rport ? ';rport' : ''}`,
    'Max-Forwards: 70',
    `From: "Caller" <sip:+15550001111@127.0.0.1:${spec.peerPort}>;tag=${spec.fromTag ?? 'caller-tag'}`,
    `To: <sip:agent@127.0.0.1:${spec.stackPort}>${spec.toTag ? `;tag=${spec.toTag}` : ''}`,
    `Call-ID: ${spec.callId}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.cseqMethod ?? spec.method}`,
    `Contact: <sip:caller@127.0.0.1:${spec.peerPort}>`,
    ...(spec.extra ?? []),
    ...(body ? [`Content-Type: ${spec.contentType ?? 'application/sdp'}`] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ];
  return lines.join('\r\n');
}

interface Harness {
  readonly transport: SipTransport;
  readonly stack: ReturnType<typeof createSipStack>;
  readonly peer: Peer;
  readonly invites: IncomingInvite[];
  readonly errors: { code: string; message: string }[];
  req(spec: Omit<RequestSpec, 'peerPort' | 'stackPort'>): string;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(overrides: Partial<SipStackOptions> & { onInvite?: (invite: IncomingInvite) => void } = {}): Promise<Harness> {
  const transport = await bindUdpTransport({ host: '127.0.0.1', port: 0 });
  const invites: IncomingInvite[] = [];
  const errors: { code: string; message: string }[] = [];
  const stack = createSipStack({
    transport, publicHost: '127.0.0.1', publicPort: transport.localPort, timers: TIMERS,
    onProtocolError: (code, message) => errors.push({ code, message }),
    ...overrides,
    onInvite: (invite) => {
      invites.push(invite);
      overrides.onInvite?.(invite);
    },
  });
  const peer = await createPeer();
  cleanups.push(async () => {
    await stack.close();
    await transport.close();
    await peer.close();
  });
  return { transport, stack, peer, invites, errors, req: (spec) => sipRequest({ ...spec, peerPort: peer.port, stackPort: transport.localPort }) };
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('SIP stack: an inbound INVITE answered with 200', () => {
  it('sends 100 at once, one To-tag on 180 and 200, retransmits the 200 until the ACK, and ends on BYE', async () => {
    const h = await setup({ onInvite: (invite) => invite.progress(180) });
    const port = h.transport.localPort;
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-1', callId: 'call-1', body: SDP_OFFER }), port);
    const trying = await h.peer.next<SipResponse>(isResponse(100));
    expect(trying.to.tag).toBeUndefined();
    const ringing = await h.peer.next<SipResponse>(isResponse(180));
    expect(ringing.to.tag).toMatch(/^[0-9a-f]{16}$/);
    expect(h.invites).toHaveLength(1);
    const dialog = h.invites[0]!.accept(SDP_ANSWER);
    expect(h.invites[0]!.answered).toBe(true);
    const ok = await h.peer.next<SipResponse>(isResponse(200, 'INVITE'));
    expect(ok.to.tag).toBe(ringing.to.tag);
    expect(dialog.localTag).toBe(ringing.to.tag);
    expect(dialog.remoteTag).toBe('caller-tag');
    expect(bodyText(ok)).toBe(SDP_ANSWER);
    expect(getHeader(ok, 'content-type')).toBe('application/sdp');
    expect(ok.contact[0]!.uri.raw).toBe(`sip:agent@127.0.0.1:${port}`);
    expect(dialog.state).toBe('early');
    expect(h.stack.dialogCount).toBe(1);

    // Retransmissions at T1, 2T1, 4T1 (capped at T2 = 4T1): at least 3 more copies in ~250 ms.
    await sleep(250);
    const copies = h.peer.seen(isResponse(200, 'INVITE'));
    expect(copies.length).toBeGreaterThanOrEqual(3);
    expect(copies.length).toBeLessThanOrEqual(8);
    h.peer.send(h.req({ method: 'ACK', branch: 'z9hG4bK-ack-1', callId: 'call-1', toTag: dialog.localTag }), port);
    expect(await dialog.confirmed).toBe(true);
    expect(dialog.state).toBe('confirmed');
    const afterAck = h.peer.seen(isResponse(200, 'INVITE')).length;
    await sleep(200);
    expect(h.peer.seen(isResponse(200, 'INVITE')).length).toBe(afterAck);

    const events: string[] = [];
    dialog.onBye(() => events.push('bye'));
    dialog.onTerminated((reason) => events.push(`terminated:${reason}`));
    h.peer.send(h.req({ method: 'BYE', branch: 'z9hG4bK-bye-1', callId: 'call-1', toTag: dialog.localTag, cseq: 2 }), port);
    const byeOk = await h.peer.next<SipResponse>(isResponse(200, 'BYE'));
    expect(byeOk.to.tag).toBe(dialog.localTag);
    expect(events).toEqual(['bye', 'terminated:bye-received']);
    expect(dialog.state).toBe('terminated');
    expect(h.stack.dialogCount).toBe(0);
    // Timer L and Timer J run out: nothing is held.
    await until(() => h.stack.transactionCount === 0, 3000);
  });

  it('without an ACK in 64·T1 resolves confirmed false, sends BYE and terminates', async () => {
    const h = await setup({ onInvite: (invite) => invite.accept(SDP_ANSWER) });
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-2', callId: 'call-2', body: SDP_OFFER }), h.transport.localPort);
    await h.peer.next(isResponse(200, 'INVITE'));
    const dialog = h.invites[0]!.accept(SDP_ANSWER); // a second accept returns the same dialog
    const reasons: string[] = [];
    dialog.onTerminated((reason) => reasons.push(reason));
    const started = Date.now();
    expect(await dialog.confirmed).toBe(false);
    expect(Date.now() - started).toBeGreaterThan(64 * T1 - 200);
    const bye = await h.peer.next<SipRequest>(isRequest('BYE'));
    expect(bye.to.tag).toBe('caller-tag');
    expect(bye.from.tag).toBe(dialog.localTag);
    expect(bye.requestUri.raw).toBe(`sip:caller@127.0.0.1:${h.peer.port}`);
    expect(reasons).toEqual(['ack-timeout']);
    expect(h.stack.dialogCount).toBe(0);
    // Answer the BYE so its client transaction ends.
    h.peer.send(`SIP/2.0 200 OK\r\nVia: ${getHeader(bye, 'via')}\r\nFrom: ${bye.from.raw}\r\nTo: ${bye.to.raw}\r\nCall-ID: ${bye.callId}\r\nCSeq: ${bye.cseq.seq} BYE\r\nContent-Length: 0\r\n\r\n`, h.transport.localPort);
    await until(() => h.stack.transactionCount === 0, 3000);
  });

  it('a retransmitted INVITE re-sends the last response and never reaches onInvite twice', async () => {
    const h = await setup({ onInvite: (invite) => invite.progress(183, { contentType: 'application/sdp', body: SDP_ANSWER }) });
    const invite = h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-3', callId: 'call-3', body: SDP_OFFER });
    h.peer.send(invite, h.transport.localPort);
    const progress = await h.peer.next<SipResponse>(isResponse(183));
    expect(bodyText(progress)).toBe(SDP_ANSWER);
    h.peer.send(invite, h.transport.localPort);
    const again = await h.peer.next<SipResponse>(isResponse(183));
    expect(again.to.tag).toBe(progress.to.tag);
    expect(h.invites).toHaveLength(1);
    expect(h.stack.stats.retransmissionsAbsorbed).toBe(1);
  });
});

describe('SIP stack: non-2xx final responses', () => {
  it('retransmits a 486 (Timer G) until the ACK, absorbs ACK copies, then forgets the transaction', async () => {
    const h = await setup({ onInvite: (invite) => invite.reject(486) });
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-4', callId: 'call-4', body: SDP_OFFER }), h.transport.localPort);
    const busy = await h.peer.next<SipResponse>(isResponse(486));
    expect(busy.reason).toBe('Busy Here');
    expect(busy.to.tag).toBeDefined();
    await sleep(150);
    expect(h.peer.seen(isResponse(486)).length).toBeGreaterThanOrEqual(3);
    // The ACK for a non-2xx reuses the INVITE's branch.
    const ack = h.req({ method: 'ACK', branch: 'z9hG4bK-inv-4', callId: 'call-4', toTag: busy.to.tag!, cseqMethod: 'ACK' });
    h.peer.send(ack, h.transport.localPort);
    await sleep(60);
    const count = h.peer.seen(isResponse(486)).length;
    h.peer.send(ack, h.transport.localPort);
    await sleep(150);
    expect(h.peer.seen(isResponse(486)).length).toBe(count);
    expect(h.stack.stats.retransmissionsAbsorbed).toBeGreaterThanOrEqual(1);
    // Timer I (T4) ends it.
    await until(() => h.stack.transactionCount === 0, 1000);
    expect(h.stack.dialogCount).toBe(0);
  });

  it('gives up on the ACK after Timer H', async () => {
    const h = await setup({ onInvite: (invite) => invite.reject(403, 'Nope', [['Warning', '399 test "blocked"']]) });
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-5', callId: 'call-5', body: SDP_OFFER }), h.transport.localPort);
    const refused = await h.peer.next<SipResponse>(isResponse(403));
    expect(refused.reason).toBe('Nope');
    expect(getHeader(refused, 'warning')).toBe('399 test "blocked"');
    await until(() => h.stack.transactionCount === 0, 3000);
    const total = h.peer.seen(isResponse(403)).length;
    await sleep(200);
    expect(h.peer.seen(isResponse(403)).length).toBe(total);
  });
});

describe('SIP stack: CANCEL', () => {
  it('before the answer: 200 to the CANCEL, 487 to the INVITE with the same To-tag, onCancel, and accept() gives a dead dialog', async () => {
    let canceled = 0;
    const h = await setup({ onInvite: (invite) => { invite.progress(180); invite.onCancel(() => { canceled += 1; }); } });
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-6', callId: 'call-6', body: SDP_OFFER }), h.transport.localPort);
    const ringing = await h.peer.next<SipResponse>(isResponse(180));
    h.peer.send(h.req({ method: 'CANCEL', branch: 'z9hG4bK-inv-6', callId: 'call-6' }), h.transport.localPort);
    const cancelOk = await h.peer.next<SipResponse>(isResponse(200, 'CANCEL'));
    const terminated = await h.peer.next<SipResponse>(isResponse(487, 'INVITE'));
    expect(cancelOk.to.tag).toBe(ringing.to.tag);
    expect(terminated.to.tag).toBe(ringing.to.tag);
    expect(canceled).toBe(1);
    expect(h.invites[0]!.answered).toBe(true);
    const late = h.invites[0]!.accept(SDP_ANSWER);
    expect(late.state).toBe('terminated');
    expect(await late.confirmed).toBe(false);
    expect(h.stack.dialogCount).toBe(0);
    h.peer.send(h.req({ method: 'ACK', branch: 'z9hG4bK-inv-6', callId: 'call-6', toTag: terminated.to.tag!, cseqMethod: 'ACK' }), h.transport.localPort);
    await until(() => h.stack.transactionCount === 0, 3000);
  });

  it('for no transaction: 481', async () => {
    const h = await setup();
    h.peer.send(h.req({ method: 'CANCEL', branch: 'z9hG4bK-nothing', callId: 'call-7' }), h.transport.localPort);
    const response = await h.peer.next<SipResponse>((m) => m.kind === 'response');
    expect(response.status).toBe(481);
    expect(response.to.tag).toBeDefined();
  });

  it('after the 200: 200 to the CANCEL and the call stays', async () => {
    let canceled = 0;
    const h = await setup({ onInvite: (invite) => { invite.onCancel(() => { canceled += 1; }); invite.accept(SDP_ANSWER); } });
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-inv-8', callId: 'call-8', body: SDP_OFFER }), h.transport.localPort);
    const ok = await h.peer.next<SipResponse>(isResponse(200, 'INVITE'));
    h.peer.send(h.req({ method: 'ACK', branch: 'z9hG4bK-ack-8', callId: 'call-8', toTag: ok.to.tag! }), h.transport.localPort);
    h.peer.send(h.req({ method: 'CANCEL', branch: 'z9hG4bK-inv-8', callId: 'call-8' }), h.transport.localPort);
    await h.peer.next(isResponse(200, 'CANCEL'));
    await sleep(100);
    expect(h.peer.seen(isResponse(487))).toHaveLength(0);
    expect(canceled).toBe(0);
    expect(h.stack.dialogCount).toBe(1);
  });
});

describe('SIP stack: requests the stack answers alone', () => {
  it('BYE for an unknown dialog and BYE without a To-tag: 481', async () => {
    const h = await setup();
    h.peer.send(h.req({ method: 'BYE', branch: 'z9hG4bK-bye-x', callId: 'nope', toTag: 'unknown' }), h.transport.localPort);
    expect((await h.peer.next<SipResponse>((m) => m.kind === 'response')).status).toBe(481);
    h.peer.send(h.req({ method: 'BYE', branch: 'z9hG4bK-bye-y', callId: 'nope' }), h.transport.localPort);
    expect((await h.peer.next<SipResponse>((m) => m.kind === 'response')).status).toBe(481);
  });

  it('OPTIONS: 200 with Allow and Accept; a retransmission gets the same response (Timer J) until it expires', async () => {
    const h = await setup();
    const options = h.req({ method: 'OPTIONS', branch: 'z9hG4bK-opt-1', callId: 'opt-1' });
    h.peer.send(options, h.transport.localPort);
    const ok = await h.peer.next<SipResponse>(isResponse(200, 'OPTIONS'));
    expect(getHeaders(ok, 'allow')).toEqual(expect.arrayContaining(['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REFER', 'NOTIFY', 'INFO']));
    expect(getHeader(ok, 'accept')).toBe('application/sdp');
    expect(ok.to.tag).toBeDefined();
    expect(h.stack.transactionCount).toBe(1);
    h.peer.send(options, h.transport.localPort);
    const again = await h.peer.next<SipResponse>(isResponse(200, 'OPTIONS'));
    expect(again.to.tag).toBe(ok.to.tag);
    await until(() => h.stack.transactionCount === 0, 3000);
  });

  it('an unknown method: 405 with Allow', async () => {
    const h = await setup();
    h.peer.send(h.req({ method: 'SUBSCRIBE', branch: 'z9hG4bK-sub-1', callId: 'sub-1', extra: ['Event: presence'] }), h.transport.localPort);
    const response = await h.peer.next<SipResponse>((m) => m.kind === 'response');
    expect(response.status).toBe(405);
    expect(getHeaders(response, 'allow')).toContain('INVITE');
  });

  it('Require: 100rel: 420 with Unsupported, and no call', async () => {
    const h = await setup();
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-rel-1', callId: 'rel-1', body: SDP_OFFER, extra: ['Require: 100rel'] }), h.transport.localPort);
    const response = await h.peer.next<SipResponse>((m) => m.kind === 'response');
    expect(response.status).toBe(420);
    expect(getHeader(response, 'unsupported')).toBe('100rel');
    expect(h.invites).toHaveLength(0);
  });

  it('routes by rport to the packet source (filling rport and received), and without rport to the Via port', async () => {
    const h = await setup();
    // Via names port 9 (nobody), but asks for rport: the answer goes to the real source.
    h.peer.send(h.req({ method: 'OPTIONS', branch: 'z9hG4bK-rp-1', callId: 'rp-1', rport: true, viaPort: 9 }), h.transport.localPort);
    const ok = await h.peer.next<SipResponse>(isResponse(200, 'OPTIONS'));
    expect(ok.via[0]!.rport).toBe(h.peer.port);
    expect(ok.via[0]!.received).toBe('127.0.0.1');
    // No rport: the answer goes to the sent-by port, here another socket's.
    const other = await createPeer();
    cleanups.push(() => other.close());
    h.peer.send(h.req({ method: 'OPTIONS', branch: 'z9hG4bK-rp-2', callId: 'rp-2', viaPort: other.port }), h.transport.localPort);
    const routed = await other.next<SipResponse>(isResponse(200, 'OPTIONS'));
    expect(routed.callId).toBe('rp-2');
    expect(h.peer.seen((m) => m.callId === 'rp-2')).toHaveLength(0);
  });

  it('over maxTransactions: 503 with Retry-After, counted', async () => {
    const h = await setup({ maxTransactions: 2 });
    for (const n of [1, 2, 3]) h.peer.send(h.req({ method: 'OPTIONS', branch: `z9hG4bK-ov-${n}`, callId: `ov-${n}` }), h.transport.localPort);
    const refused = await h.peer.next<SipResponse>(isResponse(503));
    expect(refused.callId).toBe('ov-3');
    expect(getHeader(refused, 'retry-after')).toBe('5');
    expect(h.stack.stats.overloaded).toBe(1);
    expect(h.stack.transactionCount).toBe(2);
  });
});

describe('SIP stack: malformed datagrams', () => {
  it('reports garbage, truncated and oversize datagrams without throwing, answers 400 when it can, and keeps working', async () => {
    const h = await setup();
    const port = h.transport.localPort;
    h.peer.send(new Uint8Array([0xff, 0x00, 0x13, 0x37, 0x42]), port);
    h.peer.send('HELLO WORLD\r\n\r\n', port);
    // Truncated: Content-Length promises more than the datagram holds.
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-tr-1', callId: 'tr-1', body: SDP_OFFER }).replace(/Content-Length: \d+/, 'Content-Length: 5000'), port);
    // Oversize: more headers than any real request.
    h.peer.send(h.req({ method: 'OPTIONS', branch: 'z9hG4bK-big-1', callId: 'big-1', extra: Array.from({ length: 150 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(50)}`) }), port);
    // Parseable enough to answer, but the CSeq method contradicts the request line.
    h.peer.send(h.req({ method: 'OPTIONS', branch: 'z9hG4bK-bad-1', callId: 'bad-1', cseqMethod: 'INVITE' }), port);
    const bad = await h.peer.next<SipResponse>((m) => isResponse(400)(m) && m.callId === 'bad-1');
    expect(bad.reason).toMatch(/^Bad Request \(CSeq method/);
    await until(() => h.errors.length >= 5);
    expect(h.errors.map((e) => e.code)).toEqual(expect.arrayContaining(['sip-malformed', 'sip-truncated', 'sip-too-large']));
    expect(h.stack.stats.malformed).toBe(5);
    // The truncated INVITE also named where to answer: it got a 400, and no call.
    await h.peer.next((m) => isResponse(400)(m) && m.callId === 'tr-1');
    expect(h.invites).toHaveLength(0);
    h.peer.send(h.req({ method: 'OPTIONS', branch: 'z9hG4bK-after', callId: 'after' }), port);
    await h.peer.next(isResponse(200, 'OPTIONS'));
  });
});

describe('SIP stack: in-dialog requests', () => {
  async function establish(h: Harness, callId: string) {
    h.peer.send(h.req({ method: 'INVITE', branch: `z9hG4bK-${callId}`, callId, body: SDP_OFFER }), h.transport.localPort);
    await h.peer.next(isResponse(100));
    const dialog = h.invites.at(-1)!.accept(SDP_ANSWER);
    await h.peer.next(isResponse(200, 'INVITE'));
    h.peer.send(h.req({ method: 'ACK', branch: `z9hG4bK-ack-${callId}`, callId, toTag: dialog.localTag }), h.transport.localPort);
    expect(await dialog.confirmed).toBe(true);
    return dialog;
  }

  it('re-INVITE: the handler answers (200 retransmitted until the ACK) or refuses; INFO dtmf-relay gives the digit', async () => {
    const h = await setup();
    const dialog = await establish(h, 'rei-1');
    const offers: string[] = [];
    let refuse = false;
    dialog.onReInvite((request) => {
      offers.push(bodyText(request));
      return refuse ? { status: 488 } : { sdp: SDP_ANSWER.replace('o=- 2 2', 'o=- 2 3') };
    });
    const port = h.transport.localPort;
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-rei-1b', callId: 'rei-1', toTag: dialog.localTag, cseq: 2, body: SDP_OFFER.replace('t=0 0', 't=0 0\r\na=sendonly') }), port);
    const ok = await h.peer.next<SipResponse>((m) => m.kind === 'response' && m.status === 200 && m.cseq.seq === 2);
    expect(bodyText(ok)).toContain('o=- 2 3');
    expect(offers[0]).toContain('a=sendonly');
    await h.peer.next((m) => m.kind === 'response' && m.status === 200 && m.cseq.seq === 2);
    h.peer.send(h.req({ method: 'ACK', branch: 'z9hG4bK-rei-ack', callId: 'rei-1', toTag: dialog.localTag, cseq: 2 }), port);
    await sleep(100);
    const copies = h.peer.seen((m) => m.kind === 'response' && m.status === 200 && m.cseq.seq === 2).length;
    await sleep(200);
    expect(h.peer.seen((m) => m.kind === 'response' && m.status === 200 && m.cseq.seq === 2).length).toBe(copies);

    refuse = true;
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-rei-1c', callId: 'rei-1', toTag: dialog.localTag, cseq: 3, body: SDP_OFFER }), port);
    await h.peer.next(isResponse(488, 'INVITE'));
    h.peer.send(h.req({ method: 'ACK', branch: 'z9hG4bK-rei-1c', callId: 'rei-1', toTag: dialog.localTag, cseq: 3, cseqMethod: 'ACK' }), port);

    const digits: string[] = [];
    dialog.onInfoDtmf((digit) => digits.push(digit));
    h.peer.send(h.req({ method: 'INFO', branch: 'z9hG4bK-info-1', callId: 'rei-1', toTag: dialog.localTag, cseq: 4, contentType: 'application/dtmf-relay', body: 'Signal=5\r\nDuration=160\r\n' }), port);
    await h.peer.next(isResponse(200, 'INFO'));
    h.peer.send(h.req({ method: 'INFO', branch: 'z9hG4bK-info-2', callId: 'rei-1', toTag: dialog.localTag, cseq: 5, contentType: 'application/dtmf-relay', body: 'Signal=11\r\nDuration=160\r\n' }), port);
    await h.peer.next(isResponse(200, 'INFO'));
    expect(digits).toEqual(['5', '#']);
    expect(dialog.state).toBe('confirmed');
  });

  it('an in-dialog request with a lower CSeq gets 500; a request with our tag but another Call-ID gets 481', async () => {
    const h = await setup();
    const dialog = await establish(h, 'seq-1');
    h.peer.send(h.req({ method: 'INFO', branch: 'z9hG4bK-seq-a', callId: 'seq-1', toTag: dialog.localTag, cseq: 5 }), h.transport.localPort);
    await h.peer.next(isResponse(200, 'INFO'));
    h.peer.send(h.req({ method: 'INFO', branch: 'z9hG4bK-seq-b', callId: 'seq-1', toTag: dialog.localTag, cseq: 3 }), h.transport.localPort);
    await h.peer.next(isResponse(500, 'INFO'));
    h.peer.send(h.req({ method: 'BYE', branch: 'z9hG4bK-seq-c', callId: 'other', toTag: dialog.localTag, cseq: 9 }), h.transport.localPort);
    await h.peer.next(isResponse(481, 'BYE'));
    expect(h.stack.dialogCount).toBe(1);
  });

  it('close() refuses an INVITE the application has not answered with 503', async () => {
    const h = await setup();
    h.peer.send(h.req({ method: 'INVITE', branch: 'z9hG4bK-cl-1', callId: 'cl-1', body: SDP_OFFER }), h.transport.localPort);
    await h.peer.next(isResponse(100));
    await h.stack.close();
    await h.peer.next(isResponse(503, 'INVITE'));
    expect(h.invites[0]!.answered).toBe(true);
    expect(h.invites[0]!.accept(SDP_ANSWER).state).toBe('terminated');
    expect(h.stack.transactionCount).toBe(0);
    expect(h.stack.dialogCount).toBe(0);
  });

  it('our bye(): in-dialog BYE with the next CSeq, resolved on the 200; close() BYEs the rest', async () => {
    const h = await setup();
    const first = await establish(h, 'bye-a');
    const second = await establish(h, 'bye-b');
    expect(h.stack.dialogCount).toBe(2);
    const done = first.bye();
    expect(first.bye()).toBe(done);
    const bye = await h.peer.next<SipRequest>((m) => isRequest('BYE')(m) && m.callId === 'bye-a');
    expect(bye.cseq.seq).toBe(1);
    expect(bye.from.tag).toBe(first.localTag);
    expect(bye.to.tag).toBe('caller-tag');
    expect(first.state).toBe('terminated');
    h.peer.send(`SIP/2.0 200 OK\r\nVia: ${getHeader(bye, 'via')}\r\nFrom: ${bye.from.raw}\r\nTo: ${bye.to.raw}\r\nCall-ID: ${bye.callId}\r\nCSeq: ${bye.cseq.seq} BYE\r\nContent-Length: 0\r\n\r\n`, h.transport.localPort);
    await done;
    const reasons: string[] = [];
    second.onTerminated((reason) => reasons.push(reason));
    const closing = h.stack.close();
    const closeBye = await h.peer.next<SipRequest>((m) => isRequest('BYE')(m) && m.callId === 'bye-b');
    h.peer.send(`SIP/2.0 200 OK\r\nVia: ${getHeader(closeBye, 'via')}\r\nFrom: ${closeBye.from.raw}\r\nTo: ${closeBye.to.raw}\r\nCall-ID: ${closeBye.callId}\r\nCSeq: ${closeBye.cseq.seq} BYE\r\nContent-Length: 0\r\n\r\n`, h.transport.localPort);
    await closing;
    expect(reasons).toEqual(['stack-closed']);
    expect(h.stack.dialogCount).toBe(0);
    expect(h.stack.transactionCount).toBe(0);
  });
});
