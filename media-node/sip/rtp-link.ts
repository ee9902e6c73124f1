import { randomInt } from 'node:crypto';
import type { RemoteInfo, Socket } from 'node:dgram';
import { ALAW_SILENCE, MULAW_SILENCE } from '../../shared/audio/g711';
import { systemClock, type Clock, type TimerHandle } from '../../shared/contracts/clock';
import type { CarrierLink } from '../../shared/telephony/carrier';
import { createDtmfDeduplicator, decodeTelephoneEvent, encodeTelephoneEvent, eventForDigit } from '../../shared/telephony/sip/dtmf-event';
import { createJitterBuffer, type JitterBufferOptions } from '../../shared/telephony/sip/jitter-buffer';
import { decodeRtp, encodeRtpHeader, RTP_HEADER_BYTES } from '../../shared/telephony/sip/rtp';
import { SipError } from '../../shared/telephony/sip/sip-error';

export interface RtpLinkOptions {
  /** From the port pool; the link owns it until close, then closes it (which frees the pool's port). */
  readonly socket: Socket;
  /** From the SDP offer's c=/m=; replaced by the latched source (symmetric RTP). */
  readonly remote: { readonly address: string; readonly port: number };
  readonly codec: 'PCMU' | 'PCMA';
  /** 0 or 8. */
  readonly payloadType: number;
  /** The negotiated telephone-event payload type (e.g. 101); undefined: none. */
  readonly dtmfPayloadType?: number;
  readonly clock?: Clock;
  /** No inbound RTP for this long ends the call ('stop', then close). */
  readonly inactivityMs?: number;
  /** On hold the far end may send nothing; still, a held call whose peer vanished ends after this long (default 10 min). */
  readonly holdTimeoutMs?: number;
  /**
   * The addresses RTP may come from (the SDP's and the signalling peer's): only these can latch the stream,
   * so a stranger spraying packets at the RTP ports cannot take a call (RTP bleed). Absent: any address.
   */
  readonly latchAddresses?: readonly string[];
  /** Outbound audio held for pacing at most; beyond it new audio is dropped and counted. */
  readonly maxHeldMs?: number;
  readonly jitter?: JitterBufferOptions;
  /** Ticks run at once after an event-loop stall; the rest of the stall is skipped, never sent as a burst. */
  readonly maxCatchUpFrames?: number;
  /** The call ended from our side (link.close) or by inactivity: the SIP layer sends BYE. */
  onHangup?(reason: string): void;
  onProtocolError?(code: string, message: string): void;
  /** The link is over and its socket closed. */
  onClosed?(): void;
}

const FRAME_MS = 20;
const FRAME_BYTES = 160;
/** RTP timestamp units per frame at 8 kHz. */
const FRAME_UNITS = 160;
/** Caller audio waiting while the link is paused or unheard: 2 s, then the oldest goes. */
const MAX_PENDING_AUDIO = 100;
const MAX_PENDING_DTMF = 32;
const MAX_QUEUED_DTMF_OUT = 32;
/** Outbound packets in flight: dgram reads the buffer after a DNS-lookup tick, so one buffer cannot be reused at once. */
const SEND_BUFFERS = 8;
const DTMF_VOLUME = 10;
/** Ticks of ordinary audio between two outbound digits, so the far end hears two presses. */
const DTMF_GAP_FRAMES = 2;
const NO_CSRCS: readonly number[] = Object.freeze([]);
const DTMF_MESSAGES: ReadonlyMap<string, string> = new Map([...'0123456789*#ABCD'].map((digit) => [digit, `dtmf:${digit}`]));

interface OutboundDtmf {
  readonly event: number;
  readonly durationUnits: number;
}

/**
 * One SIP call's RTP stream as a CarrierLink (the AudioSocket link's UDP sibling). Caller audio goes through a
 * jitter buffer and comes out one 20 ms G.711 frame per tick (silence, once the caller's audio has begun, for
 * ticks the buffer has nothing for); RFC 4733 digits come out at once as
 * `dtmf:<digit>`; the first message is `start` (see rtp-carrier-codec.ts). Outbound audio is held in a ring
 * and sent one frame per tick of a drift-free 20 ms clock; with nothing to say a silence frame goes instead,
 * so the stream never stops (NAT bindings, the far end's jitter buffer).
 *
 * Symmetric RTP: we send from the socket we receive on, to the SDP address until the first valid packet
 * latches its source; later packets from elsewhere are ignored.
 */
export function createRtpLink(options: RtpLinkOptions) {
  const clock = options.clock ?? systemClock;
  const { socket, payloadType } = options;
  const dtmfPayloadType = options.dtmfPayloadType;
  const inactivityMs = options.inactivityMs ?? 30_000;
  const holdTimeoutMs = options.holdTimeoutMs ?? 600_000;
  const latchAllowed = options.latchAddresses ? new Set(options.latchAddresses.map(unmapped)) : undefined;
  const maxCatchUp = Math.max(1, options.maxCatchUpFrames ?? 3);
  const jitter = createJitterBuffer({ encoding: options.codec === 'PCMA' ? 'alaw' : 'mulaw', ...options.jitter });
  const dtmfIn = createDtmfDeduplicator();
  const localPort = socket.address().port;

  const stats = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dtmfIn: 0,
    dtmfOut: 0,
    malformed: 0,
    droppedForeign: 0,
    /** Valid RTP of a payload type we do not use (comfort noise, a codec we did not answer), or empty audio. */
    ignored: 0,
    silencePackets: 0,
    /** Silence frames delivered for ticks the jitter buffer had nothing for. */
    silenceIn: 0,
    /** Outbound audio frames dropped: the hold buffer was full, a barge-in cleared it, the call was on hold. */
    droppedFull: 0,
    droppedOnClear: 0,
    droppedOnHold: 0,
    /** Caller audio dropped while nobody read it (paused beyond 2 s). */
    droppedPending: 0,
    /** Ticks skipped after an event-loop stall. */
    skippedTicks: 0,
    socketErrors: 0,
    latchedTo: undefined as string | undefined,
    jitter: jitter.stats,
  };

  // ---- inbound delivery ------------------------------------------------------------------------------------
  const messageListeners: ((message: string | Uint8Array) => void)[] = [];
  const closeListeners: ((error: boolean) => void)[] = [];
  const pending: (string | Uint8Array)[] = ['start'];
  let pendingAudio = 0;
  let pendingDtmf = 0;
  let paused = false;
  let ended = false;
  /** Set once the close listeners have heard (or will hear) the end. */
  let closedWith: boolean | undefined;
  /** The far end ended the call: close is announced once the queued messages (the 'stop') are delivered. */
  let closeAfterDrain = false;

  function deliver(message: string | Uint8Array): void {
    if (!paused && messageListeners.length > 0 && pending.length === 0) {
      for (const listener of messageListeners) listener(message);
      return;
    }
    if (typeof message === 'string') {
      if (message.startsWith('dtmf:')) {
        if (pendingDtmf >= MAX_PENDING_DTMF) return;
        pendingDtmf++;
      }
      pending.push(message);
      return;
    }
    if (pendingAudio >= MAX_PENDING_AUDIO) {
      const oldest = pending.findIndex((queued) => typeof queued !== 'string');
      pending.splice(oldest, 1);
      pendingAudio--;
      stats.droppedPending++;
    }
    // The jitter buffer reuses its frame memory: a frame that waits is copied (only while paused).
    pending.push(message.slice());
    pendingAudio++;
  }

  function flow(): void {
    while (!paused && messageListeners.length > 0 && pending.length > 0) {
      const message = pending.shift()!;
      if (typeof message !== 'string') pendingAudio--;
      else if (message.startsWith('dtmf:')) pendingDtmf--;
      for (const listener of messageListeners) listener(message);
    }
    if (closeAfterDrain && pending.length === 0) notifyClose(false);
  }

  function notifyClose(error: boolean): void {
    if (closedWith !== undefined) return;
    closedWith = error;
    closeAfterDrain = false;
    for (const listener of closeListeners) listener(error);
  }

  // ---- inbound RTP -----------------------------------------------------------------------------------------
  let sdpRemote = { address: options.remote.address, port: options.remote.port };
  let latched: { address: string; port: number } | undefined;
  let onHold = false;
  let lastInboundAt = clock.now();
  /** Caller audio has begun: from then on every tick delivers a frame (silence when the jitter buffer has none). */
  let heardAudio = false;
  const inboundSilence = new Uint8Array(FRAME_BYTES).fill(options.codec === 'PCMA' ? ALAW_SILENCE : MULAW_SILENCE);
  const inbound: { sequence: number; timestamp: number; ssrc: number; marker: boolean; payload: Uint8Array } = { sequence: 0, timestamp: 0, ssrc: 0, marker: false, payload: new Uint8Array(0) };

  socket.on('message', (datagram: Buffer, source: RemoteInfo) => {
    if (ended) return;
    try {
      receive(datagram, source);
    } catch (error) {
      // A datagram must never take the process down: whatever it broke is counted like a malformed one.
      stats.malformed++;
      options.onProtocolError?.('frame-failed', error instanceof Error ? error.message : String(error));
    }
  });
  socket.on('error', () => {
    stats.socketErrors++;
  });
  socket.on('close', () => {
    // Closed under us (the port released elsewhere): the transport is gone.
    if (ended) return;
    ended = true;
    stopTicking();
    notifyClose(false);
    options.onClosed?.();
  });

  function receive(datagram: Uint8Array, source: RemoteInfo): void {
    const packet = decodeRtp(datagram);
    if (packet instanceof SipError) {
      stats.malformed++;
      options.onProtocolError?.(packet.code, packet.message);
      return;
    }
    if (latched && (source.address !== latched.address || source.port !== latched.port)) {
      stats.droppedForeign++;
      return;
    }
    const isAudio = packet.payloadType === payloadType;
    const isDtmf = dtmfPayloadType !== undefined && packet.payloadType === dtmfPayloadType;
    if (!isAudio && !isDtmf) {
      stats.ignored++;
      // Comfort noise from the latched peer still says it is there.
      if (latched) lastInboundAt = clock.now();
      return;
    }
    if (!latched) {
      if (latchAllowed && !latchAllowed.has(unmapped(source.address))) {
        stats.droppedForeign++;
        return;
      }
      latched = { address: source.address, port: source.port };
      stats.latchedTo = source.family === 'IPv6' ? `[${source.address}]:${source.port}` : `${source.address}:${source.port}`;
    }
    const now = clock.now();
    lastInboundAt = now;
    stats.packetsIn++;
    stats.bytesIn += datagram.length;
    if (isAudio) {
      if (packet.payload.length === 0) {
        stats.ignored++;
        return;
      }
      inbound.sequence = packet.sequenceNumber;
      inbound.timestamp = packet.timestamp;
      inbound.ssrc = packet.ssrc;
      inbound.marker = packet.marker;
      inbound.payload = packet.payload;
      jitter.push(inbound, now);
      heardAudio = true;
      return;
    }
    const event = decodeTelephoneEvent(packet.payload);
    if (event instanceof SipError) {
      stats.malformed++;
      options.onProtocolError?.(event.code, event.message);
      return;
    }
    const digit = dtmfIn.accept({ ssrc: packet.ssrc, timestamp: packet.timestamp, event });
    if (digit === undefined) return;
    stats.dtmfIn++;
    deliver(DTMF_MESSAGES.get(digit) ?? `dtmf:${digit}`);
  }

  // ---- outbound --------------------------------------------------------------------------------------------
  const silenceByte = options.codec === 'PCMA' ? ALAW_SILENCE : MULAW_SILENCE;
  const ring = new Uint8Array(Math.max(1, Math.round((options.maxHeldMs ?? 2000) / FRAME_MS)) * FRAME_BYTES);
  let ringStart = 0;
  let ringLength = 0;
  const ssrc = randomInt(0, 2 ** 32);
  let sequence = randomInt(0, 2 ** 16);
  let timestamp = randomInt(0, 2 ** 32);
  /** The next audio packet starts a talkspurt (after silence packets): M bit. */
  let inSilence = true;
  /** The next packet follows a gap in time (hold, a skipped stall, a digit): M bit whatever it carries. */
  let markNext = false;
  const header = { marker: false, payloadType, sequenceNumber: 0, timestamp: 0, ssrc, csrcs: NO_CSRCS };
  const sendBuffers = Array.from({ length: SEND_BUFFERS }, () => new Uint8Array(RTP_HEADER_BYTES + FRAME_BYTES));
  const sendBusy = new Uint8Array(SEND_BUFFERS);
  const sendDone = sendBuffers.map((_, i) => () => {
    sendBusy[i] = 0;
  });
  let sendIndex = 0;
  /** The send buffer `packetBuffer` handed out last (-1: a one-off), released by its send callback. */
  let currentBuffer = -1;
  const dtmfQueue: OutboundDtmf[] = [];
  let dtmfActive: { event: number; durationUnits: number; startTimestamp: number; elapsedUnits: number; endsSent: number } | undefined;
  let dtmfGap = 0;

  /** Header into a free send buffer; the caller writes the payload after it and sends. */
  function packetBuffer(marker: boolean, type: number, packetTimestamp: number): Uint8Array | undefined {
    let out: Uint8Array | undefined;
    let index = -1;
    for (let i = 0; i < SEND_BUFFERS; i++) {
      const candidate = (sendIndex + i) % SEND_BUFFERS;
      if (sendBusy[candidate] === 0) {
        index = candidate;
        break;
      }
    }
    if (index >= 0) {
      out = sendBuffers[index]!;
      sendIndex = (index + 1) % SEND_BUFFERS;
    } else {
      // Every buffer still in flight (the socket is backed up): this packet gets its own.
      out = new Uint8Array(RTP_HEADER_BYTES + FRAME_BYTES);
    }
    header.marker = marker;
    header.payloadType = type;
    header.sequenceNumber = sequence;
    header.timestamp = packetTimestamp;
    const written = encodeRtpHeader(header, out, 0);
    if (written instanceof SipError) return undefined;
    sequence = (sequence + 1) & 0xffff;
    currentBuffer = index;
    return out;
  }

  function transmit(out: Uint8Array, length: number, to: { address: string; port: number }): void {
    const index = currentBuffer;
    try {
      if (index >= 0) {
        sendBusy[index] = 1;
        socket.send(out, 0, length, to.port, to.address, sendDone[index]);
      } else {
        socket.send(out, 0, length, to.port, to.address);
      }
      stats.packetsOut++;
      stats.bytesOut += length;
    } catch {
      // The socket closed between the tick and the send.
      if (index >= 0) sendBusy[index] = 0;
    }
  }

  function destination(): { address: string; port: number } | undefined {
    const to = latched ?? sdpRemote;
    // 0.0.0.0 / port 0 is the SDP way of saying "do not send" (RFC 3264 §8.4 old-style hold).
    if (to.port <= 0 || to.address === '0.0.0.0' || to.address === '::') return undefined;
    return to;
  }

  function sendAudioOrSilence(to: { address: string; port: number }): void {
    const audio = ringLength > 0;
    const out = packetBuffer(markNext || (audio && inSilence), payloadType, timestamp);
    if (!out) return;
    markNext = false;
    if (audio) {
      inSilence = false;
      const take = Math.min(FRAME_BYTES, ringLength);
      for (let i = 0; i < take; i++) out[RTP_HEADER_BYTES + i] = ring[(ringStart + i) % ring.length]!;
      // A partial last frame is filled out with silence (G.711 can be cut anywhere).
      for (let i = take; i < FRAME_BYTES; i++) out[RTP_HEADER_BYTES + i] = silenceByte;
      ringStart = (ringStart + take) % ring.length;
      ringLength -= take;
    } else {
      inSilence = true;
      stats.silencePackets++;
      out.fill(silenceByte, RTP_HEADER_BYTES, RTP_HEADER_BYTES + FRAME_BYTES);
    }
    transmit(out, RTP_HEADER_BYTES + FRAME_BYTES, to);
  }

  /** One packet of the digit being sent (RFC 4733 §2.5): one timestamp, M on the first, growing duration, end ×3. */
  function sendDtmfPacket(to: { address: string; port: number }): void {
    const digit = dtmfActive!;
    const first = digit.elapsedUnits === 0;
    digit.elapsedUnits = Math.min(digit.durationUnits, digit.elapsedUnits + FRAME_UNITS);
    const end = digit.elapsedUnits >= digit.durationUnits;
    const out = packetBuffer(first, dtmfPayloadType!, digit.startTimestamp);
    if (!out) return;
    encodeTelephoneEvent({ event: digit.event, end, volume: DTMF_VOLUME, durationUnits: digit.elapsedUnits }, out, RTP_HEADER_BYTES);
    transmit(out, RTP_HEADER_BYTES + 4, to);
    if (!end) return;
    digit.endsSent++;
    if (digit.endsSent >= 3) {
      dtmfActive = undefined;
      stats.dtmfOut++;
      dtmfGap = DTMF_GAP_FRAMES;
      markNext = true;
    }
  }

  function dropHeldFrames(): number {
    const frames = Math.ceil(ringLength / FRAME_BYTES);
    ringStart = 0;
    ringLength = 0;
    return frames;
  }

  // ---- the 20 ms tick --------------------------------------------------------------------------------------
  let nextTickAt = clock.now() + FRAME_MS;
  let timer: TimerHandle | undefined = clock.setTimeout(tick, FRAME_MS);

  function stopTicking(): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
  }

  function tick(): void {
    timer = undefined;
    if (ended) return;
    const now = clock.now();
    // Deadlines are absolute (start + n·20 ms), so timer lateness does not accumulate into drift.
    let due = Math.floor((now - nextTickAt) / FRAME_MS) + 1;
    if (due > maxCatchUp) {
      // A stall: a few frames catch up, the rest of the gap is skipped (the timestamp still shows it).
      const skipped = due - maxCatchUp;
      nextTickAt += skipped * FRAME_MS;
      timestamp = (timestamp + skipped * FRAME_UNITS) >>> 0;
      markNext = true;
      stats.skippedTicks += skipped;
      due = maxCatchUp;
    }
    for (let i = 0; i < due && !ended; i++) {
      frameTick(now);
      nextTickAt += FRAME_MS;
    }
    if (!ended) timer = clock.setTimeout(tick, Math.max(0, nextTickAt - clock.now()));
  }

  function frameTick(now: number): void {
    if (now - lastInboundAt > (onHold ? holdTimeoutMs : inactivityMs)) {
      endFromFarSide('rtp-timeout');
      return;
    }
    const frame = jitter.pop();
    if (frame) deliver(frame.payload);
    else if (heardAudio) {
      // Silence suppression, loss, hold: the pipeline still gets a frame every 20 ms, as from every other
      // carrier (endpointing measures the caller's pause in VAD frames).
      stats.silenceIn++;
      deliver(inboundSilence);
    }
    if (ended) return;
    if (onHold) {
      // The far end is not listening: audio due now is not heard (and must not pile up).
      if (ringLength > 0) {
        const take = Math.min(FRAME_BYTES, ringLength);
        ringStart = (ringStart + take) % ring.length;
        ringLength -= take;
        stats.droppedOnHold++;
      }
    } else {
      const to = destination();
      if (to) {
        if (!dtmfActive && dtmfGap === 0 && dtmfQueue.length > 0 && dtmfPayloadType !== undefined) {
          const next = dtmfQueue.shift()!;
          dtmfActive = { ...next, startTimestamp: timestamp, elapsedUnits: 0, endsSent: 0 };
        }
        if (dtmfActive) sendDtmfPacket(to);
        else {
          if (dtmfGap > 0) dtmfGap--;
          sendAudioOrSilence(to);
        }
      }
    }
    timestamp = (timestamp + FRAME_UNITS) >>> 0;
  }

  // ---- ending ----------------------------------------------------------------------------------------------
  function closeSocket(): void {
    try {
      socket.close();
    } catch {
      // Already closed.
    }
  }

  /** The far end hung up (BYE) or went silent: 'stop' is delivered, then the link closes. */
  function endFromFarSide(hangupReason?: string): void {
    if (ended) return;
    ended = true;
    stopTicking();
    // A dead stream is not a caller hanging up: the call records why it ended.
    deliver(hangupReason === undefined ? 'stop' : `stop:${hangupReason}`);
    closeSocket();
    if (hangupReason !== undefined) options.onHangup?.(hangupReason);
    if (pending.length === 0) notifyClose(false);
    else closeAfterDrain = true;
    options.onClosed?.();
  }

  const link: CarrierLink = {
    onMessage(listener) {
      messageListeners.push(listener);
      flow();
    },
    onClose(listener) {
      closeListeners.push(listener);
      if (closedWith !== undefined) {
        const how = closedWith;
        queueMicrotask(() => listener(how));
      }
    },
    send(payload) {
      if (ended || typeof payload === 'string') return;
      let offset = 0;
      const free = ring.length - ringLength;
      const accepted = Math.min(payload.length, free);
      let at = (ringStart + ringLength) % ring.length;
      for (; offset < accepted; offset++) {
        ring[at] = payload[offset]!;
        at = at + 1 === ring.length ? 0 : at + 1;
      }
      ringLength += accepted;
      if (accepted < payload.length) stats.droppedFull += Math.ceil((payload.length - accepted) / FRAME_BYTES);
    },
    close(_code, reason) {
      if (ended) return;
      ended = true;
      stopTicking();
      // Our hang-up: whatever the far end still sent is of no use now.
      pending.length = 0;
      pendingAudio = 0;
      pendingDtmf = 0;
      dropHeldFrames();
      closeSocket();
      options.onHangup?.(reason);
      notifyClose(false);
      options.onClosed?.();
    },
    get open() {
      return !ended;
    },
    bufferedAmount: () => ringLength,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      flow();
    },
  };

  return {
    link,
    /** Barge-in: outbound audio not yet sent is dropped (at most the frame on the wire still plays). */
    dropHeld(): void {
      stats.droppedOnClear += dropHeldFrames();
    },
    /** Queues an RFC 4733 digit (0-9 * # A-D); false when no telephone-event was negotiated or the digit is not one. */
    sendDtmf(digit: string, durationMs = 100): boolean {
      const event = eventForDigit(digit);
      if (ended || event === undefined || dtmfPayloadType === undefined || dtmfQueue.length >= MAX_QUEUED_DTMF_OUT) return false;
      const frames = Math.max(1, Math.min(Math.round(durationMs / FRAME_MS), 0xffff / FRAME_UNITS));
      dtmfQueue.push({ event, durationUnits: Math.floor(frames) * FRAME_UNITS });
      return true;
    },
    /** A re-INVITE moved the far end: packets go to the new address until a packet latches a source again. */
    setRemote(remote: { readonly address: string; readonly port: number }): void {
      if (remote.address === sdpRemote.address && remote.port === sdpRemote.port) return;
      sdpRemote = { address: remote.address, port: remote.port };
      latched = undefined;
      stats.latchedTo = undefined;
    },
    /** Hold (re-INVITE sendonly/inactive): nothing is sent, not even silence, and silence from the far end is fine. */
    setHold(held: boolean): void {
      if (held === onHold) return;
      onHold = held;
      // Either timeout counts from the change (the hold timeout from the start of the hold).
      lastInboundAt = clock.now();
      if (!held) markNext = true;
    },
    /** The far end hung up (BYE): 'stop' is delivered, then the link closes without onHangup. */
    /** A digit signalled outside RTP (SIP INFO application/dtmf-relay, which some trunks use instead of RFC 4733). */
    signalledDtmf(digit: string): void {
      const message = DTMF_MESSAGES.get(digit);
      if (message === undefined || ended) return;
      stats.dtmfIn++;
      deliver(message);
    },
    remoteHangup(): void {
      endFromFarSide();
    },
    get held() {
      return onHold;
    },
    stats,
    localPort,
  };
}

export type RtpLink = ReturnType<typeof createRtpLink>;

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) as `1.2.3.4`. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
