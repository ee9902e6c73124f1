import { afterEach, describe, expect, it } from 'vitest';
import { parseDigestCredentials, verifyDigestCredentials } from '../../../shared/telephony/sip/digest';
import {
  bodyText, buildResponse, getHeader, serializeSipMessage, type SipHeader, type SipMessage, type SipRequest,
} from '../../../shared/telephony/sip/message';
import { SipError } from '../../../shared/telephony/sip/sip-error';
import { createSipStack, type OutgoingInviteOptions, type SipDialog } from '../../../media-node/sip/sip-stack';
import { createPeer, type Peer } from './sip-peer';
import { bindUdpTransport, type SipTransport } from '../../../media-node/sip/udp-transport';

/**
 * The UAC side of the SIP stack (outgoing INVITE, digest retry, CANCEL, ACK, BYE) and REFER/NOTIFY, against a
 * raw datagram peer playing the callee. Short timers: T1 20 ms, 64·T1 = 1.28 s.
 */

const T1 = 20;
const TIMERS = { t1Ms: T1, t2Ms: 80, t4Ms: 100 };
const OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n';
const ANSWER = 'v=0\r\no=- 9 9 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n';


const isRequest = (method: string) => (m: SipMessage): boolean => m.kind === 'request' && m.method === method;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  readonly transport: SipTransport;
  readonly stack: ReturnType<typeof createSipStack>;
  readonly peer: Peer;
  /** The peer answers `request` (To-tag `callee-tag` for non-100). */
  reply(request: SipRequest, status: number, reason: string, headers?: SipHeader[], body?: string): void;
  inviteOptions(extra?: Partial<OutgoingInviteOptions>): OutgoingInviteOptions;
}

async function setup(): Promise<Harness> {
  const transport = await bindUdpTransport({ host: '127.0.0.1', port: 0 });
  const stack = createSipStack({ transport, publicHost: '127.0.0.1', publicPort: transport.localPort, timers: TIMERS, onInvite: () => undefined });
  const peer = await createPeer();
  cleanups.push(async () => {
    await stack.close();
    await transport.close();
    await peer.close();
  });
  return {
    transport, stack, peer,
    reply(request, status, reason, headers = [], body) {
      const all = body ? [...headers, { name: 'Content-Type', value: 'application/sdp' }] : headers;
      peer.send(serializeSipMessage(buildResponse(request, status, reason, all, body, status > 100 ? { toTag: 'callee-tag' } : {})), transport.localPort);
    },
    inviteOptions: (extra = {}) => ({
      requestUri: `sip:+14155550123@127.0.0.1:${peer.port}`,
      destination: { address: '127.0.0.1', port: peer.port },
      from: 'sip:+14155550100@127.0.0.1',
      to: `sip:+14155550123@127.0.0.1:${peer.port}`,
      sdp: OFFER,
      ...extra,
    }),
  };
}

const contact = (h: Harness): SipHeader => ({ name: 'Contact', value: `<sip:callee@127.0.0.1:${h.peer.port}>` });

/** Places a call the peer answers 200; returns the established dialog. */
async function establish(h: Harness): Promise<{ dialog: SipDialog; invite: SipRequest }> {
  const result = h.stack.invite(h.inviteOptions());
  const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
  h.reply(invite, 200, 'OK', [contact(h)], ANSWER);
  const outcome = await result;
  if (!outcome.ok) throw new Error(`call failed ${outcome.status}`);
  await h.peer.next(isRequest('ACK'));
  return { dialog: outcome.dialog, invite };
}

describe('SIP stack UAC: an outgoing INVITE', () => {
  it('retransmits on Timer A until a 1xx, reports progress, ACKs the 200 with a new branch and re-ACKs its copies; bye() ends it', async () => {
    const h = await setup();
    const progress: [number, string | undefined][] = [];
    const result = h.stack.invite(h.inviteOptions({ onProgress: (status, sdp) => progress.push([status, sdp]), headers: [['X-Call', 'abc']] }));
    const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
    expect(invite.via[0]!.branch).toMatch(/^z9hG4bK/);
    expect(invite.via[0]!.rport).toBe(true);
    expect(invite.from.tag).toBeDefined();
    expect(invite.to.tag).toBeUndefined();
    expect(invite.cseq).toEqual({ seq: 1, method: 'INVITE' });
    expect(getHeader(invite, 'x-call')).toBe('abc');
    expect(bodyText(invite)).toBe(OFFER);
    expect(invite.contact[0]!.uri.raw).toBe(`sip:+14155550100@127.0.0.1:${h.transport.localPort}`);
    // No answer yet: copies at T1, 2T1, 4T1 …
    await h.peer.next(isRequest('INVITE'));
    await h.peer.next(isRequest('INVITE'));
    expect(new Set(h.peer.seen(isRequest('INVITE')).map((m) => m.via[0]!.branch)).size).toBe(1);
    h.reply(invite, 180, 'Ringing');
    h.reply(invite, 183, 'Session Progress', [], ANSWER);
    await sleep(60);
    const copies = h.peer.seen(isRequest('INVITE')).length;
    await sleep(200);
    expect(h.peer.seen(isRequest('INVITE')).length).toBe(copies);
    expect(progress).toEqual([[180, undefined], [183, ANSWER]]);

    h.reply(invite, 200, 'OK', [contact(h)], ANSWER);
    const outcome = await result;
    if (!outcome.ok) throw new Error('expected an answer');
    expect(outcome.sdp).toBe(ANSWER);
    expect(outcome.dialog.remoteTag).toBe('callee-tag');
    expect(outcome.dialog.state).toBe('confirmed');
    expect(await outcome.dialog.confirmed).toBe(true);
    const ack = await h.peer.next<SipRequest>(isRequest('ACK'));
    expect(ack.via[0]!.branch).not.toBe(invite.via[0]!.branch);
    expect(ack.cseq).toEqual({ seq: 1, method: 'ACK' });
    expect(ack.requestUri.raw).toBe(`sip:callee@127.0.0.1:${h.peer.port}`);
    expect(ack.to.tag).toBe('callee-tag');
    // The 200 again (our ACK "lost"): the same ACK again.
    h.reply(invite, 200, 'OK', [contact(h)], ANSWER);
    const again = await h.peer.next<SipRequest>(isRequest('ACK'));
    expect(again.via[0]!.branch).toBe(ack.via[0]!.branch);
    expect(h.stack.dialogCount).toBe(1);

    const bye = outcome.dialog.bye();
    const byeRequest = await h.peer.next<SipRequest>(isRequest('BYE'));
    expect(byeRequest.cseq).toEqual({ seq: 2, method: 'BYE' });
    expect(byeRequest.from.tag).toBe(invite.from.tag);
    expect(byeRequest.to.tag).toBe('callee-tag');
    h.reply(byeRequest, 200, 'OK');
    await bye;
    expect(h.stack.dialogCount).toBe(0);
    expect(h.stack.transactionCount).toBe(0);
  });

  it('no response at all: 408 after Timer B', async () => {
    const h = await setup();
    const started = Date.now();
    const outcome = await h.stack.invite(h.inviteOptions());
    expect(outcome).toMatchObject({ ok: false, status: 408 });
    expect(Date.now() - started).toBeGreaterThan(64 * T1 - 200);
    // Timer A doubles without cap: 1+2+4+8+16+32 T1 fit into 64 T1, so 6 or 7 INVITEs in all.
    expect(h.peer.seen(isRequest('INVITE')).length).toBeGreaterThanOrEqual(6);
    expect(h.stack.transactionCount).toBe(0);
  });

  it('a 486: ACK on the same branch (again for a copy), and the status as result', async () => {
    const h = await setup();
    const result = h.stack.invite(h.inviteOptions());
    const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
    h.reply(invite, 486, 'Busy Here');
    expect(await result).toEqual({ ok: false, status: 486, reason: 'Busy Here' });
    const ack = await h.peer.next<SipRequest>(isRequest('ACK'));
    expect(ack.via[0]!.branch).toBe(invite.via[0]!.branch);
    expect(ack.to.tag).toBe('callee-tag');
    expect(ack.cseq).toEqual({ seq: 1, method: 'ACK' });
    h.reply(invite, 486, 'Busy Here');
    await h.peer.next(isRequest('ACK'));
    expect(h.stack.dialogCount).toBe(0);
  });

  it('answers a 401 digest challenge once: ACK, then CSeq+1, new branch, same Call-ID and From-tag, valid credentials', async () => {
    const h = await setup();
    const result = h.stack.invite(h.inviteOptions({ auth: { username: 'alice', password: 's3cret' } }));
    const first = await h.peer.next<SipRequest>(isRequest('INVITE'));
    h.reply(first, 401, 'Unauthorized', [{ name: 'WWW-Authenticate', value: 'Digest realm="trunk", nonce="n0nce", algorithm=MD5, qop="auth"' }]);
    await h.peer.next(isRequest('ACK'));
    const second = await h.peer.next<SipRequest>((m) => isRequest('INVITE')(m) && m.cseq.seq === 2);
    expect(second.callId).toBe(first.callId);
    expect(second.from.tag).toBe(first.from.tag);
    expect(second.via[0]!.branch).not.toBe(first.via[0]!.branch);
    const credentials = parseDigestCredentials(getHeader(second, 'authorization')!);
    if (credentials instanceof SipError) throw new Error(credentials.message);
    const verdict = await verifyDigestCredentials(credentials, {
      realm: 'trunk', password: 's3cret', method: 'INVITE', requestUri: second.requestUri.raw, nonceIsCurrent: (n) => (n === 'n0nce' ? 'current' : 'unknown'),
    });
    expect(verdict).toEqual({ ok: true });
    h.reply(second, 200, 'OK', [contact(h)], ANSWER);
    const outcome = await result;
    expect(outcome.ok).toBe(true);
  });

  it('a second challenge (or none answerable) is the result', async () => {
    const h = await setup();
    const result = h.stack.invite(h.inviteOptions({ auth: { username: 'alice', password: 'wrong' } }));
    const first = await h.peer.next<SipRequest>(isRequest('INVITE'));
    const challenge = { name: 'Proxy-Authenticate', value: 'Digest realm="trunk", nonce="n1", algorithm=SHA-256' };
    h.reply(first, 407, 'Proxy Authentication Required', [challenge]);
    const second = await h.peer.next<SipRequest>((m) => isRequest('INVITE')(m) && m.cseq.seq === 2);
    expect(getHeader(second, 'proxy-authorization')).toMatch(/^Digest .*algorithm=SHA-256/);
    h.reply(second, 407, 'Proxy Authentication Required', [challenge]);
    expect(await result).toMatchObject({ ok: false, status: 407 });
    // Without credentials the first challenge is final.
    const plain = h.stack.invite(h.inviteOptions());
    const third = await h.peer.next<SipRequest>((m) => isRequest('INVITE')(m) && m.callId !== first.callId);
    h.reply(third, 401, 'Unauthorized', [{ name: 'WWW-Authenticate', value: 'Digest realm="trunk", nonce="n2"' }]);
    expect(await plain).toMatchObject({ ok: false, status: 401 });
  });

  it('abort after a 180: CANCEL on the INVITE branch, ACK to the 487, result 487', async () => {
    const h = await setup();
    const controller = new AbortController();
    const result = h.stack.invite(h.inviteOptions({ signal: controller.signal }));
    const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
    h.reply(invite, 180, 'Ringing');
    await sleep(30);
    controller.abort();
    const cancel = await h.peer.next<SipRequest>(isRequest('CANCEL'));
    expect(cancel.via[0]!.branch).toBe(invite.via[0]!.branch);
    expect(cancel.cseq).toEqual({ seq: 1, method: 'CANCEL' });
    expect(cancel.requestUri.raw).toBe(invite.requestUri.raw);
    expect(cancel.to.tag).toBeUndefined();
    h.reply(cancel, 200, 'OK');
    h.reply(invite, 487, 'Request Terminated');
    expect(await result).toMatchObject({ ok: false, status: 487 });
    await h.peer.next(isRequest('ACK'));
  });

  it('abort before any response waits for the 1xx to CANCEL; answer timeout cancels with result 408', async () => {
    const h = await setup();
    const controller = new AbortController();
    const result = h.stack.invite(h.inviteOptions({ signal: controller.signal }));
    const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
    controller.abort();
    await sleep(60);
    expect(h.peer.seen(isRequest('CANCEL'))).toHaveLength(0);
    h.reply(invite, 100, 'Trying');
    const cancel = await h.peer.next<SipRequest>(isRequest('CANCEL'));
    h.reply(cancel, 200, 'OK');
    h.reply(invite, 487, 'Request Terminated');
    expect(await result).toMatchObject({ ok: false, status: 487 });

    const timed = h.stack.invite(h.inviteOptions({ answerTimeoutMs: 150 }));
    const second = await h.peer.next<SipRequest>((m) => isRequest('INVITE')(m) && m.callId !== invite.callId);
    h.reply(second, 180, 'Ringing');
    const timeoutCancel = await h.peer.next<SipRequest>((m) => isRequest('CANCEL')(m) && m.callId === second.callId);
    h.reply(timeoutCancel, 200, 'OK');
    h.reply(second, 487, 'Request Terminated');
    expect(await timed).toMatchObject({ ok: false, status: 408 });
  });

  it('a 200 that crosses our CANCEL is ACKed and ended with BYE; the result stays canceled', async () => {
    const h = await setup();
    const controller = new AbortController();
    const result = h.stack.invite(h.inviteOptions({ signal: controller.signal }));
    const invite = await h.peer.next<SipRequest>(isRequest('INVITE'));
    h.reply(invite, 180, 'Ringing');
    await sleep(30);
    controller.abort();
    const cancel = await h.peer.next<SipRequest>(isRequest('CANCEL'));
    h.reply(cancel, 200, 'OK');
    h.reply(invite, 200, 'OK', [contact(h)], ANSWER);
    expect(await result).toMatchObject({ ok: false, status: 487 });
    await h.peer.next(isRequest('ACK'));
    const bye = await h.peer.next<SipRequest>(isRequest('BYE'));
    h.reply(bye, 200, 'OK');
    expect(h.stack.dialogCount).toBe(0);
  });
});

describe('SIP stack: blind transfer with REFER', () => {
  it('202 then NOTIFY sipfrags (each answered 200): accepted with the final status', async () => {
    const h = await setup();
    const { dialog } = await establish(h);
    const outcome = dialog.refer('sip:+15551234567@carrier.example', { referredBy: 'sip:agent@us.example' });
    const refer = await h.peer.next<SipRequest>(isRequest('REFER'));
    expect(getHeader(refer, 'refer-to')).toBe('<sip:+15551234567@carrier.example>');
    expect(getHeader(refer, 'referred-by')).toBe('<sip:agent@us.example>');
    expect(refer.cseq).toEqual({ seq: 2, method: 'REFER' });
    expect(refer.to.tag).toBe('callee-tag');
    h.reply(refer, 202, 'Accepted');
    const notify = (cseq: number, state: string, frag: string) => [
      `NOTIFY sip:+14155550100@127.0.0.1:${h.transport.localPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${h.peer.port};branch=z9hG4bK-notify-${cseq};rport`,
      `From: ${refer.to.raw}`, `To: ${refer.from.raw}`, `Call-ID: ${refer.callId}`, `CSeq: ${cseq} NOTIFY`,
      'Event: refer', `Subscription-State: ${state}`, 'Content-Type: message/sipfrag;version=2.0',
      `Content-Length: ${frag.length}`, '', frag,
    ].join('\r\n');
    h.peer.send(notify(10, 'active;expires=60', 'SIP/2.0 100 Trying\r\n'), h.transport.localPort);
    const firstOk = await h.peer.next((m) => m.kind === 'response' && m.cseq.method === 'NOTIFY' && m.cseq.seq === 10);
    expect(firstOk.kind === 'response' && firstOk.status).toBe(200);
    h.peer.send(notify(11, 'terminated;reason=noresource', 'SIP/2.0 200 OK\r\n'), h.transport.localPort);
    await h.peer.next((m) => m.kind === 'response' && m.cseq.method === 'NOTIFY' && m.cseq.seq === 11);
    expect(await outcome).toEqual({ accepted: true, status: 200 });
    expect(dialog.state).toBe('confirmed');
  });

  it('refused (403): not accepted; no answer: 408 after timeoutMs', async () => {
    const h = await setup();
    const { dialog } = await establish(h);
    const refused = dialog.refer('sip:bob@example.com');
    const refer = await h.peer.next<SipRequest>(isRequest('REFER'));
    expect(getHeader(refer, 'referred-by')).toBe('<sip:+14155550100@127.0.0.1>');
    h.reply(refer, 403, 'Forbidden');
    expect(await refused).toEqual({ accepted: false, status: 403 });
    const started = Date.now();
    expect(await dialog.refer('sip:bob@example.com', { timeoutMs: 200 })).toEqual({ accepted: false, status: 408 });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
