import type { TimerHandle } from '../../shared/contracts/clock';
import { buildAuthorization, parseDigestChallenge, type DigestChallenge } from '../../shared/telephony/sip/digest';
import { bodyText, getHeader, getHeaders, type OutgoingSipMessage, type SipHeader, type SipRequest, type SipResponse } from '../../shared/telephony/sip/message';
import { SipError } from '../../shared/telephony/sip/sip-error';
import {
  SIP_ALLOW, newBranch, randomToken, scheduleRetransmit, sendNonInviteRequest, transactionTimeoutMs, viaValue, type SipCore,
} from './sip-transactions';
import type { SipEndpoint } from './udp-transport';

/**
 * One SIP dialog (RFC 3261 §12) of either side: in-dialog requests we receive (BYE, re-INVITE, UPDATE, INFO,
 * NOTIFY, OPTIONS), the 2xx-until-ACK retransmission of the UAS, the ACK re-send of the UAC, and the requests
 * we send (BYE, REFER). The stack routes messages here by Call-ID and tags.
 */

export interface SipDialog {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** Where in-dialog requests go (the remote Contact) and where we last heard from. */
  readonly remoteTarget: string;
  readonly remoteEndpoint: SipEndpoint;
  readonly confirmed: Promise<boolean>;
  readonly state: 'confirmed' | 'terminated' | 'early';
  onBye(listener: () => void): void;
  onTerminated(listener: (reason: string) => void): void;
  onReInvite(handler: (request: SipRequest) => { sdp: string } | { status: number; reason?: string }): void;
  onInfoDtmf(listener: (digit: string) => void): void;
  bye(): Promise<void>;
  refer(target: string, options?: { referredBy?: string; timeoutMs?: number }): Promise<{ accepted: boolean; status: number }>;
}

/** A request the stack already made a server transaction for; `respond` sends (and keeps) the response. */
export interface ServerTransactionHandle {
  readonly request: SipRequest;
  readonly source: SipEndpoint;
  /** Where responses go (top Via, rport). */
  readonly target: SipEndpoint;
  respond(status: number, reason: string, headers?: readonly SipHeader[], body?: { readonly contentType: string; readonly body: string }): Uint8Array;
}

export interface DialogInit {
  readonly role: 'uas' | 'uac';
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** Our name-addr without tag (From of our requests, default Referred-By). */
  readonly localUri: string;
  /** The peer's name-addr as it sent it, with its tag (To of our requests). */
  readonly remoteAddress: string;
  readonly remoteTarget: string;
  readonly routeSet: readonly string[];
  /** Last CSeq we used (the INVITE's for a UAC). */
  readonly localSeq: number;
  /** Last CSeq the peer used (the INVITE's for a UAS); undefined for a UAC until it sends a request. */
  readonly remoteSeq?: number;
  readonly peer: SipEndpoint;
  /** Our Contact header value. */
  readonly contact: string;
  readonly localSdp: string;
  /** UAC credentials, reused when an in-dialog request is challenged. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** UAS: waits for the ACK of its 2xx (`early`); UAC: the ACK is ours, confirmed at once. */
  readonly awaitingAck: boolean;
}

export interface DialogHandle {
  readonly dialog: SipDialog;
  readonly key: string;
  handleRequest(tx: ServerTransactionHandle): void;
  handleAck(request: SipRequest, source: SipEndpoint): void;
  /** UAC: a 2xx to our INVITE arrived again: send the same ACK again. */
  handleInviteResponse(response: SipResponse): void;
  /** UAS: retransmit this 2xx (T1 doubling to T2) until the ACK for `seq`; BYE after 64·T1. */
  retransmitUntilAck(bytes: Uint8Array, to: SipEndpoint, seq: number): void;
  /** UAC: the ACK bytes to re-send when the 2xx is retransmitted. */
  setAck(bytes: Uint8Array, to: SipEndpoint): void;
  /** Stack close: end now with a BYE, without waiting for a pending ACK. */
  close(): Promise<void>;
  /** End without a BYE (the call was never really up). */
  terminate(reason: string): void;
}

export function dialogKey(callId: string, localTag: string | undefined, remoteTag: string | undefined): string {
  return `${callId}\n${localTag ?? ''}\n${remoteTag ?? ''}`;
}

/** At most this many listeners of one kind per dialog: a caller that adds one per event would leak. */
const MAX_LISTENERS = 16;

/** Signal values of application/dtmf-relay: 0-9, *, #, A-D, and the numeric forms 10 (*) and 11 (#). */
function dtmfDigit(value: string): string | undefined {
  const text = value.trim().toUpperCase();
  if (text === '10') return '*';
  if (text === '11') return '#';
  return /^[0-9*#A-D]$/.test(text) ? text : undefined;
}

function sipfragStatus(body: string): number | undefined {
  const match = /^SIP\/2\.0 ([1-6]\d\d)/.exec(body.trimStart());
  return match ? Number(match[1]) : undefined;
}

export function createDialog(core: SipCore, init: DialogInit, hooks: { onRemoved(handle: DialogHandle): void }): DialogHandle {
  let state: SipDialog['state'] = init.awaitingAck ? 'early' : 'confirmed';
  let localSeq = init.localSeq;
  let remoteSeq = init.remoteSeq;
  let peer = init.peer;
  let localSdp = init.localSdp;
  const localAddress = `${init.localUri};tag=${init.localTag}`;
  const byeListeners: (() => void)[] = [];
  const terminatedListeners: ((reason: string) => void)[] = [];
  const dtmfListeners: ((digit: string) => void)[] = [];
  let reInviteHandler: ((request: SipRequest) => { sdp: string } | { status: number; reason?: string }) | undefined;
  let resolveConfirmed: (ok: boolean) => void = () => undefined;
  const confirmed = new Promise<boolean>((resolve) => { resolveConfirmed = resolve; });
  if (!init.awaitingAck) resolveConfirmed(true);
  /** The 2xx waiting for its ACK (initial INVITE or re-INVITE). */
  let pendingAck: { seq: number; stop(): void; timer: TimerHandle; initial: boolean } | undefined;
  let ack: { bytes: Uint8Array; to: SipEndpoint } | undefined;
  let byePromise: Promise<void> | undefined;
  let pendingRefer: { onNotify(status: number | undefined, subscriptionTerminated: boolean): void; onDialogEnd(): void } | undefined;
  let challenge: { header: string; value: DigestChallenge } | undefined;

  const addListener = <T>(list: T[], listener: T, kind: string) => {
    if (list.length >= MAX_LISTENERS) {
      core.log('warn', `SIP dialog: too many ${kind} listeners, ignoring one`, { callId: init.callId });
      return;
    }
    list.push(listener);
  };
  const safely = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (error) {
      core.log('error', `SIP dialog ${what} listener threw`, { callId: init.callId, error: String(error) });
    }
  };

  /** Marks the dialog ended (once); `first` runs before the terminated listeners (onBye). */
  function end(reason: string, first?: () => void): boolean {
    if (state === 'terminated') return false;
    state = 'terminated';
    // A no-op once the ACK confirmed it.
    resolveConfirmed(false);
    if (pendingAck) {
      pendingAck.stop();
      core.clock.clearTimeout(pendingAck.timer);
      pendingAck = undefined;
    }
    hooks.onRemoved(handle);
    first?.();
    pendingRefer?.onDialogEnd();
    for (const listener of terminatedListeners) safely('terminated', () => listener(reason));
    return true;
  }

  async function authorizationFor(method: string): Promise<SipHeader | undefined> {
    if (!challenge || !init.auth) return undefined;
    const value = await buildAuthorization(challenge.value, { method, uri: init.remoteTarget, username: init.auth.username, password: init.auth.password, cnonce: randomToken(8) });
    return value instanceof SipError ? undefined : { name: challenge.header, value };
  }

  function buildRequest(method: string, seq: number, branch: string, extra: readonly SipHeader[], body?: { contentType: string; body: string }): OutgoingSipMessage {
    const headers: SipHeader[] = [
      { name: 'Via', value: viaValue(core, branch) },
      { name: 'Max-Forwards', value: '70' },
      { name: 'From', value: localAddress },
      { name: 'To', value: init.remoteAddress },
      { name: 'Call-ID', value: init.callId },
      { name: 'CSeq', value: `${seq} ${method}` },
      ...init.routeSet.map((value) => ({ name: 'Route', value })),
      { name: 'Contact', value: init.contact },
      { name: 'User-Agent', value: core.userAgent },
      ...extra,
    ];
    if (body) headers.push({ name: 'Content-Type', value: body.contentType });
    return { kind: 'request', method, requestUri: init.remoteTarget, headers, ...(body ? { body: body.body } : {}) };
  }

  /** Sends an in-dialog request (next CSeq, new branch); answers one digest challenge when we hold credentials. */
  async function request(method: string, extra: readonly SipHeader[] = []): Promise<SipResponse | undefined> {
    let retried = false;
    while (true) {
      localSeq += 1;
      const branch = newBranch();
      const authorization = await authorizationFor(method);
      const response = await sendNonInviteRequest(core, buildRequest(method, localSeq, branch, authorization ? [...extra, authorization] : extra), branch, peer);
      if (response && (response.status === 401 || response.status === 407) && init.auth && !retried) {
        const header = response.status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
        const parsed = getHeaders(response, header).map(parseDigestChallenge).find((c): c is DigestChallenge => !(c instanceof SipError));
        if (parsed) {
          challenge = { header: response.status === 401 ? 'Authorization' : 'Proxy-Authorization', value: parsed };
          retried = true;
          continue;
        }
      }
      return response;
    }
  }

  function sendBye(reason: string): Promise<void> {
    if (byePromise) return byePromise;
    if (!end(reason)) return Promise.resolve();
    byePromise = request('BYE').then((response) => {
      if (!response) core.log('info', 'SIP BYE got no answer (Timer F)', { callId: init.callId });
    });
    return byePromise;
  }

  function respondSdp(tx: ServerTransactionHandle, sdp: string): Uint8Array {
    localSdp = sdp;
    return tx.respond(200, 'OK', [{ name: 'Contact', value: init.contact }, { name: 'Allow', value: SIP_ALLOW }], { contentType: 'application/sdp', body: sdp });
  }

  function handleOffer(tx: ServerTransactionHandle): void {
    const { request: req } = tx;
    if (req.method === 'INVITE' && pendingAck) {
      tx.respond(491, 'Request Pending');
      return;
    }
    if (req.method === 'UPDATE' && req.body.length === 0) {
      // A session-timer refresh by UPDATE carries no offer: 200 without a body (an answer here would be an offer).
      tx.respond(200, 'OK', [{ name: 'Contact', value: init.contact }, { name: 'Allow', value: SIP_ALLOW }]);
      return;
    }
    let answer: { sdp: string } | { status: number; reason?: string };
    try {
      // Without a handler (a session-timer refresh, say) the current answer stands.
      answer = reInviteHandler ? reInviteHandler(req) : { sdp: localSdp };
    } catch (error) {
      core.log('error', 'SIP re-INVITE handler threw', { callId: init.callId, error: String(error) });
      answer = { status: 500, reason: 'Server Internal Error' };
    }
    if ('sdp' in answer) {
      const bytes = respondSdp(tx, answer.sdp);
      if (req.method === 'INVITE') handle.retransmitUntilAck(bytes, tx.target, req.cseq.seq);
    } else {
      const status = answer.status >= 300 && answer.status <= 699 ? answer.status : 488;
      tx.respond(status, answer.reason ?? (status === 488 ? 'Not Acceptable Here' : 'Refused'));
    }
  }

  function handleNotify(tx: ServerTransactionHandle): void {
    const event = (getHeader(tx.request, 'event') ?? '').split(';')[0]!.trim().toLowerCase();
    if (event !== 'refer') {
      tx.respond(489, 'Bad Event');
      return;
    }
    tx.respond(200, 'OK');
    const subscription = (getHeader(tx.request, 'subscription-state') ?? '').trim().toLowerCase();
    pendingRefer?.onNotify(sipfragStatus(bodyText(tx.request)), subscription.startsWith('terminated'));
  }

  function handleInfo(tx: ServerTransactionHandle): void {
    tx.respond(200, 'OK');
    const type = (getHeader(tx.request, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const text = bodyText(tx.request);
    let digit: string | undefined;
    if (type === 'application/dtmf-relay') {
      const signal = /(?:^|\n)\s*signal\s*=\s*(\S+)/i.exec(text);
      digit = signal ? dtmfDigit(signal[1]!) : undefined;
    } else if (type === 'application/dtmf') digit = dtmfDigit(text);
    if (digit === undefined) return;
    const pressed = digit;
    for (const listener of dtmfListeners) safely('DTMF', () => listener(pressed));
  }

  const dialog: SipDialog = {
    callId: init.callId,
    localTag: init.localTag,
    remoteTag: init.remoteTag,
    remoteTarget: init.remoteTarget,
    get remoteEndpoint() { return peer; },
    confirmed,
    get state() { return state; },
    onBye: (listener) => addListener(byeListeners, listener, 'BYE'),
    onTerminated: (listener) => addListener(terminatedListeners, listener, 'terminated'),
    onReInvite: (handler) => { reInviteHandler = handler; },
    onInfoDtmf: (listener) => addListener(dtmfListeners, listener, 'DTMF'),
    bye() {
      if (byePromise) return byePromise;
      if (state === 'terminated') return Promise.resolve();
      // RFC 3261 §15: the UAS waits for the ACK (or its timeout, which sends the BYE itself) before a BYE.
      if (state === 'early') return confirmed.then(() => sendBye('local-bye'));
      return sendBye('local-bye');
    },
    refer(target, options = {}) {
      if (state === 'terminated') return Promise.resolve({ accepted: false, status: 481 });
      if (pendingRefer) return Promise.resolve({ accepted: false, status: 491 });
      return new Promise((resolve) => {
        let accepted = false;
        let settled = false;
        const done = (result: { accepted: boolean; status: number }) => {
          if (settled) return;
          settled = true;
          core.clock.clearTimeout(timer);
          pendingRefer = undefined;
          resolve(result);
        };
        const timer = core.clock.setTimeout(() => done({ accepted, status: 408 }), options.timeoutMs ?? 32_000);
        pendingRefer = {
          onNotify(status, subscriptionTerminated) {
            accepted = true;
            if (status !== undefined && status >= 200) done({ accepted: true, status });
            else if (subscriptionTerminated) done({ accepted: true, status: status ?? 500 });
          },
          onDialogEnd: () => done({ accepted, status: 481 }),
        };
        const referTo = target.includes('<') ? target : `<${target}>`;
        const referredBy = options.referredBy ? (options.referredBy.includes('<') ? options.referredBy : `<${options.referredBy}>`) : init.localUri;
        request('REFER', [{ name: 'Refer-To', value: referTo }, { name: 'Referred-By', value: referredBy }]).then((response) => {
          if (!response) done({ accepted: false, status: 408 });
          else if (response.status >= 300) done({ accepted: false, status: response.status });
          else accepted = true;
        }, (error: unknown) => {
          core.log('error', 'SIP REFER failed', { callId: init.callId, error: String(error) });
          done({ accepted: false, status: 500 });
        });
      });
    },
  };

  const handle: DialogHandle = {
    dialog,
    key: dialogKey(init.callId, init.localTag, init.remoteTag),
    handleRequest(tx) {
      const req = tx.request;
      // RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
      if (remoteSeq !== undefined && req.cseq.seq < remoteSeq) {
        tx.respond(500, 'Server Internal Error', [{ name: 'Retry-After', value: '1' }]);
        return;
      }
      remoteSeq = req.cseq.seq;
      peer = tx.target;
      switch (req.method) {
        case 'BYE':
          tx.respond(200, 'OK');
          end('bye-received', () => { for (const listener of byeListeners) safely('BYE', listener); });
          return;
        case 'INVITE':
        case 'UPDATE':
          handleOffer(tx);
          return;
        case 'INFO':
          handleInfo(tx);
          return;
        case 'NOTIFY':
          handleNotify(tx);
          return;
        case 'OPTIONS':
          tx.respond(200, 'OK', [{ name: 'Allow', value: SIP_ALLOW }, { name: 'Accept', value: 'application/sdp' }]);
          return;
        case 'REFER':
          // We transfer others; being transferred is left to the far end's own REFER handling.
          tx.respond(403, 'Forbidden');
          return;
        default:
          tx.respond(405, 'Method Not Allowed', [{ name: 'Allow', value: SIP_ALLOW }]);
      }
    },
    handleAck(req) {
      if (!pendingAck || req.cseq.seq !== pendingAck.seq) {
        core.stats.retransmissionsAbsorbed += 1;
        return;
      }
      pendingAck.stop();
      core.clock.clearTimeout(pendingAck.timer);
      const initial = pendingAck.initial;
      pendingAck = undefined;
      if (initial && state === 'early') {
        state = 'confirmed';
        resolveConfirmed(true);
      }
    },
    handleInviteResponse() {
      if (!ack) return;
      core.stats.retransmissionsAbsorbed += 1;
      core.send(ack.bytes, ack.to);
    },
    retransmitUntilAck(bytes, to, seq) {
      const retransmit = scheduleRetransmit(core, () => core.send(bytes, to), core.timers.t2Ms);
      const initial = state === 'early';
      const timer = core.clock.setTimeout(() => {
        core.log('warn', 'SIP 2xx never acknowledged: ending the call with BYE', { callId: init.callId, afterMs: transactionTimeoutMs(core) });
        if (pendingAck?.initial) resolveConfirmed(false);
        pendingAck?.stop();
        pendingAck = undefined;
        void sendBye('ack-timeout');
      }, transactionTimeoutMs(core));
      pendingAck = { seq, stop: retransmit.stop, timer, initial };
    },
    setAck(bytes, to) {
      ack = { bytes, to };
    },
    close() {
      if (byePromise) return byePromise;
      return sendBye('stack-closed');
    },
    terminate(reason) {
      end(reason);
    },
  };
  return handle;
}
