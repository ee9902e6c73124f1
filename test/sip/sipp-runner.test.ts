import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAuthorization, parseDigestChallenge, parseDigestCredentials, verifyDigestCredentials } from '../../shared/telephony/sip/digest';
import { decodeRtp, encodeRtpPacket } from '../../shared/telephony/sip/rtp';
import { bodyText, buildResponse, getHeader, parseSipMessage, serializeSipMessage, type SipHeader, type SipRequest, type SipResponse } from '../../shared/telephony/sip/message';
import { answerSdp, offerSdp, parseSdp } from '../../shared/telephony/sip/sdp';
import { SipError } from '../../shared/telephony/sip/sip-error';
import { mulawEncode } from '../../shared/audio/g711';
import { createRtpCaller, rms, type RtpCaller } from '../fakes/rtp-caller';
import { synthesizeWords } from '../fakes/tones';
import { parseScreenStats, parseStats, runSipp, scenarioPath, SippMissingError, startSipp } from './sipp';

/**
 * The sipp scenarios, the runner and the RTP caller, tested against a small scripted stand-in for the
 * runtime (a UDP SIP peer built on the shared codecs): every scenario must pass against a correct peer and
 * its checks must fail against a wrong one, so the end-to-end tests can trust a green sipp run.
 */

const randomToken = () => Math.random().toString(36).slice(2, 10);

interface StandInOptions {
  /** Numbers we answer; anything else gets 404. */
  readonly numbers?: readonly string[];
  readonly challenge?: { readonly status: 401 | 407; readonly realm: string; readonly nonce: string; readonly username: string; readonly password: string };
  /** Ringing time before the 200 (CANCEL tests). */
  readonly answerDelayMs?: number;
  /** We send BYE this long after the ACK. */
  readonly hangUpAfterMs?: number;
  /** We send REFER to this target after the ACK, and BYE once a NOTIFY reports 2xx. */
  readonly referTo?: string;
  /** A wrong peer: answer a hold with sendrecv. */
  readonly ignoreHold?: boolean;
  readonly allow?: string;
}

interface StandInCall {
  readonly invite: SipRequest;
  readonly source: RemoteInfo;
  readonly toTag: string;
  readonly branch: string;
  lastResponse?: Uint8Array;
  state: 'ringing' | 'answered' | 'confirmed' | 'cancelled' | 'ended';
  localCseq: number;
  timers: NodeJS.Timeout[];
  rtp?: { socket: Socket; port: number; received: number; from?: string; timer: NodeJS.Timeout };
}

/** A scripted peer on one UDP socket: answers calls like the runtime should, and places calls to a sipp UAS. */
async function createStandIn(options: StandInOptions = {}) {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  const events: string[] = [];
  const calls = new Map<string, StandInCall>();
  const byBranch = new Map<string, StandInCall>();
  const responses: SipResponse[] = [];
  const outbound = new Map<string, (response: SipResponse, from: RemoteInfo) => void>();
  const send = (bytes: Uint8Array, to: { address: string; port: number }) => socket.send(bytes, to.port, to.address);
  const contact = `<sip:agent@127.0.0.1:${port}>`;

  const respond = (call: StandInCall | undefined, request: SipRequest, source: RemoteInfo, status: number, reason: string, headers: SipHeader[] = [], body?: string) => {
    const bytes = serializeSipMessage(buildResponse(request, status, reason, headers, body, { toTag: call?.toTag ?? randomToken(), source }));
    if (call && request.method === 'INVITE') call.lastResponse = bytes;
    send(bytes, source);
  };

  const inDialog = (call: StandInCall, method: string, headers: SipHeader[] = [], body?: string) => {
    call.localCseq += 1;
    const target = call.invite.contact[0]!.uri;
    const message = serializeSipMessage({
      kind: 'request', method, requestUri: target.raw,
      headers: [
        { name: 'Via', value: `SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-${randomToken()};rport` }, { name: 'Max-Forwards', value: '70' },
        { name: 'From', value: `${call.invite.to.raw};tag=${call.toTag}` }, { name: 'To', value: call.invite.from.raw },
        { name: 'Call-ID', value: call.invite.callId }, { name: 'CSeq', value: `${call.localCseq} ${method}` }, { name: 'Contact', value: contact }, ...headers,
      ],
      ...(body !== undefined ? { body } : {}),
    });
    send(message, { address: target.host, port: target.port ?? 5060 });
  };

  const startRtp = async (call: StandInCall, remote: { address: string; port: number }) => {
    const media = createSocket('udp4');
    await new Promise<void>((resolve) => media.bind(0, '127.0.0.1', () => resolve()));
    const out = new Uint8Array(172);
    const silence = new Uint8Array(160).fill(0xff);
    let seq = 1;
    let ts = 1000;
    const rtp = { socket: media, port: media.address().port, received: 0, from: undefined as string | undefined, timer: setInterval(() => {
      const n = encodeRtpPacket({ marker: false, payloadType: 0, sequenceNumber: seq++ & 0xffff, timestamp: (ts += 160), ssrc: 0x1234 }, silence, out);
      if (typeof n === 'number') media.send(out.subarray(0, n), remote.port, remote.address);
    }, 20) };
    media.on('message', (bytes, info) => {
      if (decodeRtp(bytes) instanceof SipError) return;
      rtp.received += 1;
      rtp.from ??= `${info.address}:${info.port}`;
    });
    call.rtp = rtp;
    return rtp.port;
  };

  const endCall = (call: StandInCall) => {
    call.state = 'ended';
    call.timers.forEach(clearTimeout);
    if (call.rtp) {
      clearInterval(call.rtp.timer);
      call.rtp.socket.close();
      const rtp = call.rtp;
      events.push(`rtp received ${rtp.received > 0 ? 'some' : 'none'} from ${rtp.from ?? '-'}`);
    }
  };

  const answer = async (call: StandInCall, source: RemoteInfo) => {
    const offer = parseSdp(bodyText(call.invite));
    if (offer instanceof SipError) return respond(call, call.invite, source, 400, 'Bad SDP');
    const rtpPort = 40000; // replaced below once the media socket exists
    const probe = answerSdp(offer, { address: '127.0.0.1', rtpPort, sessionId: '77', sessionVersion: 1 });
    if (probe instanceof SipError || probe.type === 'noCommonCodec') {
      events.push('488');
      return respond(call, call.invite, source, 488, 'Not Acceptable Here');
    }
    respond(call, call.invite, source, 180, 'Ringing');
    const ok = async () => {
      if (call.state !== 'ringing') return;
      const port = await startRtp(call, probe.remote);
      const sdp = answerSdp(offer, { address: '127.0.0.1', rtpPort: port, sessionId: '77', sessionVersion: 1 });
      if (sdp instanceof SipError || sdp.type !== 'answer') return;
      call.state = 'answered';
      events.push('200 INVITE');
      const retransmit = (delay: number) => {
        respond(call, call.invite, source, 200, 'OK', [{ name: 'Contact', value: contact }, { name: 'Content-Type', value: 'application/sdp' }], sdp.sdp);
        if (delay < 4000) call.timers.push(setTimeout(() => call.state === 'answered' && retransmit(delay * 2), delay));
      };
      retransmit(500);
    };
    if (options.answerDelayMs) call.timers.push(setTimeout(() => void ok(), options.answerDelayMs));
    else await ok();
  };

  const onRequest = async (request: SipRequest, source: RemoteInfo) => {
    const call = calls.get(request.callId);
    switch (request.method) {
      case 'INVITE': {
        if (request.to.tag && call) {
          const offer = parseSdp(bodyText(request));
          if (offer instanceof SipError) return respond(call, request, source, 400, 'Bad SDP');
          const sdp = answerSdp(offer, { address: '127.0.0.1', rtpPort: call.rtp?.port ?? 40000, sessionId: '77', sessionVersion: request.cseq.seq });
          if (sdp instanceof SipError || sdp.type !== 'answer') return respond(call, request, source, 488, 'Not Acceptable Here');
          const text = options.ignoreHold ? sdp.sdp.replace(/a=(recvonly|inactive)/, 'a=sendrecv') : sdp.sdp;
          events.push(`reinvite ${sdp.offeredDirection}`);
          return respond(call, request, source, 200, 'OK', [{ name: 'Contact', value: contact }, { name: 'Content-Type', value: 'application/sdp' }], text);
        }
        const branch = request.via[0]!.branch ?? '';
        const existing = byBranch.get(branch);
        if (existing) {
          events.push('INVITE retransmission absorbed');
          if (existing.lastResponse) send(existing.lastResponse, source);
          return;
        }
        const fresh: StandInCall = { invite: request, source, toTag: randomToken(), branch, state: 'ringing', localCseq: 0, timers: [] };
        byBranch.set(branch, fresh);
        respond(fresh, request, source, 100, 'Trying');
        if (options.numbers && !options.numbers.includes(request.requestUri.user ?? '')) {
          events.push('404');
          return respond(fresh, request, source, 404, 'Not Found');
        }
        const challenge = options.challenge;
        if (challenge) {
          const header = getHeader(request, challenge.status === 401 ? 'authorization' : 'proxy-authorization');
          if (!header) {
            events.push(`challenge ${challenge.status}`);
            const name = challenge.status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
            return respond(fresh, request, source, challenge.status, challenge.status === 401 ? 'Unauthorized' : 'Proxy Authentication Required',
              [{ name, value: `Digest realm="${challenge.realm}", nonce="${challenge.nonce}", algorithm=MD5` }]);
          }
          const credentials = parseDigestCredentials(header);
          const verdict = credentials instanceof SipError ? credentials : await verifyDigestCredentials(credentials, {
            realm: challenge.realm, password: challenge.password, method: 'INVITE', requestUri: request.requestUri.raw,
            nonceIsCurrent: (nonce) => (nonce === challenge.nonce ? 'current' : 'unknown'),
          });
          const ok = !(credentials instanceof SipError) && credentials.username === challenge.username && !(verdict instanceof SipError) && verdict.ok;
          events.push(ok ? 'credentials accepted' : 'credentials rejected');
          if (!ok) return respond(fresh, request, source, 403, 'Forbidden');
        }
        calls.set(request.callId, fresh);
        events.push('call');
        return answer(fresh, source);
      }
      case 'ACK':
        if (call?.state === 'answered') {
          call.state = 'confirmed';
          events.push('ACK');
          if (options.hangUpAfterMs !== undefined) call.timers.push(setTimeout(() => inDialog(call, 'BYE'), options.hangUpAfterMs));
          if (options.referTo) call.timers.push(setTimeout(() => inDialog(call, 'REFER', [{ name: 'Refer-To', value: `<${options.referTo}>` }, { name: 'Referred-By', value: contact }]), 50));
        }
        return;
      case 'CANCEL': {
        const pending = byBranch.get(request.via[0]!.branch ?? '');
        respond(pending, request, source, 200, 'OK');
        if (pending?.state === 'ringing') {
          pending.state = 'cancelled';
          pending.timers.forEach(clearTimeout);
          events.push('cancelled');
          respond(pending, pending.invite, source, 487, 'Request Terminated');
        }
        return;
      }
      case 'BYE':
        respond(call, request, source, call ? 200 : 481, call ? 'OK' : 'Call/Transaction Does Not Exist');
        if (call) {
          events.push('BYE received');
          endCall(call);
        }
        return;
      case 'OPTIONS':
        return respond(undefined, request, source, 200, 'OK', [{ name: 'Allow', value: options.allow ?? 'INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO' }]);
      case 'NOTIFY': {
        respond(call, request, source, 200, 'OK');
        const state = getHeader(request, 'subscription-state') ?? '';
        events.push(`NOTIFY ${state.split(';')[0]} ${bodyText(request).trim()}`);
        if (call && state.startsWith('terminated') && /^SIP\/2\.0 2\d\d/.test(bodyText(request))) inDialog(call, 'BYE');
        return;
      }
      case 'INFO':
        events.push(`INFO ${bodyText(request).replace(/\r?\n/g, ' ').trim()}`);
        return respond(call, request, source, 200, 'OK');
      default:
        return respond(call, request, source, 405, 'Method Not Allowed');
    }
  };

  socket.on('message', (bytes, source) => {
    const message = parseSipMessage(bytes);
    if (message instanceof SipError) return void events.push(`unparsable ${message.message}`);
    if (message.kind === 'request') {
      // Requests in our outbound calls (their BYE) are placeCall's.
      if (!outbound.has(message.callId)) void onRequest(message, source);
      return;
    }
    responses.push(message);
    const handler = outbound.get(message.callId);
    if (handler) return handler(message, source);
    const call = calls.get(message.callId);
    if (call) {
      events.push(`${message.status} ${message.cseq.method}`);
      if (message.cseq.method === 'BYE') endCall(call);
    }
  });

  /** Calls a sipp UAS: INVITE (with our RTP port in the offer), digest on 401/407, 18x, 200 → ACK; then BYE after byeAfterMs, or wait for theirs. */
  const placeCall = (target: number, call: { rtpPort: number; credentials?: { username: string; password: string }; byeAfterMs?: number }) => {
    const callId = `${randomToken()}@127.0.0.1`;
    const fromTag = randomToken();
    const requestUri = `sip:+15557654321@127.0.0.1:${target}`;
    const statuses: number[] = [];
    let cseq = 1;
    let toTag = '';
    let remoteContact = requestUri;
    const headers = (method: string, branch: string, extra: SipHeader[] = []): SipHeader[] => [
      { name: 'Via', value: `SIP/2.0/UDP 127.0.0.1:${port};branch=${branch};rport` }, { name: 'Max-Forwards', value: '70' },
      { name: 'From', value: `<sip:agent@127.0.0.1:${port}>;tag=${fromTag}` }, { name: 'To', value: `<${requestUri}>${toTag ? `;tag=${toTag}` : ''}` },
      { name: 'Call-ID', value: callId }, { name: 'CSeq', value: `${cseq} ${method}` }, { name: 'Contact', value: contact }, ...extra,
    ];
    const sdp = offerSdp({ address: '127.0.0.1', rtpPort: call.rtpPort, sessionId: '99', sessionVersion: 1 });
    const to = { address: '127.0.0.1', port: target };
    let inviteBranch = `z9hG4bK-${randomToken()}`;
    const sendInvite = (extra: SipHeader[] = []) => send(serializeSipMessage({ kind: 'request', method: 'INVITE', requestUri, headers: headers('INVITE', inviteBranch, [...extra, { name: 'Content-Type', value: 'application/sdp' }]), body: sdp }), to);
    return new Promise<{ statuses: number[]; earlySdp: boolean; ended: 'by-us' | 'by-them' }>((resolve, reject) => {
      let earlySdp = false;
      const timeout = setTimeout(() => reject(new Error(`outbound call: no end within 10 s; statuses ${statuses.join(',')}`)), 10_000);
      outbound.set(callId, (response) => {
        statuses.push(response.status);
        if (response.cseq.method === 'INVITE') {
          if (response.status === 183 && response.body.length > 0) earlySdp = true;
          if (response.status === 401 || response.status === 407) {
            // ACK the challenge on its own branch, then retry with credentials (CSeq + 1, new branch).
            send(serializeSipMessage({ kind: 'request', method: 'ACK', requestUri, headers: headers('ACK', inviteBranch).map((h) => (h.name === 'To' ? { name: 'To', value: response.to.raw } : h)) }), to);
            const challenge = parseDigestChallenge(getHeader(response, response.status === 401 ? 'www-authenticate' : 'proxy-authenticate') ?? '');
            if (challenge instanceof SipError || !call.credentials) return reject(new Error(`cannot answer the challenge: ${String(challenge)}`));
            void buildAuthorization(challenge, { method: 'INVITE', uri: requestUri, username: call.credentials.username, password: call.credentials.password, cnonce: 'c0ffee' }).then((value) => {
              if (value instanceof SipError) return reject(value);
              cseq += 1;
              inviteBranch = `z9hG4bK-${randomToken()}`;
              sendInvite([{ name: response.status === 401 ? 'Authorization' : 'Proxy-Authorization', value }]);
            });
          }
          if (response.status === 200) {
            toTag = response.to.tag ?? '';
            remoteContact = response.contact[0]?.uri.raw ?? requestUri;
            send(serializeSipMessage({ kind: 'request', method: 'ACK', requestUri: remoteContact, headers: headers('ACK', `z9hG4bK-${randomToken()}`) }), to);
            if (call.byeAfterMs !== undefined && !statuses.slice(0, -1).includes(200)) {
              setTimeout(() => {
                cseq += 1;
                send(serializeSipMessage({ kind: 'request', method: 'BYE', requestUri: remoteContact, headers: headers('BYE', `z9hG4bK-${randomToken()}`) }), to);
              }, call.byeAfterMs);
            }
          }
          if (response.status >= 300 && response.status !== 401 && response.status !== 407) {
            send(serializeSipMessage({ kind: 'request', method: 'ACK', requestUri, headers: headers('ACK', inviteBranch).map((h) => (h.name === 'To' ? { name: 'To', value: response.to.raw } : h)) }), to);
            clearTimeout(timeout);
            reject(new Error(`outbound call failed with ${response.status}`));
          }
        }
        if (response.cseq.method === 'BYE' && response.status === 200) {
          clearTimeout(timeout);
          resolve({ statuses, earlySdp, ended: 'by-us' });
        }
      });
      // Their BYE arrives as a request with our Call-ID.
      const onBye = (bytes: Buffer, source: RemoteInfo) => {
        const message = parseSipMessage(bytes);
        if (message instanceof SipError || message.kind !== 'request' || message.callId !== callId || message.method !== 'BYE') return;
        send(serializeSipMessage(buildResponse(message, 200, 'OK', [], undefined, { source })), source);
        socket.off('message', onBye);
        clearTimeout(timeout);
        resolve({ statuses, earlySdp, ended: 'by-them' });
      };
      socket.on('message', onBye);
      sendInvite();
    });
  };

  return {
    port,
    target: `127.0.0.1:${port}`,
    events,
    calls,
    responses,
    placeCall,
    close: () => {
      for (const call of calls.values()) if (call.state !== 'ended') endCall(call);
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
async function standIn(options: StandInOptions = {}) {
  const peer = await createStandIn(options);
  cleanups.push(peer.close);
  return peer;
}
async function rtpCaller(options?: Parameters<typeof createRtpCaller>[0]): Promise<RtpCaller> {
  const caller = await createRtpCaller(options);
  cleanups.push(caller.close);
  return caller;
}
const expectSuccess = (run: Awaited<ReturnType<typeof runSipp>>, calls = 1) => {
  expect(run.stats, run.errors || run.stdout.slice(-2000)).toEqual({ successful: calls, failed: 0 });
  expect(run.exitCode).toBe(0);
};

describe('runner', () => {
  it('parses the statistics of the -trace_stat file and of the final screen', () => {
    const csv = 'StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C)\nx;0;0;0;0\ny;1;49;1;1\n';
    expect(parseStats(csv)).toEqual({ successful: 49, failed: 1 });
    expect(parseStats('')).toBeUndefined();
    expect(parseScreenStats('  Successful call        |        0                  |        3   \n  Failed call            |        0                  |        2\n')).toEqual({ successful: 3, failed: 2 });
  });

  it('fails loudly when sipp is missing', async () => {
    const saved = process.env.SIPP_BIN;
    process.env.SIPP_BIN = '/nonexistent/sipp';
    try {
      await expect(runSipp({ scenario: 'uac-options', target: '127.0.0.1:9' })).rejects.toThrow(SippMissingError);
      await expect(runSipp({ scenario: 'uac-options', target: '127.0.0.1:9' })).rejects.toThrow(/SIPP_MISSING.*sip-tester/);
    } finally {
      if (saved === undefined) delete process.env.SIPP_BIN;
      else process.env.SIPP_BIN = saved;
    }
  });

  it('resolves scenario names and rejects unknown ones', async () => {
    expect(scenarioPath('uac-404')).toMatch(/test\/sip\/scenarios\/uac-404\.xml$/);
    await expect(runSipp({ scenario: 'no-such-scenario', target: '127.0.0.1:9' })).rejects.toThrow(/SIPP_SCENARIO/);
  });

  it('reports a timeout against a peer that never answers as a failure', async () => {
    const run = await runSipp({ scenario: 'uac-options', target: '127.0.0.1:9', timeoutMs: 1000 });
    expect(run.exitCode).not.toBe(0);
    expect(run.stats?.successful ?? 0).toBe(0);
  });
});

describe('UAC scenarios against a correct peer', () => {
  it('caller hangs up: logs the SDP answer, and the RTP caller latches onto the peer and is heard', async () => {
    const peer = await standIn({ numbers: ['+15551230000'] });
    const caller = await rtpCaller();
    const sipp = await startSipp({ scenario: 'uac-call-caller-hangs-up', target: peer.target, service: '+15551230000', keys: { rtp_port: caller.port, call_ms: 1500 } });
    const answered = await sipp.waitForLog(/^answer m=audio (\d+)/, 5000);
    // The peer's RTP reaches our socket; the caller learns its address from it and speaks back from the same socket.
    await caller.waitFor(() => caller.received.length > 0, 2000, 'the first RTP packet from the peer');
    expect(caller.remote).toEqual({ address: '127.0.0.1', port: Number(answered[1]) });
    await caller.sendSpeech(synthesizeWords(['hello'], 8000).pcm);
    const run = await sipp.done;
    expectSuccess(run);
    expect(run.remoteMedia).toEqual({ address: '127.0.0.1', port: Number(answered[1]) });
    expect(run.logs.some((l) => /^peer tag=\w+/.test(l))).toBe(true);
    expect(peer.events).toContain('BYE received');
    expect(peer.events).toContain(`rtp received some from 127.0.0.1:${caller.port}`);
  });

  it('callee hangs up: sipp answers the BYE', async () => {
    const peer = await standIn({ hangUpAfterMs: 300 });
    const run = await runSipp({ scenario: 'uac-call-callee-hangs-up', target: peer.target, timeoutMs: 10_000 });
    expectSuccess(run);
    expect(peer.events).toContain('200 BYE');
  });

  it('CANCEL before the answer: 200 for the CANCEL, 487, ACK on the INVITE branch', async () => {
    const peer = await standIn({ answerDelayMs: 3000 });
    const run = await runSipp({ scenario: 'uac-cancel', target: peer.target });
    expectSuccess(run);
    expect(peer.events).toContain('cancelled');
    expect(peer.events).not.toContain('200 INVITE');
  });

  it('re-INVITE hold and unhold', async () => {
    const peer = await standIn();
    const run = await runSipp({ scenario: 'uac-reinvite', target: peer.target, keys: { call_ms: 200 } });
    expectSuccess(run);
    expect(peer.events.filter((e) => e.startsWith('reinvite'))).toEqual(['reinvite sendonly', 'reinvite sendrecv']);
    expect(run.logs).toContain('reinvite 2 a=recvonly');
  });

  it('unsupported codec gets 488, unknown number 404', async () => {
    const peer = await standIn({ numbers: ['+15551230000'] });
    expectSuccess(await runSipp({ scenario: 'uac-488', target: peer.target, service: '+15551230000' }));
    expectSuccess(await runSipp({ scenario: 'uac-404', target: peer.target, service: '+15559999999' }));
    expect(peer.events).toEqual(expect.arrayContaining(['488', '404']));
  });

  it('a retransmitted INVITE is one call', async () => {
    const peer = await standIn();
    const run = await runSipp({ scenario: 'uac-retransmit', target: peer.target, keys: { call_ms: 200 } });
    expectSuccess(run);
    expect(peer.events.filter((e) => e === 'call')).toHaveLength(1);
    expect(peer.events).toContain('INVITE retransmission absorbed');
  });

  it.each([401, 407] as const)('digest challenge %i answered with -au/-ap', async (status) => {
    const peer = await standIn({ challenge: { status, realm: 'voice', nonce: 'n0nce', username: 'trunk1', password: 's3cret' } });
    const run = await runSipp({ scenario: 'uac-digest', target: peer.target, auth: { username: 'trunk1', password: 's3cret' }, keys: { call_ms: 100 } });
    expectSuccess(run);
    expect(peer.events).toEqual(expect.arrayContaining([`challenge ${status}`, 'credentials accepted', 'BYE received']));
  });

  it('OPTIONS gets 200 with Allow', async () => {
    const peer = await standIn();
    const run = await runSipp({ scenario: 'uac-options', target: peer.target });
    expectSuccess(run);
    expect(run.logs).toContain('allow INVITE');
  });

  it('REFER accepted: 202, NOTIFY 100 then 200, then the peer hangs up', async () => {
    const peer = await standIn({ referTo: 'sip:+15550001111@carrier.example' });
    const run = await runSipp({ scenario: 'uac-refer', target: peer.target, timeoutMs: 10_000 });
    expectSuccess(run);
    expect(run.logs).toContain('refer sip:+15550001111@carrier.example');
    expect(peer.events).toEqual(expect.arrayContaining(['202 REFER', 'NOTIFY active SIP/2.0 100 Trying', 'NOTIFY terminated SIP/2.0 200 OK', '200 BYE']));
  });

  it('REFER refused: 603, the call goes on, sipp hangs up', async () => {
    const peer = await standIn({ referTo: 'sip:+15550001111@carrier.example' });
    const run = await runSipp({ scenario: 'uac-refer-refused', target: peer.target, keys: { call_ms: 300 } });
    expectSuccess(run);
    expect(peer.events).toEqual(expect.arrayContaining(['603 REFER', 'BYE received']));
  });

  it('DTMF by INFO', async () => {
    const peer = await standIn();
    const run = await runSipp({ scenario: 'uac-dtmf-info', target: peer.target, keys: { call_ms: 100, digit: '7' } });
    expectSuccess(run);
    expect(peer.events).toContain('INFO Signal=7 Duration=160');
  });

  it('what Asterisk pjsip sends with outbound_auth', async () => {
    const peer = await standIn({ challenge: { status: 401, realm: 'voice', nonce: 'abc', username: 'asterisk', password: 'pw' } });
    const run = await runSipp({ scenario: 'pjsip-trunk', target: peer.target, auth: { username: 'asterisk', password: 'pw' }, keys: { call_ms: 100 } });
    expectSuccess(run);
    expect(run.messages).toMatch(/User-Agent: Asterisk PBX/);
    expect(run.messages).toMatch(/a=rtcp:10\r?\n/);
    expect(peer.events).toEqual(expect.arrayContaining(['challenge 401', 'credentials accepted', 'BYE received']));
  });

  it('50 calls at a fixed rate, all completed', async () => {
    const peer = await standIn();
    const run = await runSipp({ scenario: 'uac-call-caller-hangs-up', target: peer.target, calls: 50, rate: 50, limit: 50, keys: { call_ms: 300 }, timeoutMs: 20_000 });
    expectSuccess(run, 50);
    expect(peer.events.filter((e) => e === 'call')).toHaveLength(50);
  });
});

describe('the scenarios fail against a wrong peer', () => {
  it('a hold answered with sendrecv fails uac-reinvite', async () => {
    const peer = await standIn({ ignoreHold: true });
    const run = await runSipp({ scenario: 'uac-reinvite', target: peer.target, keys: { call_ms: 100 }, timeoutMs: 5000 });
    expect(run.exitCode).toBe(1);
    expect(run.stats).toEqual({ successful: 0, failed: 1 });
  });

  it('an Allow without INVITE fails uac-options', async () => {
    const peer = await standIn({ allow: 'OPTIONS, BYE' });
    const run = await runSipp({ scenario: 'uac-options', target: peer.target, timeoutMs: 5000 });
    expect(run.stats).toEqual({ successful: 0, failed: 1 });
  });

  it('a 404 fails the call scenario', async () => {
    const peer = await standIn({ numbers: ['+1'] });
    const run = await runSipp({ scenario: 'uac-call-caller-hangs-up', target: peer.target, service: '+2', timeoutMs: 5000 });
    expect(run.stats?.failed).toBe(1);
  });
});

describe('UAS scenarios: sipp as the called party', () => {
  it('uas-callee: 180, 183 with SDP, 200; our BYE', async () => {
    const peer = await standIn();
    const sipp = await startSipp({ scenario: 'uas-callee', keys: { rtp_port: 45678 } });
    cleanups.push(() => sipp.kill());
    await sipp.ready();
    const result = await peer.placeCall(sipp.port, { rtpPort: 43210, byeAfterMs: 200 });
    expect(result).toMatchObject({ earlySdp: true, ended: 'by-us' });
    expect(result.statuses).toEqual(expect.arrayContaining([180, 183, 200]));
    const run = await sipp.done;
    expectSuccess(run);
    expect(run.remoteMedia).toEqual({ address: '127.0.0.1', port: 43210 });
  });

  it('uas-callee-hangs-up: sipp sends the BYE', async () => {
    const peer = await standIn();
    const sipp = await startSipp({ scenario: 'uas-callee-hangs-up', keys: { call_ms: 200 } });
    cleanups.push(() => sipp.kill());
    await sipp.ready();
    const result = await peer.placeCall(sipp.port, { rtpPort: 43210 });
    expect(result.ended).toBe('by-them');
    expectSuccess(await sipp.done);
  });

  it('uas-digest: 407, then Proxy-Authorization (logged for the test to verify) gets the call', async () => {
    const peer = await standIn();
    const sipp = await startSipp({ scenario: 'uas-digest' });
    cleanups.push(() => sipp.kill());
    await sipp.ready();
    const result = await peer.placeCall(sipp.port, { rtpPort: 43210, credentials: { username: 'out', password: 'pw1' }, byeAfterMs: 100 });
    expect(result.statuses).toEqual(expect.arrayContaining([407, 180, 200]));
    const run = await sipp.done;
    expectSuccess(run);
    const logged = run.logs.find((l) => l.startsWith('credentials '))!.slice('credentials '.length);
    const credentials = parseDigestCredentials(logged);
    if (credentials instanceof SipError) throw credentials;
    expect(credentials).toMatchObject({ username: 'out', realm: 'trunk', nonce: '5e0c1f2a9b7d4c3e' });
    const verdict = await verifyDigestCredentials(credentials, { realm: 'trunk', password: 'pw1', method: 'INVITE', requestUri: credentials.uri, nonceIsCurrent: () => 'current' });
    expect(verdict).toEqual({ ok: true });
  });

  it('uas-digest-401: sipp verifies the Authorization itself', async () => {
    const peer = await standIn();
    const sipp = await startSipp({ scenario: 'uas-digest-401', keys: { user: 'out', password: 'pw1' } });
    cleanups.push(() => sipp.kill());
    await sipp.ready();
    const result = await peer.placeCall(sipp.port, { rtpPort: 43210, credentials: { username: 'out', password: 'pw1' }, byeAfterMs: 100 });
    expect(result.statuses).toEqual(expect.arrayContaining([401, 180, 200]));
    expectSuccess(await sipp.done);
  });

  it('uas-digest-401: a wrong password is refused and the sipp call fails', async () => {
    const peer = await standIn();
    const sipp = await startSipp({ scenario: 'uas-digest-401', keys: { user: 'out', password: 'pw1' }, timeoutMs: 5000 });
    cleanups.push(() => sipp.kill());
    await sipp.ready();
    await expect(peer.placeCall(sipp.port, { rtpPort: 43210, credentials: { username: 'out', password: 'wrong' } })).rejects.toThrow(/403/);
    const run = await sipp.done;
    expect(run.stats?.failed).toBe(1);
  });
});

describe('RTP caller', () => {
  /** A loopback stand-in for the runtime's RTP socket. */
  async function rtpPeer() {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    const got: { bytes: Uint8Array; atMs: number; from: RemoteInfo }[] = [];
    socket.on('message', (bytes, from) => got.push({ bytes: Uint8Array.from(bytes), atMs: performance.now(), from }));
    cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    const out = new Uint8Array(172);
    let seq = 100;
    return {
      port: socket.address().port,
      got,
      send(to: number, pcm: Int16Array) {
        const payload = new Uint8Array(160);
        mulawEncode(pcm, payload, 160);
        const n = encodeRtpPacket({ marker: false, payloadType: 0, sequenceNumber: seq++, timestamp: seq * 160, ssrc: 7 }, payload, out);
        // A copy: dgram reads the buffer after a tick, and the next send reuses `out`.
        if (typeof n === 'number') socket.send(out.slice(0, n), to, '127.0.0.1');
      },
    };
  }

  it('latches onto the first sender, then paces 20 ms packets with continuous headers', async () => {
    const caller = await rtpCaller();
    const peer = await rtpPeer();
    const tone = synthesizeWords(['hello'], 8000).pcm;
    peer.send(caller.port, tone.subarray(0, 160));
    await caller.waitFor(() => caller.received.length === 1, 1000, 'one packet');
    expect(caller.remote).toEqual({ address: '127.0.0.1', port: peer.port });
    expect(caller.received[0]).toMatchObject({ seq: 100, ssrc: 7, payloadType: 0, from: `127.0.0.1:${peer.port}` });
    expect(rms(caller.receivedPcm())).toBeGreaterThan(1000);

    await caller.sendSpeech(new Int16Array(160 * 10).fill(2000));
    await caller.sendSilence(100);
    await caller.waitFor(() => peer.got.length === 15, 1000, '15 packets at the peer');
    const packets = peer.got.map((p) => decodeRtp(p.bytes)).filter((p): p is Exclude<typeof p, SipError> => !(p instanceof SipError));
    expect(packets).toHaveLength(15);
    expect(peer.got.every((p) => p.from.port === caller.port)).toBe(true);
    expect(packets[0]!.marker).toBe(true);
    expect(packets.slice(1).every((p) => !p.marker)).toBe(true);
    for (let i = 1; i < packets.length; i++) {
      expect((packets[i]!.sequenceNumber - packets[i - 1]!.sequenceNumber) & 0xffff).toBe(1);
      expect((packets[i]!.timestamp - packets[i - 1]!.timestamp) >>> 0).toBe(160);
      expect(packets[i]!.ssrc).toBe(packets[0]!.ssrc);
      expect(packets[i]!.payload).toHaveLength(160);
    }
    // Real-time pacing: 15 packets span about 14 × 20 ms (loose bounds).
    const spanMs = peer.got[14]!.atMs - peer.got[0]!.atMs;
    expect(spanMs).toBeGreaterThan(240);
    expect(spanMs).toBeLessThan(500);
    expect(packets[12]!.payload.every((b) => b === 0xff)).toBe(true);
  });

  it('sends an RFC 4733 digit: marked start, growing duration, end packet three times on one timestamp', async () => {
    const caller = await rtpCaller({ dtmfPayloadType: 96 });
    const peer = await rtpPeer();
    caller.setRemote('127.0.0.1', peer.port);
    await caller.sendDtmf('#', 60);
    await caller.waitFor(() => peer.got.length === 6, 1000, '6 DTMF packets');
    const packets = peer.got.map((p) => decodeRtp(p.bytes) as Exclude<ReturnType<typeof decodeRtp>, SipError>);
    expect(packets.every((p) => p.payloadType === 96 && p.timestamp === packets[0]!.timestamp)).toBe(true);
    expect(packets.map((p) => p.marker)).toEqual([true, false, false, false, false, false]);
    expect(packets.map((p) => [p.payload[0], p.payload[1]! & 0x80, (p.payload[2]! << 8) | p.payload[3]!])).toEqual([
      [11, 0, 160], [11, 0, 320], [11, 0, 480], [11, 0x80, 480], [11, 0x80, 480], [11, 0x80, 480],
    ]);
    await expect(caller.sendDtmf('x')).rejects.toThrow(/RTP_CALLER_DIGIT/);
  });

  it('setRemote wins over latching; sending without a remote fails after the wait', async () => {
    const lonely = await rtpCaller({ remoteWaitMs: 100 });
    await expect(lonely.sendSilence(20)).rejects.toThrow(/RTP_CALLER_NO_REMOTE/);
    expect(() => lonely.sendRaw(new Uint8Array([1]))).toThrow(/RTP_CALLER_NO_REMOTE/);

    const caller = await rtpCaller();
    const a = await rtpPeer();
    const b = await rtpPeer();
    caller.setRemote('127.0.0.1', b.port);
    a.send(caller.port, new Int16Array(160));
    await caller.waitFor(() => caller.received.length === 1, 1000, 'a packet from a');
    caller.sendRaw(new Uint8Array([0xde, 0xad]));
    await caller.waitFor(() => b.got.length === 1, 1000, 'raw bytes at b');
    expect(a.got).toHaveLength(0);
    expect(Array.from(b.got[0]!.bytes)).toEqual([0xde, 0xad]);
  });

  it('finds the first voiced packet and decodes received digits once', async () => {
    const caller = await rtpCaller();
    const peer = await rtpPeer();
    peer.send(caller.port, new Int16Array(160));
    peer.send(caller.port, new Int16Array(160).fill(4000));
    await caller.waitFor(() => caller.received.length === 2, 1000, 'two packets');
    expect(caller.firstVoicedPacket()).toBe(1);
    expect(caller.firstVoicedPacket(2)).toBe(-1);
    // Our own DTMF looped back (two sockets of one caller pair): the end packets count once.
    const other = await rtpCaller();
    other.setRemote('127.0.0.1', caller.port);
    await other.sendDtmf('4', 40);
    await caller.waitFor(() => caller.received.length === 2 + 5, 1000, 'DTMF packets');
    expect(caller.receivedDigits()).toEqual(['4']);
  });
});
