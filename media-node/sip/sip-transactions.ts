import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../shared/contracts/clock';
import { serializeSipMessage, type OutgoingSipMessage, type SipResponse } from '../../shared/telephony/sip/message';
import type { SipEndpoint } from './udp-transport';

/**
 * What the SIP stack's transactions and dialogs share (RFC 3261 §17): timers, identity, the send path, the
 * client-transaction table, and the retransmission schedule. No parsing and no dispatch here.
 */

export interface SipTimers {
  readonly t1Ms: number;
  readonly t2Ms: number;
  readonly t4Ms: number;
}

export const DEFAULT_SIP_TIMERS: SipTimers = { t1Ms: 500, t2Ms: 4000, t4Ms: 5000 };

/** Methods we answer; also the Allow header of OPTIONS, 405 and our 200s. */
export const SIP_ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE';

export type SipLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface SipStats {
  received: number;
  malformed: number;
  retransmissionsAbsorbed: number;
  sent: number;
  /** New requests refused with 503 because `maxTransactions` was reached. */
  overloaded: number;
}

/** A transaction we started: the stack hands it the responses whose top-Via branch is ours. */
export interface ClientTransaction {
  onResponse(response: SipResponse, from: SipEndpoint): void;
  /** The stack is closing: stop timers and settle as a timeout. */
  abort(): void;
}

/** Client transactions are keyed by branch and method: a CANCEL reuses its INVITE's branch. */
export function clientKey(branch: string, method: string): string {
  return `${branch} ${method}`;
}

export interface SipCore {
  readonly clock: Clock;
  readonly timers: SipTimers;
  readonly log: SipLog;
  readonly stats: SipStats;
  readonly publicHost: string;
  readonly publicPort: number;
  readonly userAgent: string;
  /** By `clientKey(branch of our top Via, method)`. */
  readonly clientTransactions: Map<string, ClientTransaction>;
  /** Serializes (when needed) and sends; returns the bytes so callers can retransmit them. */
  send(message: OutgoingSipMessage | Uint8Array, to: SipEndpoint): Uint8Array;
  isClosed(): boolean;
}

/** Random hex of `bytes` bytes (tags ≥ 32 bits of randomness, RFC 3261 §19.3). */
export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/** A branch with the RFC 3261 magic cookie. */
export function newBranch(): string {
  return `z9hG4bK${randomToken(10)}`;
}

/** `host:port` with IPv6 literals bracketed. */
export function hostPort(host: string, port: number): string {
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${bracketed}:${port}`;
}

export function viaValue(core: SipCore, branch: string): string {
  return `SIP/2.0/UDP ${hostPort(core.publicHost, core.publicPort)};branch=${branch};rport`;
}

/** `sip:x` → `<sip:x>`; a name-addr already in angle brackets is kept. */
export function asNameAddr(uriOrNameAddr: string): string {
  return uriOrNameAddr.includes('<') ? uriOrNameAddr.trim() : `<${uriOrNameAddr.trim()}>`;
}

export function serialize(message: OutgoingSipMessage | Uint8Array): Uint8Array {
  return message instanceof Uint8Array ? message : serializeSipMessage(message);
}

/**
 * Calls `resend` at T1, 2·T1, 4·T1 … capped at `capMs` (T2 for 2xx, Timer G and Timer E; none for Timer A).
 * `slow()` switches to the cap at once (Timer E after a provisional response).
 */
export function scheduleRetransmit(core: SipCore, resend: () => void, capMs: number | undefined): { stop(): void; slow(): void } {
  let interval = core.timers.t1Ms;
  let handle: TimerHandle | undefined;
  let stopped = false;
  const arm = () => {
    handle = core.clock.setTimeout(() => {
      if (stopped) return;
      resend();
      interval = capMs === undefined ? interval * 2 : Math.min(interval * 2, capMs);
      arm();
    }, interval);
  };
  arm();
  return {
    stop() {
      stopped = true;
      if (handle !== undefined) core.clock.clearTimeout(handle);
    },
    slow() {
      if (capMs === undefined || stopped) return;
      interval = capMs;
    },
  };
}

/** 64·T1: Timers B, F, H, J, L and the wait for a 2xx's ACK. */
export function transactionTimeoutMs(core: SipCore): number {
  return 64 * core.timers.t1Ms;
}

/**
 * A non-INVITE client transaction over UDP (RFC 3261 §17.1.2): send, retransmit on Timer E, and resolve with
 * the first final response, or `undefined` after Timer F (64·T1). Provisional responses only slow retransmission.
 */
export function sendNonInviteRequest(core: SipCore, message: OutgoingSipMessage, branch: string, to: SipEndpoint): Promise<SipResponse | undefined> {
  const key = clientKey(branch, message.kind === 'request' ? message.method : '');
  return new Promise((resolve) => {
    const bytes = core.send(message, to);
    const retransmit = scheduleRetransmit(core, () => core.send(bytes, to), core.timers.t2Ms);
    const finish = (response: SipResponse | undefined) => {
      retransmit.stop();
      core.clock.clearTimeout(timerF);
      core.clientTransactions.delete(key);
      resolve(response);
    };
    const timerF = core.clock.setTimeout(() => finish(undefined), transactionTimeoutMs(core));
    core.clientTransactions.set(key, {
      onResponse(response) {
        if (response.status < 200) retransmit.slow();
        else finish(response);
      },
      abort: () => finish(undefined),
    });
  });
}
