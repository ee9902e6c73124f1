import { systemClock, type Clock, type TimerHandle } from '../../shared/contracts/clock';
import { buildAuthorization, parseDigestChallenge, type DigestChallenge } from '../../shared/telephony/sip/digest';
import {
  bodyText, buildResponse, getHeader, getHeaders, parseSipMessage, parseVia, serializeSipMessage,
  type OutgoingSipMessage, type SipHeader, type SipRequest, type SipResponse,
} from '../../shared/telephony/sip/message';
import { SipError } from '../../shared/telephony/sip/sip-error';
import { createDialog, dialogKey, type DialogHandle, type ServerTransactionHandle, type SipDialog } from './sip-dialog';
import {
  DEFAULT_SIP_TIMERS, SIP_ALLOW, asNameAddr, clientKey, hostPort, newBranch, randomToken, scheduleRetransmit, serialize,
  transactionTimeoutMs, viaValue, type SipCore, type SipLog, type SipStats, type SipTimers,
} from './sip-transactions';
import type { SipEndpoint, SipTransport } from './udp-transport';

export type { SipDialog } from './sip-dialog';
export type { SipTimers } from './sip-transactions';

/**
 * The SIP transaction and dialog layer over UDP (RFC 3261 §17, §12-15; reference §6.1, §6.5, §6.6): matches
 * retransmissions, answers what needs no application (100, CANCEL, OPTIONS, 405, 420, 481, 400), keeps final
 * responses for their timers, routes in-dialog requests to dialogs, and places outgoing INVITEs (digest auth,
 * CANCEL). Every datagram is handled inside a try: a hostile packet costs a counter, never the process.
 */

export interface SipStackOptions {
  readonly transport: SipTransport;
  /** Host (SIP_PUBLIC_IP) and port we put in Via, Contact. */
  readonly publicHost: string;
  readonly publicPort: number;
  readonly clock?: Clock;
  readonly timers?: Partial<SipTimers>;
  readonly userAgent?: string;
  readonly maxTransactions?: number;
  readonly log?: SipLog;
  onProtocolError?(code: string, message: string, from: SipEndpoint): void;
  onInvite(invite: IncomingInvite): void;
}

export interface IncomingInvite {
  readonly request: SipRequest;
  readonly source: SipEndpoint;
  progress(status: 180 | 183, body?: { contentType: string; body: string }): void;
  reject(status: number, reason?: string, headers?: readonly (readonly [string, string])[]): void;
  /** After a CANCEL or reject this returns an already terminated dialog (confirmed false) instead of throwing. */
  accept(sdp: string, headers?: readonly (readonly [string, string])[]): SipDialog;
  onCancel(listener: () => void): void;
  readonly answered: boolean;
}

export interface OutgoingInviteOptions {
  readonly requestUri: string;
  readonly destination: SipEndpoint;
  readonly from: string;
  readonly to: string;
  readonly sdp: string;
  readonly auth?: { readonly username: string; readonly password: string };
  readonly headers?: readonly (readonly [string, string])[];
  onProgress?(status: number, sdp: string | undefined): void;
  readonly signal?: AbortSignal;
  readonly answerTimeoutMs?: number;
}

export type OutgoingInviteResult =
  | { readonly ok: true; readonly dialog: SipDialog; readonly response: SipResponse; readonly sdp: string }
  | { readonly ok: false; readonly status: number; readonly reason: string };

export interface SipStack {
  invite(options: OutgoingInviteOptions): Promise<OutgoingInviteResult>;
  readonly dialogCount: number;
  /** Server and client transactions held (both return to 0 once their timers ran out). */
  readonly transactionCount: number;
  readonly stats: Readonly<SipStats>;
  close(): Promise<void>;
}

const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying', 180: 'Ringing', 183: 'Session Progress', 200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 407: 'Proxy Authentication Required', 408: 'Request Timeout', 415: 'Unsupported Media Type',
  420: 'Bad Extension', 480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 486: 'Busy Here', 487: 'Request Terminated',
  488: 'Not Acceptable Here', 500: 'Server Internal Error', 503: 'Service Unavailable', 603: 'Decline',
};
const reasonFor = (status: number) => REASONS[status] ?? (status < 300 ? 'OK' : 'Error');

/** Methods that only make sense inside a dialog: without a To-tag there is none (481). */
const IN_DIALOG_ONLY = new Set(['BYE', 'INFO', 'NOTIFY', 'REFER', 'UPDATE', 'PRACK']);
const DEFAULT_ANSWER_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_TRANSACTIONS = 10_000;
/** How long `close()` waits for the BYEs it sends before it stops every timer. */
const CLOSE_WAIT_CAP_MS = 4000;

interface ServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly source: SipEndpoint;
  readonly target: SipEndpoint;
  toTag: string;
  state: 'proceeding' | 'completed' | 'confirmed' | 'accepted';
  lastResponse?: Uint8Array;
  timers: TimerHandle[];
  stopRetransmit?: () => void;
  /** INVITE transactions of a new call: what CANCEL acts on. */
  cancel?: () => void;
  /** INVITE transactions of a new call: a 503 when the stack closes before the application answered. */
  refuse?: () => void;
}

/** RFC 3261 §17.2.3: the top Via's branch (magic cookie) + sent-by + method; ACK matches its INVITE. */
function serverKey(request: SipRequest, method = request.method): string {
  const via = request.via[0]!;
  const sentBy = `${via.host}:${via.port ?? 5060}`;
  if (via.branch?.startsWith('z9hG4bK')) return `${via.branch}|${sentBy}|${method}`;
  // RFC 2543 peers: no usable branch, so the request's identity stands in for it.
  return `${request.callId}|${request.from.tag ?? ''}|${request.cseq.seq}|${via.raw}|${method}`;
}

/** RFC 3261 §18.2.2 + RFC 3581: to the packet's source port when the client asked for rport, else to sent-by's port. */
function responseTarget(request: SipRequest, source: SipEndpoint): SipEndpoint {
  const via = request.via[0]!;
  return via.rport !== undefined ? source : { address: source.address, port: via.port ?? 5060 };
}

const toHeaders = (pairs: readonly (readonly [string, string])[] | undefined): SipHeader[] => (pairs ?? []).map(([name, value]) => ({ name, value }));

/**
 * A datagram that did not parse but still names where to answer: the header values a 400 needs, taken
 * line by line without the full grammar. Undefined when any is missing or the datagram is not a request.
 */
function salvageForBadRequest(data: Uint8Array): { via: string[]; headers: SipHeader[]; method: string } | undefined {
  const text = new TextDecoder().decode(data.subarray(0, 8192));
  const lines = text.split(/\r?\n/);
  const startLine = lines.shift() ?? '';
  const start = /^([A-Za-z]+) \S+ SIP\/2\.0$/.exec(startLine.trim());
  if (!start || start[1]!.toUpperCase() === 'ACK') return undefined;
  const via: string[] = [];
  const found = new Map<string, string>();
  const names: Record<string, string> = { from: 'From', f: 'From', to: 'To', t: 'To', 'call-id': 'Call-ID', i: 'Call-ID', cseq: 'CSeq' };
  for (const line of lines) {
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'via' || name === 'v') via.push(value);
    else if (names[name] && !found.has(names[name]!)) found.set(names[name]!, value);
  }
  if (via.length === 0 || found.size < 4) return undefined;
  return { via, headers: [...found].map(([name, value]) => ({ name, value })), method: start[1]! };
}

export function createSipStack(options: SipStackOptions): SipStack {
  const clock = options.clock ?? systemClock;
  const timers: SipTimers = { ...DEFAULT_SIP_TIMERS, ...options.timers };
  const log: SipLog = options.log ?? (() => undefined);
  const maxTransactions = options.maxTransactions ?? DEFAULT_MAX_TRANSACTIONS;
  const stats: SipStats = { received: 0, malformed: 0, retransmissionsAbsorbed: 0, sent: 0, overloaded: 0 };
  const transactions = new Map<string, ServerTransaction>();
  const dialogs = new Map<string, DialogHandle>();
  /** Outgoing INVITEs in flight, settled as 503 by `close()`. */
  const pendingOutgoing = new Set<() => void>();
  let closing = false;
  let closed = false;

  const core: SipCore = {
    clock, timers, log, stats,
    publicHost: options.publicHost,
    publicPort: options.publicPort,
    userAgent: options.userAgent ?? 'voice-runtime',
    clientTransactions: new Map(),
    send(message, to) {
      const bytes = serialize(message);
      if (closed) return bytes;
      stats.sent += 1;
      options.transport.send(bytes, to);
      return bytes;
    },
    isClosed: () => closing,
  };

  const protocolError = (code: string, message: string, from: SipEndpoint) => {
    log('debug', 'SIP protocol error', { code, message, from: `${from.address}:${from.port}` });
    try {
      options.onProtocolError?.(code, message, from);
    } catch (error) {
      log('error', 'SIP onProtocolError threw', { error: String(error) });
    }
  };

  // ---- server transactions ------------------------------------------------------------------------------

  function removeTransaction(tx: ServerTransaction): void {
    tx.stopRetransmit?.();
    for (const timer of tx.timers) clock.clearTimeout(timer);
    tx.timers = [];
    if (transactions.get(tx.key) === tx) transactions.delete(tx.key);
  }

  function linger(tx: ServerTransaction, ms: number): void {
    tx.timers.push(clock.setTimeout(() => removeTransaction(tx), ms));
  }

  function respond(tx: ServerTransaction, status: number, reason: string, headers: readonly SipHeader[] = [], body?: { readonly contentType: string; readonly body: string }): Uint8Array {
    const extra: SipHeader[] = [...headers, { name: 'Server', value: core.userAgent }];
    if (body) extra.push({ name: 'Content-Type', value: body.contentType });
    const message = buildResponse(tx.request, status, reason, extra, body?.body, { source: tx.source, ...(status > 100 ? { toTag: tx.toTag } : {}) });
    const bytes = core.send(message, tx.target);
    tx.lastResponse = bytes;
    if (status < 200) return bytes;
    if (tx.request.method !== 'INVITE') {
      // Timer J: keep the final response to answer retransmissions of the request.
      tx.state = 'completed';
      linger(tx, transactionTimeoutMs(core));
    } else if (status < 300) {
      // RFC 6026 Accepted (Timer L): INVITE copies are absorbed; the dialog retransmits the 2xx itself.
      tx.state = 'accepted';
      linger(tx, transactionTimeoutMs(core));
    } else {
      // Timer G until the ACK, Timer H gives up.
      tx.state = 'completed';
      tx.stopRetransmit = scheduleRetransmit(core, () => core.send(bytes, tx.target), timers.t2Ms).stop;
      tx.timers.push(clock.setTimeout(() => {
        log('info', 'SIP ACK for a final response never came (Timer H)', { callId: tx.request.callId, status });
        removeTransaction(tx);
      }, transactionTimeoutMs(core)));
    }
    return bytes;
  }

  function handleOf(tx: ServerTransaction): ServerTransactionHandle {
    return {
      request: tx.request,
      source: tx.source,
      target: tx.target,
      respond: (status, reason, headers, body) => respond(tx, status, reason, headers, body),
    };
  }

  /** A 503 without a transaction (we are over the bound, so we hold nothing for it). */
  function respondStateless(request: SipRequest, source: SipEndpoint, status: number, headers: readonly SipHeader[]): void {
    const message = buildResponse(request, status, reasonFor(status), [...headers, { name: 'Server', value: core.userAgent }], undefined, { source, toTag: randomToken() });
    core.send(message, responseTarget(request, source));
  }

  // ---- incoming requests ----------------------------------------------------------------------------------

  function handleRequest(request: SipRequest, source: SipEndpoint): void {
    if (request.method === 'ACK') {
      handleAck(request, source);
      return;
    }
    const key = serverKey(request);
    const existing = transactions.get(key);
    if (existing) {
      stats.retransmissionsAbsorbed += 1;
      if (existing.lastResponse) core.send(existing.lastResponse, existing.target);
      return;
    }
    if (closing) {
      respondStateless(request, source, 503, [{ name: 'Retry-After', value: '5' }]);
      return;
    }
    if (transactions.size >= maxTransactions) {
      stats.overloaded += 1;
      log('warn', 'SIP transaction bound reached: 503', { maxTransactions, method: request.method });
      respondStateless(request, source, 503, [{ name: 'Retry-After', value: '5' }]);
      return;
    }
    const tx: ServerTransaction = {
      key, request, source, target: responseTarget(request, source), toTag: request.to.tag ?? randomToken(), state: 'proceeding', timers: [],
    };
    transactions.set(key, tx);

    if (request.method === 'CANCEL') {
      handleCancel(request, tx);
      return;
    }
    const required = getHeaders(request, 'require');
    if (required.length > 0) {
      // We implement no extension (no 100rel/PRACK, no session timers as a requirement).
      respond(tx, 420, 'Bad Extension', [{ name: 'Unsupported', value: required.join(', ') }]);
      return;
    }
    if (request.to.tag) {
      const dialog = dialogs.get(dialogKey(request.callId, request.to.tag, request.from.tag));
      if (!dialog) respond(tx, 481, reasonFor(481));
      else dialog.handleRequest(handleOf(tx));
      return;
    }
    switch (request.method) {
      case 'INVITE':
        handleNewInvite(tx);
        return;
      case 'OPTIONS':
        respond(tx, 200, 'OK', [{ name: 'Allow', value: SIP_ALLOW }, { name: 'Accept', value: 'application/sdp' }]);
        return;
      default:
        if (IN_DIALOG_ONLY.has(request.method)) respond(tx, 481, reasonFor(481));
        else respond(tx, 405, reasonFor(405), [{ name: 'Allow', value: SIP_ALLOW }]);
    }
  }

  function handleAck(request: SipRequest, source: SipEndpoint): void {
    const tx = transactions.get(serverKey(request, 'INVITE'));
    if (tx && tx.state === 'completed') {
      // ACK for our non-2xx: stop Timer G, absorb copies for Timer I.
      tx.state = 'confirmed';
      tx.stopRetransmit?.();
      for (const timer of tx.timers) clock.clearTimeout(timer);
      tx.timers = [];
      linger(tx, timers.t4Ms);
      return;
    }
    if (tx && tx.state === 'confirmed') {
      stats.retransmissionsAbsorbed += 1;
      return;
    }
    // ACK for a 2xx is end-to-end: matched to the dialog (RFC 3261 §13.3.1.4). An unmatched ACK gets no answer.
    dialogs.get(dialogKey(request.callId, request.to.tag, request.from.tag))?.handleAck(request, source);
  }

  function handleCancel(cancel: SipRequest, tx: ServerTransaction): void {
    const inviteTx = transactions.get(serverKey(cancel, 'INVITE'));
    if (!inviteTx) {
      respond(tx, 481, reasonFor(481));
      return;
    }
    // The 200 to the CANCEL carries the INVITE's To-tag; after our final answer the call is unaffected.
    tx.toTag = inviteTx.toTag;
    respond(tx, 200, 'OK');
    inviteTx.cancel?.();
  }

  function handleNewInvite(tx: ServerTransaction): void {
    const { request } = tx;
    const contentType = (getHeader(request, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (request.body.length > 0 && contentType !== 'application/sdp') {
      respond(tx, 415, reasonFor(415), [{ name: 'Accept', value: 'application/sdp' }]);
      return;
    }
    respond(tx, 100, 'Trying');
    const user = request.requestUri.user && /^[\w+\-.]+$/.test(request.requestUri.user) ? request.requestUri.user : 'voice';
    const contact = `<sip:${user}@${hostPort(core.publicHost, core.publicPort)}>`;
    let answered = false;
    let dialog: DialogHandle | undefined;
    const cancelListeners: (() => void)[] = [];

    const makeDialog = (sdp: string): DialogHandle => createDialog(core, {
      role: 'uas', callId: request.callId, localTag: tx.toTag, remoteTag: request.from.tag ?? '', localUri: request.to.raw,
      remoteAddress: request.from.raw, remoteTarget: request.contact[0]?.uri.raw ?? request.from.uri.raw,
      routeSet: getHeaders(request, 'record-route'), localSeq: 0, remoteSeq: request.cseq.seq, peer: tx.target, contact,
      localSdp: sdp, awaitingAck: true,
    }, { onRemoved: (handle) => { if (dialogs.get(handle.key) === handle) dialogs.delete(handle.key); } });

    tx.cancel = () => {
      if (answered) return;
      answered = true;
      respond(tx, 487, reasonFor(487));
      for (const listener of cancelListeners) {
        try {
          listener();
        } catch (error) {
          log('error', 'SIP onCancel listener threw', { error: String(error) });
        }
      }
    };

    tx.refuse = () => {
      if (answered) return;
      answered = true;
      respond(tx, 503, reasonFor(503), [{ name: 'Retry-After', value: '5' }]);
    };

    const incoming: IncomingInvite = {
      request,
      source: tx.source,
      get answered() { return answered; },
      progress(status, body) {
        if (answered || closed) return;
        respond(tx, status, reasonFor(status), [{ name: 'Contact', value: contact }], body);
      },
      reject(status, reason, headers) {
        if (answered || closed) return;
        if (!Number.isInteger(status) || status < 300 || status > 699) throw new RangeError(`SIP reject: status ${status} is not a final non-2xx status (300-699)`);
        answered = true;
        respond(tx, status, reason ?? reasonFor(status), toHeaders(headers));
      },
      accept(sdp, headers) {
        if (dialog) return dialog.dialog;
        dialog = makeDialog(sdp);
        if (answered || closing) {
          dialog.terminate(answered ? 'already-answered' : 'stack-closed');
          return dialog.dialog;
        }
        answered = true;
        dialogs.set(dialog.key, dialog);
        const bytes = respond(tx, 200, 'OK', [{ name: 'Contact', value: contact }, { name: 'Allow', value: SIP_ALLOW }, ...toHeaders(headers)], { contentType: 'application/sdp', body: sdp });
        dialog.retransmitUntilAck(bytes, tx.target, request.cseq.seq);
        return dialog.dialog;
      },
      onCancel(listener) {
        if (cancelListeners.length < 16) cancelListeners.push(listener);
      },
    };
    try {
      options.onInvite(incoming);
    } catch (error) {
      log('error', 'SIP onInvite threw', { callId: request.callId, error: String(error) });
      if (!answered) incoming.reject(500, reasonFor(500));
    }
  }

  // ---- responses ------------------------------------------------------------------------------------------

  function handleResponse(response: SipResponse, from: SipEndpoint): void {
    const branch = response.via[0]?.branch;
    const tx = branch ? core.clientTransactions.get(clientKey(branch, response.cseq.method)) : undefined;
    if (tx) {
      tx.onResponse(response, from);
      return;
    }
    // A 2xx to our INVITE again, after its transaction ended: the dialog re-sends its ACK.
    if (response.cseq.method === 'INVITE' && response.status >= 200 && response.status < 300) {
      dialogs.get(dialogKey(response.callId, response.from.tag, response.to.tag))?.handleInviteResponse(response);
    }
  }

  function onDatagram(data: Uint8Array, from: SipEndpoint): void {
    if (closed) return;
    stats.received += 1;
    // CRLF keep-alives (RFC 5626 §3.5.1) are not messages.
    if (data.length <= 4 && data.every((byte) => byte === 0x0d || byte === 0x0a)) return;
    const message = parseSipMessage(data);
    if (message instanceof SipError) {
      stats.malformed += 1;
      protocolError(`sip-${message.code}`, message.message, from);
      const salvage = salvageForBadRequest(data);
      const topVia = salvage ? parseVia(salvage.via[0]!) : undefined;
      if (salvage && topVia && !(topVia instanceof SipError)) {
        const target = topVia.rport !== undefined ? from : { address: from.address, port: topVia.port ?? 5060 };
        const headers = [...salvage.via.map((value) => ({ name: 'Via', value })), ...salvage.headers, { name: 'Server', value: core.userAgent }];
        core.send({ kind: 'response', status: 400, reason: `Bad Request (${message.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 80)})`, headers }, target);
      }
      return;
    }
    if (message.kind === 'response') handleResponse(message, from);
    else handleRequest(message, from);
  }

  options.transport.onMessage((data, from) => {
    try {
      onDatagram(data, from);
    } catch (error) {
      stats.malformed += 1;
      log('error', 'SIP datagram handling failed', { error: String(error), from: `${from.address}:${from.port}` });
      protocolError('sip-internal', String(error), from);
    }
  });

  // ---- outgoing INVITE ------------------------------------------------------------------------------------

  interface InviteAttempt {
    readonly done: Promise<SipResponse | undefined>;
    cancel(): void;
  }

  /** One INVITE client transaction (RFC 3261 §17.1.1): Timer A/B, ACK for non-2xx, CANCEL after a provisional. */
  function startInviteTransaction(message: OutgoingSipMessage & { kind: 'request' }, branch: string, seq: number, to: SipEndpoint, onProvisional: (response: SipResponse) => void): InviteAttempt {
    const key = clientKey(branch, 'INVITE');
    const bytes = core.send(message, to);
    const retransmit = scheduleRetransmit(core, () => core.send(bytes, to), undefined);
    let settled = false;
    let provisional = false;
    let cancelWanted = false;
    let cancelSent = false;
    let ackBytes: Uint8Array | undefined;
    let resolveDone: (response: SipResponse | undefined) => void = () => undefined;
    const done = new Promise<SipResponse | undefined>((resolve) => { resolveDone = resolve; });
    const txTimers: TimerHandle[] = [];
    const clearAll = () => {
      retransmit.stop();
      for (const timer of txTimers) clock.clearTimeout(timer);
      txTimers.length = 0;
    };
    const finish = (response: SipResponse | undefined) => {
      if (settled) return;
      settled = true;
      clearAll();
      resolveDone(response);
    };
    const drop = () => {
      clearAll();
      if (core.clientTransactions.get(key) === entry) core.clientTransactions.delete(key);
    };
    const copy = (names: string[]) => message.headers.filter((header) => names.includes(header.name));
    const sendCancel = () => {
      cancelSent = true;
      const cancel: OutgoingSipMessage = {
        kind: 'request', method: 'CANCEL', requestUri: message.requestUri,
        headers: [...copy(['Via', 'Max-Forwards', 'From', 'To', 'Call-ID']), { name: 'CSeq', value: `${seq} CANCEL` }, ...copy(['Route']), { name: 'User-Agent', value: core.userAgent }],
      };
      const cancelBranch = branch;
      const cancelKey = clientKey(cancelBranch, 'CANCEL');
      const cancelBytes = core.send(cancel, to);
      const cancelRetransmit = scheduleRetransmit(core, () => core.send(cancelBytes, to), timers.t2Ms);
      const cancelTimer = clock.setTimeout(() => endCancel(), transactionTimeoutMs(core));
      const endCancel = () => {
        cancelRetransmit.stop();
        clock.clearTimeout(cancelTimer);
        core.clientTransactions.delete(cancelKey);
      };
      core.clientTransactions.set(cancelKey, { onResponse: (r) => { if (r.status >= 200) endCancel(); }, abort: endCancel });
      // RFC 3261 §9.1: no final answer within 64·T1 of the CANCEL ends the INVITE transaction.
      txTimers.push(clock.setTimeout(() => { finish(undefined); drop(); }, transactionTimeoutMs(core)));
    };
    const entry = {
      onResponse(response: SipResponse) {
        if (response.status < 200) {
          if (settled) return;
          retransmit.stop();
          if (!provisional) {
            provisional = true;
            // Timer B only runs while nothing answered.
            for (const timer of txTimers) clock.clearTimeout(timer);
            txTimers.length = 0;
          }
          if (cancelWanted && !cancelSent) sendCancel();
          onProvisional(response);
          return;
        }
        if (response.status < 300) {
          // The dialog takes over (ACK, retransmitted 2xx).
          finish(response);
          drop();
          return;
        }
        if (!ackBytes) {
          ackBytes = serializeSipMessage({
            kind: 'request', method: 'ACK', requestUri: message.requestUri,
            headers: [...copy(['Via', 'Max-Forwards', 'From']), { name: 'To', value: response.to.raw }, ...copy(['Call-ID']), { name: 'CSeq', value: `${seq} ACK` }, ...copy(['Route']), { name: 'User-Agent', value: core.userAgent }],
          });
          finish(response);
          // Timer D: absorb retransmissions of the final response with the same ACK.
          txTimers.push(clock.setTimeout(drop, transactionTimeoutMs(core)));
        } else stats.retransmissionsAbsorbed += 1;
        core.send(ackBytes, to);
      },
      abort() {
        finish(undefined);
        drop();
      },
    };
    core.clientTransactions.set(key, entry);
    txTimers.push(clock.setTimeout(() => {
      log('info', 'SIP INVITE got no response (Timer B)', { to: `${to.address}:${to.port}` });
      finish(undefined);
      drop();
    }, transactionTimeoutMs(core)));
    return {
      done,
      cancel() {
        if (settled || cancelWanted) return;
        cancelWanted = true;
        // RFC 3261 §9.1: a CANCEL waits for a provisional response.
        if (provisional) sendCancel();
      },
    };
  }

  async function challengeAnswer(response: SipResponse, auth: { readonly username: string; readonly password: string }, requestUri: string): Promise<SipHeader | undefined> {
    const proxy = response.status === 407;
    const challenges = getHeaders(response, proxy ? 'proxy-authenticate' : 'www-authenticate').map(parseDigestChallenge);
    const challenge = challenges.find((c): c is DigestChallenge => !(c instanceof SipError));
    if (!challenge) return undefined;
    const value = await buildAuthorization(challenge, { method: 'INVITE', uri: requestUri, username: auth.username, password: auth.password, cnonce: randomToken(8) });
    if (value instanceof SipError) return undefined;
    return { name: proxy ? 'Proxy-Authorization' : 'Authorization', value };
  }

  async function invite(o: OutgoingInviteOptions): Promise<OutgoingInviteResult> {
    if (closing) return { ok: false, status: 503, reason: 'SIP stack closed' };
    if (o.signal?.aborted) return { ok: false, status: 487, reason: 'canceled before sending' };
    const callId = `${randomToken(12)}@${core.publicHost}`;
    const fromTag = randomToken();
    const localUri = asNameAddr(o.from);
    const toAddress = asNameAddr(o.to);
    const fromUser = /sips?:([^@;>]+)@/.exec(o.from)?.[1];
    const contact = `<sip:${fromUser ? `${fromUser}@` : ''}${hostPort(core.publicHost, core.publicPort)}>`;
    let cancelStatus: number | undefined;
    let current: InviteAttempt | undefined;
    const requestCancel = (status: number) => {
      if (cancelStatus !== undefined) return;
      cancelStatus = status;
      current?.cancel();
    };
    const onAbort = () => requestCancel(487);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const answerTimer = clock.setTimeout(() => requestCancel(408), o.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS);
    let closeStack = () => undefined as void;
    const closedResult = new Promise<OutgoingInviteResult>((resolve) => {
      closeStack = () => {
        current?.cancel();
        resolve({ ok: false, status: 503, reason: 'SIP stack closed' });
      };
    });
    pendingOutgoing.add(closeStack);
    try {
      return await Promise.race([closedResult, runAttempts()]);
    } finally {
      pendingOutgoing.delete(closeStack);
      clock.clearTimeout(answerTimer);
      o.signal?.removeEventListener('abort', onAbort);
    }

    async function runAttempts(): Promise<OutgoingInviteResult> {
      let seq = 1;
      let authorization: SipHeader | undefined;
      let challenged = false;
      while (true) {
        const branch = newBranch();
        const headers: SipHeader[] = [
          { name: 'Via', value: viaValue(core, branch) },
          { name: 'Max-Forwards', value: '70' },
          { name: 'From', value: `${localUri};tag=${fromTag}` },
          { name: 'To', value: toAddress },
          { name: 'Call-ID', value: callId },
          { name: 'CSeq', value: `${seq} INVITE` },
          { name: 'Contact', value: contact },
          { name: 'Allow', value: SIP_ALLOW },
          { name: 'User-Agent', value: core.userAgent },
          ...(authorization ? [authorization] : []),
          ...toHeaders(o.headers),
          { name: 'Content-Type', value: 'application/sdp' },
        ];
        const message = { kind: 'request' as const, method: 'INVITE', requestUri: o.requestUri, headers, body: o.sdp };
        const attempt = startInviteTransaction(message, branch, seq, o.destination, (response) => {
          if (response.status === 100 || !o.onProgress) return;
          const type = (getHeader(response, 'content-type') ?? '').toLowerCase();
          try {
            o.onProgress(response.status, response.body.length > 0 && type.startsWith('application/sdp') ? bodyText(response) : undefined);
          } catch (error) {
            log('error', 'SIP onProgress threw', { callId, error: String(error) });
          }
        });
        current = attempt;
        if (cancelStatus !== undefined) attempt.cancel();
        const response = await attempt.done;
        if (!response) {
          return cancelStatus !== undefined
            ? { ok: false, status: cancelStatus, reason: cancelStatus === 408 ? 'no answer in time' : 'canceled' }
            : { ok: false, status: 408, reason: 'no response (Timer B)' };
        }
        if (response.status < 300) {
          const dialog = acceptAnswer(response, seq, authorization);
          if (cancelStatus !== undefined || closing) {
            // The answer crossed our CANCEL: the call is up, so it is ended with a BYE.
            void dialog.dialog.bye();
            return { ok: false, status: cancelStatus ?? 503, reason: 'canceled' };
          }
          return { ok: true, dialog: dialog.dialog, response, sdp: bodyText(response) };
        }
        if ((response.status === 401 || response.status === 407) && o.auth && !challenged && cancelStatus === undefined) {
          challenged = true;
          authorization = await challengeAnswer(response, o.auth, o.requestUri);
          if (authorization) {
            // RFC 3261 §22.2: same Call-ID and From-tag, CSeq + 1, new branch.
            seq += 1;
            continue;
          }
        }
        const status = cancelStatus !== undefined && response.status === 487 ? cancelStatus : response.status;
        return { ok: false, status, reason: response.reason };
      }
    }

    function acceptAnswer(response: SipResponse, seq: number, authorization: SipHeader | undefined): DialogHandle {
      const remoteTarget = response.contact[0]?.uri.raw ?? o.requestUri;
      const routeSet = getHeaders(response, 'record-route').reverse();
      const handle = createDialog(core, {
        role: 'uac', callId, localTag: fromTag, remoteTag: response.to.tag ?? '', localUri, remoteAddress: response.to.raw,
        remoteTarget, routeSet, localSeq: seq, peer: o.destination, contact, localSdp: o.sdp, awaitingAck: false,
        ...(o.auth ? { auth: o.auth } : {}),
      }, { onRemoved: (h) => { if (dialogs.get(h.key) === h) dialogs.delete(h.key); } });
      dialogs.set(handle.key, handle);
      // The ACK of a 2xx is its own transaction: new branch, to the remote target (RFC 3261 §13.2.2.4).
      const ack = core.send({
        kind: 'request', method: 'ACK', requestUri: remoteTarget,
        headers: [
          { name: 'Via', value: viaValue(core, newBranch()) },
          { name: 'Max-Forwards', value: '70' },
          { name: 'From', value: `${localUri};tag=${fromTag}` },
          { name: 'To', value: response.to.raw },
          { name: 'Call-ID', value: callId },
          { name: 'CSeq', value: `${seq} ACK` },
          ...routeSet.map((value) => ({ name: 'Route', value })),
          { name: 'Contact', value: contact },
          { name: 'User-Agent', value: core.userAgent },
          ...(authorization ? [authorization] : []),
        ],
      }, o.destination);
      handle.setAck(ack, o.destination);
      return handle;
    }
  }

  return {
    invite,
    get dialogCount() { return dialogs.size; },
    get transactionCount() { return transactions.size + core.clientTransactions.size; },
    stats,
    async close() {
      if (closing) return;
      closing = true;
      for (const settle of [...pendingOutgoing]) settle();
      for (const tx of [...transactions.values()]) tx.refuse?.();
      const byes = [...dialogs.values()].map((dialog) => dialog.close());
      let capTimer: TimerHandle | undefined;
      await Promise.race([
        Promise.all(byes),
        new Promise<void>((resolve) => { capTimer = clock.setTimeout(resolve, Math.min(CLOSE_WAIT_CAP_MS, transactionTimeoutMs(core))); }),
      ]);
      if (capTimer !== undefined) clock.clearTimeout(capTimer);
      for (const tx of [...transactions.values()]) removeTransaction(tx);
      for (const client of [...core.clientTransactions.values()]) client.abort();
      for (const dialog of [...dialogs.values()]) dialog.terminate('stack-closed');
      closed = true;
    },
  };
}
