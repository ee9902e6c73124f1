import { lookup } from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';
import { ALAW_8K, MULAW_8K } from '../../shared/audio/format';
import type { CallStatus } from '../../shared/contracts/call-status';
import type { Clock } from '../../shared/contracts/clock';
import type { CallContext } from '../../shared/store/call-contexts';
import type { Conversation } from '../../shared/store/conversations';
import { candidatesForUser, parseSipDigestSecret, type SipRoutingStore, type SipTrunk } from '../../shared/store/sip-routing';
import { authorizeInbound, createNonceIssuer, type InboundTrunk } from '../../shared/telephony/sip/inbound-auth';
import { parseSipUri, type SipRequest } from '../../shared/telephony/sip/message';
import { createRtpCarrierCodec } from '../../shared/telephony/sip/rtp-carrier-codec';
import { answerSdp, offerSdp, parseSdp, type SdpAnswer } from '../../shared/telephony/sip/sdp';
import { isSipError } from '../../shared/telephony/sip/sip-error';
import type { AppStores } from '../../edge/app';
import { ApiError } from '../../edge/errors';
import { createCallRecords } from '../../edge/routes/call-records';
import type { PinnedAssistant } from '../../edge/routes/twilio';
import type { CarrierMedia } from '../channels/carriers';
import type { CarrierLink } from '../../shared/telephony/carrier';
import { createRtpLink } from './rtp-link';
import { createRtpPortPool, type RtpPort } from './rtp-ports';
import { createSipStack, type IncomingInvite, type SipDialog, type SipTimers } from './sip-stack';
import { bindUdpTransport } from './udp-transport';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface SipServerOptions {
  readonly host: string;
  /** 0 = random (tests). */
  readonly port: number;
  /** SIP_PUBLIC_IP: our address in SDP, Via and Contact. */
  readonly publicIp: string;
  readonly rtpPorts: { readonly min: number; readonly max: number };
  /** No RTP from the caller this long ends the call. */
  readonly rtpTimeoutMs: number;
  readonly stores: Pick<AppStores, 'assistants' | 'callContexts' | 'conversations' | 'credentials'> & { readonly sip: SipRoutingStore };
  /** Signs our digest nonces (any node can check its own; 32+ bytes). */
  readonly nonceSecret: Uint8Array;
  /** The node's admission (capacity, draining, per-project limit); `ringing`: SIP calls admitted but not yet running. */
  admitCall(projectId: string, ringing: number): Promise<boolean>;
  /** Why the assistant cannot take a call now (providers, credentials), or undefined. */
  checkCallable(call: PinnedAssistant): Promise<string | undefined>;
  /** Warm the greeting and STT while the call is set up. */
  prewarm?(contextId: string): void;
  /** The node's carrier call loop (claim once, start, bookkeeping): media-node/server.ts `runCarrierMedia`. */
  run(media: CarrierMedia, contextId: string, link: CarrierLink): Promise<void>;
  readonly log?: Log;
  /** A datagram or packet that broke the protocol (counted as a malformed frame). */
  onProtocolError?(code: string, message: string): void;
  readonly timers?: Partial<SipTimers>;
  readonly clock?: Clock;
  /**
   * How long an inbound call rings (180) before we answer, while the greeting is pre-synthesised; default 0
   * (answer at once: the call loop still waits briefly for a greeting being made). Tests use it to CANCEL.
   */
  readonly answerDelayMs?: number;
  /** Where outbound INVITEs may go when a trunk names a host (default: DNS; tests pin 127.0.0.1). */
  resolveHost?(host: string): Promise<string>;
}

export interface OutboundSipCall extends PinnedAssistant {
  readonly to: string;
  readonly from?: string;
  /** The trunk's name; default the project's only trunk with an outbound target. */
  readonly trunk?: string;
  readonly variables?: Readonly<Record<string, string>>;
}

const PROVIDER = 'sip';

/** What an inbound INVITE holds while it is set up, for the clean-up when it fails. */
interface InviteState {
  rtp?: RtpPort;
  contextId?: string;
  mediaStarted: boolean;
  ringing: boolean;
}

/**
 * Direct SIP calls (issue 10): the SIP stack on UDP, routing by number to an assistant, trunk admission (IP
 * allow-list and/or digest), SDP offer/answer (G.711 + telephone-event), one RTP port per call, and the same
 * carrier call loop as every other channel. Outbound calls go to a trunk; transfer is a REFER.
 */
export async function startSipServer(options: SipServerOptions) {
  const log: Log = options.log ?? (() => undefined);
  const { stores } = options;
  const clock = options.clock;
  const now = () => Date.now();
  const nonces = await createNonceIssuer(options.nonceSecret);
  const pool = createRtpPortPool({ host: options.host, min: options.rtpPorts.min, max: options.rtpPorts.max });
  const transport = await bindUdpTransport({ host: options.host, port: options.port, log });
  const publicPort = transport.localPort;
  const calls = new Set<Promise<void>>();
  /** Inbound calls admitted and not yet handed to the call loop (they hold no slot there yet). */
  let ringing = 0;
  const stack = createSipStack({
    transport,
    publicHost: options.publicIp,
    publicPort,
    ...(clock ? { clock } : {}),
    ...(options.timers ? { timers: options.timers } : {}),
    log,
    onProtocolError: (code, message, from) => {
      options.onProtocolError?.(code, message);
      log('debug', 'malformed SIP datagram', { code, message, from: `${from.address}:${from.port}` });
    },
    onInvite: (invite) => track(handleInvite(invite)),
  });

  function track(call: Promise<void>): void {
    const running = call
      .catch((error: unknown) => log('error', 'SIP call failed', { error: String(error) }))
      .finally(() => calls.delete(running));
    calls.add(running);
  }

  /** A trunk as the admission check needs it: its digest password from the credential store. */
  async function inboundTrunk(projectId: string, trunk: SipTrunk): Promise<InboundTrunk> {
    const { digestCredential, challenge, realm, cidrs } = trunk.inbound;
    if (!digestCredential) return { name: trunk.name, cidrs };
    const secret = await readSipSecret(projectId, digestCredential);
    // A credential deleted after the trunk named it: that trunk admits nobody (closed, logged).
    if (!secret) {
      log('warn', 'SIP trunk names a missing or unreadable credential: it admits no calls', { trunk: trunk.name, credential: digestCredential });
      return { name: trunk.name, cidrs: [] };
    }
    return { name: trunk.name, cidrs, digest: { ...secret, realm: realm ?? 'voice', challenge } };
  }

  async function readSipSecret(projectId: string, name: string): Promise<{ username: string; password: string } | undefined> {
    const secret = await stores.credentials.resolveForProvider(projectId, PROVIDER, name);
    return secret === undefined ? undefined : parseSipDigestSecret(secret);
  }

  /**
   * One inbound INVITE. Whatever fails on the way (a store, the cache, a port), the caller gets a final
   * answer, the RTP port goes back and a created context is marked failed: nothing waits forever.
   */
  async function handleInvite(invite: IncomingInvite): Promise<void> {
    const held: InviteState = { mediaStarted: false, ringing: false };
    try {
      await admitInvite(invite, held);
    } catch (error) {
      log('error', 'SIP INVITE failed', { callId: invite.request.callId, error: String(error) });
      if (!invite.answered) invite.reject(500, 'Server Internal Error');
      if (!held.mediaStarted) held.rtp?.release();
      if (held.contextId) await endWithStatus(held.contextId, 'failed', `SIP call set-up failed: ${(error as Error).message}`, ['pending', 'claimed']);
    } finally {
      stopRinging(held);
    }
  }

  function stopRinging(held: InviteState): void {
    if (!held.ringing) return;
    held.ringing = false;
    ringing--;
  }

  async function admitInvite(invite: IncomingInvite, held: InviteState): Promise<void> {
    const { request, source } = invite;
    let canceled = false;
    let onCanceled: (() => void) | undefined;
    invite.onCancel(() => {
      canceled = true;
      onCanceled?.();
    });
    const user = request.requestUri.user;
    // candidatesForUser decodes the %-escapes itself (decoding here too would decode twice).
    const candidates = user ? candidatesForUser(user) : [];
    const route = candidates.length > 0 ? await stores.sip.resolveInbound(candidates) : undefined;
    if (!route) {
      log('info', 'SIP INVITE for an unknown number', { user, from: source.address });
      return invite.reject(404, 'Not Found');
    }
    const projectId = route.number.projectId;
    // The store applied the trunk rule: the number's own trunk, else every trunk of its project.
    const verdict = await authorizeInbound(request, source.address, await Promise.all(route.trunks.map((t) => inboundTrunk(projectId, t))), nonces, now());
    if (!verdict.ok) {
      log(verdict.status === 403 ? 'warn' : 'debug', 'SIP INVITE not admitted', { number: route.number.number, from: source.address, status: verdict.status, reason: verdict.reason });
      if (verdict.status === 403) return invite.reject(403, 'Forbidden', [['Warning', warning(verdict.reason)]]);
      return invite.reject(verdict.status, verdict.status === 401 ? 'Unauthorized' : 'Proxy Authentication Required', [verdict.header]);
    }
    if (request.body.length === 0) {
      return invite.reject(488, 'Not Acceptable Here', [['Warning', warning('an SDP offer is required in the INVITE (late offer is not supported)')]]);
    }
    const offer = parseSdp(request.body);
    if (isSipError(offer)) {
      options.onProtocolError?.('invalid-sdp', offer.message);
      return invite.reject(488, 'Not Acceptable Here', [['Warning', warning(`the SDP offer is invalid: ${offer.message}`)]]);
    }
    const assistant = await stores.assistants.get(route.number.assistantId);
    if (!assistant) return invite.reject(404, 'Not Found');
    const pinned = { projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    if (!(await options.admitCall(projectId, ringing))) return invite.reject(503, 'Service Unavailable', [['Retry-After', '5']]);
    ringing++;
    held.ringing = true;
    const unusable = await options.checkCallable(pinned);
    if (unusable) return invite.reject(480, 'Temporarily Unavailable', [['Warning', warning(unusable)]]);
    if (canceled) return;

    const rtp = await pool.allocate();
    if (!rtp) {
      log('warn', 'SIP call refused: no free RTP port', { range: options.rtpPorts });
      return invite.reject(503, 'Service Unavailable', [['Retry-After', '5'], ['Warning', warning('no free RTP port on this node')]]);
    }
    held.rtp = rtp;
    const session = { id: String(Math.floor(Math.random() * 1e9)), version: 1 };
    const answer = answerSdp(offer, { address: options.publicIp, rtpPort: rtp.port, sessionId: session.id, sessionVersion: session.version });
    if (isSipError(answer) || answer.type === 'noCommonCodec') {
      rtp.release();
      const reason = isSipError(answer) ? answer.message : answer.reason;
      return invite.reject(488, 'Not Acceptable Here', [['Warning', warning(reason)]]);
    }
    if (canceled) return rtp.release();

    const { context } = await createCallRecords(stores, {
      ...pinned,
      channel: PROVIDER,
      direction: 'inbound',
      callStatus: 'ringing',
      ...(request.from.uri.user ? { caller: decodeUser(request.from.uri.user) } : {}),
      callee: route.number.number,
      channelId: request.callId,
      metadata: { trunk: verdict.trunk, source: `${source.address}:${source.port}` },
    });
    held.contextId = context.id;
    if (canceled) {
      rtp.release();
      await endWithStatus(context.id, 'canceled');
      return;
    }
    onCanceled = () => void endWithStatus(context.id, 'canceled');
    invite.progress(180);
    options.prewarm?.(context.id);
    if (options.answerDelayMs) await new Promise((r) => setTimeout(r, options.answerDelayMs));
    if (canceled) {
      rtp.release();
      return;
    }
    const dialog = invite.accept(answer.sdp);
    onCanceled = undefined;
    // Media starts once our 200 is acknowledged: a spoofed INVITE (an allow-listed source address forged over
    // UDP) never gets an ACK to us, so it never starts a call, streams RTP or runs the models.
    if (!(await dialog.confirmed)) {
      rtp.release();
      log('warn', 'SIP call dropped: no ACK for our 200', { contextId: context.id, from: source.address });
      await endWithStatus(context.id, 'failed', 'no ACK for our 200 OK');
      return;
    }
    held.mediaStarted = true;
    // From here the call loop counts the call.
    stopRinging(held);
    await runMedia(context, dialog, rtp, answer, session, [answer.remote.address, source.address]);
  }

  /**
   * The call's media and signalling tied together: RTP link ↔ dialog (BYE either way, re-INVITE, transfer),
   * then the carrier call loop. `latchFrom`: the addresses RTP may come from (the SDP's and the signalling
   * peer's; only the port may differ behind NAT), so a stranger spraying RTP at our ports cannot take a call.
   */
  async function runMedia(context: CallContext, dialog: SipDialog, rtp: RtpPort, answer: SdpAnswer, session: { id: string; version: number }, latchFrom: readonly string[]): Promise<void> {
    let ended = false;
    let transferring = false;
    const rtpLink = createRtpLink({
      socket: rtp.socket,
      remote: answer.remote,
      codec: answer.codec,
      payloadType: answer.payloadType,
      ...(answer.telephoneEventPayloadType !== undefined ? { dtmfPayloadType: answer.telephoneEventPayloadType } : {}),
      ...(clock ? { clock } : {}),
      inactivityMs: options.rtpTimeoutMs,
      latchAddresses: latchFrom,
      onHangup: (reason) => {
        ended = true;
        log('info', 'SIP call ended by us', { contextId: context.id, reason });
        void dialog.bye();
      },
      onProtocolError: (code, message) => options.onProtocolError?.(code, message),
    });
    rtpLink.link.onClose(() => rtp.release());
    if (answer.onHold) rtpLink.setHold(true);
    const farEndGone = (why: string) => {
      if (ended) return;
      ended = true;
      // During a REFER the far end may hang up before its final NOTIFY: the transfer settles the call.
      if (transferring) return;
      log('info', 'SIP call ended by the far end', { contextId: context.id, why });
      rtpLink.remoteHangup();
    };
    dialog.onBye(() => farEndGone('BYE'));
    dialog.onTerminated((reason) => farEndGone(reason));
    // The dialog may have ended while the call was being set up (its events are not coming again).
    if (dialog.state === 'terminated') farEndGone('ended-before-media');
    const current = { answer };
    dialog.onReInvite((request) => reInvite(request, rtpLink, rtp.port, session, current));
    // Legacy trunks send keys as SIP INFO (application/dtmf-relay) instead of RFC 4733 events.
    dialog.onInfoDtmf((digit) => rtpLink.signalledDtmf(digit));
    const codec = createRtpCarrierCodec({ codec: answer.codec, streamId: dialog.callId, callId: dialog.callId });
    const media: CarrierMedia = {
      provider: PROVIDER,
      outputFormat: answer.codec === 'PCMA' ? ALAW_8K : MULAW_8K,
      // RTP has no clear: a barge-in drops what the link still holds for pacing (at most one frame is on the wire).
      codec: () => ({
        ...codec,
        encodeClear: () => {
          rtpLink.dropHeld();
          return undefined;
        },
      }),
      endsWithMedia: true,
      transfer: async (to) => {
        const target = referTarget(to, dialog.remoteTarget);
        log('info', 'SIP transfer: REFER', { contextId: context.id, target });
        transferring = true;
        try {
          const outcome = await dialog.refer(target, { referredBy: `<sip:assistant@${options.publicIp}:${publicPort}>` });
          if (!outcome.accepted) throw new Error(`the far end refused the transfer (REFER answered ${outcome.status})`);
          if (outcome.status >= 300) throw new Error(`the transfer did not connect (the far end reported ${outcome.status})`);
        } catch (error) {
          transferring = false;
          // The far end left during a failed transfer: nothing to fall back to.
          if (ended) rtpLink.remoteHangup();
          throw error;
        }
        // The far end has the caller now: our leg ends.
        ended = true;
        await dialog.bye();
        rtpLink.remoteHangup();
      },
    };
    try {
      await options.run(media, context.id, rtpLink.link);
    } catch (error) {
      // The call loop could not even claim the context: hang up (BYE, port freed) and record it.
      rtpLink.link.close(1011, 'call could not start');
      await endWithStatus(context.id, 'failed', `the call could not start: ${(error as Error).message}`, ['pending', 'claimed']);
      throw error;
    }
  }

  /** A re-INVITE (hold, resume, session refresh, new address): answered with the same port and a new o= version. */
  function reInvite(request: SipRequest, rtpLink: ReturnType<typeof createRtpLink>, port: number, session: { id: string; version: number }, current: { answer: SdpAnswer }) {
    // A session refresh without an offer: our current description, unchanged, is the offer (the answer comes in the ACK).
    if (request.body.length === 0) return { sdp: current.answer.sdp };
    const offer = parseSdp(request.body);
    if (isSipError(offer)) return { status: 488, reason: 'Not Acceptable Here' };
    session.version++;
    // The codec and payload types stay what the call started with (the RTP link is built for them).
    const answer = answerSdp(offer, { address: options.publicIp, rtpPort: port, sessionId: session.id, sessionVersion: session.version, codecs: [current.answer.codec] });
    if (isSipError(answer) || answer.type === 'noCommonCodec' || answer.payloadType !== current.answer.payloadType || answer.telephoneEventPayloadType !== current.answer.telephoneEventPayloadType) {
      session.version--;
      return { status: 488, reason: 'Not Acceptable Here' };
    }
    rtpLink.setHold(answer.onHold);
    if (!answer.onHold) rtpLink.setRemote(answer.remote);
    current.answer = answer;
    return { sdp: answer.sdp };
  }

  async function endWithStatus(contextId: string, callStatus: CallStatus, failureReason?: string, from: CallContext['status'] | CallContext['status'][] = 'pending'): Promise<void> {
    const status = callStatus === 'canceled' ? 'canceled' : 'failed';
    const context = await stores.callContexts
      .updateStatus(contextId, { status, callStatus, ...(failureReason ? { failureReason } : {}) }, { status: from })
      .catch((error: unknown) => {
        log('warn', 'SIP call status not recorded', { contextId, error: String(error) });
        return undefined;
      });
    if (context?.outcome === 'updated') {
      await stores.conversations.end(context.context.conversationId, { status: callStatus, disconnectReason: failureReason ?? callStatus }).catch(() => undefined);
    }
  }

  /**
   * `POST /v1/calls` with provider `sip`: records first (the API answers `queued` at once, like the carriers'
   * REST APIs), then the INVITE to the trunk in the background; its outcome moves the call status.
   */
  async function placeCall(call: OutboundSipCall): Promise<{ context: CallContext; conversation: Conversation }> {
    const trunks = await stores.sip.listTrunks(call.projectId);
    const trunk = call.trunk ? trunks.find((t) => t.name === call.trunk) : onlyOutbound(trunks);
    if (!trunk) {
      throw new ApiError(400, 'SIP_TRUNK_NOT_FOUND', call.trunk ? `the project has no SIP trunk "${call.trunk}"` : 'name the SIP trunk to call through ("trunk"): the project has none or several with an outbound target');
    }
    const outbound = trunk.outbound;
    if (!outbound) throw new ApiError(400, 'SIP_TRUNK_NOT_OUTBOUND', `SIP trunk "${trunk.name}" has no outbound target (PUT /v1/sip/trunks/${trunk.name} with "outbound")`);
    const auth = outbound.credential ? await readSipSecret(call.projectId, outbound.credential) : undefined;
    if (outbound.credential && !auth) {
      throw new ApiError(400, 'SIP_CREDENTIAL_UNREADABLE', `the sip credential "${outbound.credential}" of trunk "${trunk.name}" is missing or is not {username, password}`);
    }
    const address = await (options.resolveHost ?? ((host: string) => resolveHost(host, isIPv6(options.host) ? 6 : 4)))(outbound.host).catch((error: unknown) => {
      throw new ApiError(400, 'SIP_TRUNK_UNRESOLVABLE', `cannot resolve the trunk host ${outbound.host}: ${(error as Error).message}`);
    });
    const fromUser = call.from ?? outbound.fromUser ?? 'assistant';
    const rtp = await pool.allocate();
    if (!rtp) throw new ApiError(503, 'NO_RTP_PORT', 'no free RTP port on this node; retry shortly', {}, { 'Retry-After': '5' });
    let records: { context: CallContext; conversation: Conversation };
    try {
      records = await createCallRecords(stores, {
        projectId: call.projectId,
        assistantId: call.assistantId,
        assistantVersion: call.assistantVersion,
        channel: PROVIDER,
        direction: 'outbound',
        callStatus: 'queued',
        caller: fromUser,
        callee: call.to,
        metadata: { trunk: trunk.name },
        ...(call.variables ? { variables: call.variables } : {}),
      });
    } catch (error) {
      rtp.release();
      throw error;
    }
    const { context } = records;
    const hostPort = outbound.port === 5060 ? outbound.host : `${outbound.host}:${outbound.port}`;
    const session = { id: String(Math.floor(Math.random() * 1e9)), version: 1 };
    let mediaStarted = false;
    track(
      (async () => {
        let status: CallStatus = 'queued';
        const result = await stack.invite({
          requestUri: `sip:${call.to}@${hostPort}`,
          destination: { address, port: outbound.port },
          from: `<sip:${fromUser}@${outbound.fromHost ?? options.publicIp}>`,
          to: `<sip:${call.to}@${hostPort}>`,
          sdp: offerSdp({ address: options.publicIp, rtpPort: rtp.port, sessionId: session.id, sessionVersion: session.version }),
          ...(auth ? { auth } : {}),
          onProgress: (code) => {
            if (status !== 'queued' || code < 180) return;
            status = 'ringing';
            void stores.callContexts.updateStatus(context.id, { callStatus: 'ringing' }, { status: 'pending', callStatus: 'queued' }).catch(() => undefined);
          },
        });
        if (!result.ok) {
          rtp.release();
          const callStatus = failureStatus(result.status);
          log('info', 'outbound SIP call not answered', { contextId: context.id, status: result.status, reason: result.reason, callStatus });
          await endWithStatus(context.id, callStatus, `SIP ${result.status} ${result.reason}`);
          return;
        }
        const description = parseSdp(result.sdp);
        const answer = isSipError(description) ? description : answerSdp(description, { address: options.publicIp, rtpPort: rtp.port, sessionId: session.id, sessionVersion: session.version });
        if (isSipError(answer) || answer.type === 'noCommonCodec') {
          rtp.release();
          log('warn', 'outbound SIP call answered without usable SDP: hanging up', { contextId: context.id });
          await result.dialog.bye();
          await endWithStatus(context.id, 'failed', 'the answer SDP has no usable audio stream');
          return;
        }
        await stores.callContexts.updateStatus(context.id, { channelId: result.dialog.callId }, {}).catch(() => undefined);
        options.prewarm?.(context.id);
        mediaStarted = true;
        await runMedia(context, result.dialog, rtp, answer, session, [answer.remote.address, address]);
      })().catch(async (error: unknown) => {
        // A store or socket failure on the way: the port goes back and the call is not left queued.
        if (!mediaStarted) rtp.release();
        await endWithStatus(context.id, 'failed', `the outbound SIP call failed: ${(error as Error).message}`, ['pending', 'claimed']);
        throw error;
      }),
    );
    return records;
  }

  log('info', 'SIP listening', { port: publicPort, host: options.host, publicIp: options.publicIp, rtp: options.rtpPorts });

  return {
    port: publicPort,
    placeCall,
    get dialogCount() {
      return stack.dialogCount;
    },
    get transactionCount() {
      return stack.transactionCount;
    },
    get rtpPortsInUse() {
      return pool.inUse;
    },
    stats: stack.stats,
    /** BYE every call, stop listening. */
    async close(): Promise<void> {
      await stack.close();
      await Promise.race([Promise.allSettled([...calls]), new Promise((r) => setTimeout(r, 2000).unref())]);
      await transport.close();
    },
  };
}

export type SipServer = Awaited<ReturnType<typeof startSipServer>>;

/** A final SIP failure as a call status (the vocabulary every carrier maps to). */
export function failureStatus(code: number): CallStatus {
  if (code === 486 || code === 600 || code === 603) return 'busy';
  if (code === 408 || code === 480 || code === 487) return 'no-answer';
  return 'failed';
}

/** `transfer_call`'s target as a REFER target: a SIP URI as it is, a number (E.164, checked by the config) at the far end's host. */
export function referTarget(to: string, remoteTarget: string): string {
  if (/^sips?:/i.test(to)) return to;
  const uri = parseSipUri(remoteTarget.replace(/^<|>$/g, ''));
  if (isSipError(uri)) throw new Error(`cannot address the transfer: the far end's contact ${remoteTarget} is not a SIP URI (${uri.message})`);
  return `sip:${to}@${uri.port ? `${uri.host}:${uri.port}` : uri.host}`;
}

function onlyOutbound(trunks: readonly SipTrunk[]): SipTrunk | undefined {
  const outbound = trunks.filter((t) => t.outbound);
  return outbound.length === 1 ? outbound[0] : undefined;
}

/** The trunk host's IPv4 address (the SIP socket is IPv4 unless HOST is IPv6). */
async function resolveHost(host: string, family: 4 | 6): Promise<string> {
  if (isIP(host)) return host;
  return (await lookup(host, { family })).address;
}

function decodeUser(user: string): string {
  try {
    return decodeURIComponent(user);
  } catch {
    return user;
  }
}

/** A Warning header value (RFC 3261 §20.43: code, agent, quoted text). */
function warning(text: string): string {
  return `399 voice-runtime "${text.replace(/["\\\r\n]/g, ' ').slice(0, 200)}"`;
}


