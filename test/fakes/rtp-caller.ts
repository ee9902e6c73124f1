import { createSocket, type RemoteInfo } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { alawDecode, alawEncode, ALAW_SILENCE, mulawDecode, mulawEncode, MULAW_SILENCE } from '../../shared/audio/g711';
import { createDtmfDeduplicator, decodeTelephoneEvent, encodeTelephoneEvent, eventForDigit } from '../../shared/telephony/sip/dtmf-event';
import { decodeRtp, encodeRtpPacket } from '../../shared/telephony/sip/rtp';
import { SipError } from '../../shared/telephony/sip/sip-error';

/**
 * The caller's media endpoint in SIP end-to-end tests: one UDP socket, named in sipp's SDP (`-key rtp_port`),
 * that sends the caller's speech as G.711 RTP paced at 20 ms from a monotonic clock and records everything
 * the runtime sends back. The runtime sends RTP (silence when idle) from its own RTP socket as soon as the
 * call is answered, so the caller learns where to send from the first packet it receives (unless told with
 * setRemote); sending from this same socket is what lets the runtime latch on (symmetric RTP).
 */

const SAMPLES_PER_PACKET = 160;
const PACKET_MS = 20;
const SAMPLE_RATE_HZ = 8000;
const PAYLOAD_TYPE: Record<'PCMU' | 'PCMA', number> = { PCMU: 0, PCMA: 8 };

export interface ReceivedRtp {
  readonly seq: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly marker: boolean;
  /** performance.now() at arrival. */
  readonly atMs: number;
  /** `address:port` of the sender. */
  readonly from: string;
  /** A copy of the payload. */
  readonly payload: Uint8Array;
}

export interface RtpCallerOptions {
  /** Address to bind and to write into the SDP; default 127.0.0.1. */
  readonly host?: string;
  readonly codec?: 'PCMU' | 'PCMA';
  /** Default: the codec's static type (0 or 8). */
  readonly payloadType?: number;
  /** The telephone-event type the offer names; default 101. */
  readonly dtmfPayloadType?: number;
  /** How long a send waits for the runtime's address (first received packet); default 5 s. */
  readonly remoteWaitMs?: number;
}

export interface RtpCaller {
  readonly port: number;
  readonly host: string;
  /** Sends PCM16 8 kHz mono as 20 ms packets (the last one padded with silence), paced in real time. */
  sendSpeech(pcm: Int16Array): Promise<void>;
  sendSilence(ms: number): Promise<void>;
  /** One RFC 4733 digit: start/continuation packets for `durationMs`, then the end packet three times. */
  sendDtmf(digit: string, durationMs?: number): Promise<void>;
  readonly received: readonly ReceivedRtp[];
  /** Packets this caller has sent (audio and DTMF). */
  readonly sentPackets: number;
  /** Decoded audio (PCMU/PCMA packets, in arrival order) from packet index `fromIndex`. */
  receivedPcm(fromIndex?: number): Int16Array;
  /** Index of the first received audio packet at or after `fromIndex` whose RMS exceeds `threshold`; -1 if none. */
  firstVoicedPacket(fromIndex?: number, threshold?: number): number;
  /** RFC 4733 digits received (end packets deduplicated). */
  receivedDigits(): string[];
  waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Where to send; otherwise learned from the first received packet. */
  setRemote(address: string, port: number): void;
  readonly remote: { readonly address: string; readonly port: number } | undefined;
  /** Sends bytes as they are to the remote (fuzzing); throws when no remote is known yet. */
  sendRaw(bytes: Uint8Array): void;
  close(): Promise<void>;
}

/** Root mean square of 16-bit samples. */
export function rms(pcm: Int16Array, start = 0, end = pcm.length): number {
  if (end <= start) return 0;
  let sum = 0;
  for (let i = start; i < end; i++) sum += pcm[i]! * pcm[i]!;
  return Math.sqrt(sum / (end - start));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
const randomU32 = () => Math.floor(Math.random() * 0x100000000) >>> 0;

export async function createRtpCaller(options: RtpCallerOptions = {}): Promise<RtpCaller> {
  const host = options.host ?? '127.0.0.1';
  const codec = options.codec ?? 'PCMU';
  const payloadType = options.payloadType ?? PAYLOAD_TYPE[codec];
  const dtmfPayloadType = options.dtmfPayloadType ?? 101;
  const remoteWaitMs = options.remoteWaitMs ?? 5000;
  const encode = codec === 'PCMU' ? mulawEncode : alawEncode;
  const silenceByte = codec === 'PCMU' ? MULAW_SILENCE : ALAW_SILENCE;

  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const port = socket.address().port;

  const received: ReceivedRtp[] = [];
  let remote: { address: string; port: number } | undefined;
  let remoteFixed = false;
  socket.on('message', (message: Buffer, info: RemoteInfo) => {
    const packet = decodeRtp(message);
    if (packet instanceof SipError) return;
    if (!remoteFixed && !remote) remote = { address: info.address, port: info.port };
    received.push({
      seq: packet.sequenceNumber, timestamp: packet.timestamp, ssrc: packet.ssrc, payloadType: packet.payloadType, marker: packet.marker,
      atMs: performance.now(), from: `${info.address}:${info.port}`, payload: Uint8Array.from(packet.payload),
    });
  });

  // One stream: random start values (RFC 3550 §5.1), continuous across sends.
  const ssrc = randomU32();
  let seq = Math.floor(Math.random() * 0x10000);
  let timestamp = randomU32();
  let sentPackets = 0;
  /** performance.now() when the next packet is due; undefined while idle. */
  let nextDueMs: number | undefined;
  const out = new Uint8Array(12 + SAMPLES_PER_PACKET);
  const payload = new Uint8Array(SAMPLES_PER_PACKET);
  const frame = new Int16Array(SAMPLES_PER_PACKET);
  let queue = Promise.resolve();

  const serial = <T>(job: () => Promise<T>): Promise<T> => {
    const run = queue.then(job);
    queue = run.then(() => undefined, () => undefined);
    return run;
  };

  const waitForRemote = async () => {
    const deadline = performance.now() + remoteWaitMs;
    while (!remote) {
      if (performance.now() > deadline) throw new Error(`RTP_CALLER_NO_REMOTE: no RTP arrived on ${host}:${port} within ${remoteWaitMs} ms, so the runtime's RTP address is unknown (or call setRemote)`);
      await sleep(5);
    }
    return remote;
  };

  /** Starts a burst: after idleness the timestamp jumps by the idle time and the first packet is marked. */
  const beginBurst = (): boolean => {
    const now = performance.now();
    if (nextDueMs !== undefined && now - nextDueMs < PACKET_MS) return false;
    if (nextDueMs !== undefined) {
      const idlePackets = Math.floor((now - nextDueMs) / PACKET_MS);
      timestamp = (timestamp + idlePackets * SAMPLES_PER_PACKET) >>> 0;
    }
    nextDueMs = now;
    return true;
  };

  const sendPacket = async (pt: number, marker: boolean, ts: number, body: Uint8Array) => {
    const target = await waitForRemote();
    // Absolute schedule: lateness of one packet does not delay the ones after it.
    await sleep(nextDueMs! - performance.now());
    const length = encodeRtpPacket({ marker, payloadType: pt, sequenceNumber: seq, timestamp: ts, ssrc }, body, out);
    if (length instanceof SipError) throw length;
    // A copy: dgram reads the buffer after a tick, and `out` is reused for the next packet.
    socket.send(out.slice(0, length), target.port, target.address);
    seq = (seq + 1) & 0xffff;
    sentPackets += 1;
    nextDueMs! += PACKET_MS;
  };

  const sendAudio = async (pcm: Int16Array | undefined, packets: number) => {
    await waitForRemote();
    let marker = beginBurst();
    for (let i = 0; i < packets; i++) {
      if (pcm) {
        frame.fill(0);
        frame.set(pcm.subarray(i * SAMPLES_PER_PACKET, Math.min(pcm.length, (i + 1) * SAMPLES_PER_PACKET)));
        encode(frame, payload);
      } else {
        payload.fill(silenceByte);
      }
      await sendPacket(payloadType, marker, timestamp, payload);
      marker = false;
      timestamp = (timestamp + SAMPLES_PER_PACKET) >>> 0;
    }
  };

  const eventBody = new Uint8Array(4);

  return {
    port,
    host,
    received,
    get sentPackets() {
      return sentPackets;
    },
    get remote() {
      return remote;
    },
    sendSpeech: (pcm) => serial(() => sendAudio(pcm, Math.ceil(pcm.length / SAMPLES_PER_PACKET))),
    sendSilence: (ms) => serial(() => sendAudio(undefined, Math.ceil(ms / PACKET_MS))),
    sendDtmf: (digit, durationMs = 100) => serial(async () => {
      const event = eventForDigit(digit);
      if (event === undefined) throw new Error(`RTP_CALLER_DIGIT: ${JSON.stringify(digit)} is not a DTMF digit (0-9 * # A-D)`);
      await waitForRemote();
      beginBurst();
      const eventTimestamp = timestamp;
      const steps = Math.max(1, Math.round(durationMs / PACKET_MS));
      for (let i = 1; i <= steps; i++) {
        encodeTelephoneEvent({ event, end: false, volume: 10, durationUnits: i * SAMPLES_PER_PACKET }, eventBody);
        await sendPacket(dtmfPayloadType, i === 1, eventTimestamp, eventBody);
      }
      // The end packet three times, same timestamp and duration (RFC 4733 §2.5.1.4).
      encodeTelephoneEvent({ event, end: true, volume: 10, durationUnits: steps * SAMPLES_PER_PACKET }, eventBody);
      for (let i = 0; i < 3; i++) await sendPacket(dtmfPayloadType, false, eventTimestamp, eventBody);
      timestamp = (eventTimestamp + (steps + 3) * SAMPLES_PER_PACKET) >>> 0;
    }),
    receivedPcm(fromIndex = 0) {
      const audio = received.slice(fromIndex).filter((p) => p.payloadType === 0 || p.payloadType === 8);
      const pcm = new Int16Array(audio.reduce((n, p) => n + p.payload.length, 0));
      let at = 0;
      for (const p of audio) {
        const view = pcm.subarray(at, at + p.payload.length);
        if (p.payloadType === 0) mulawDecode(p.payload, view);
        else alawDecode(p.payload, view);
        at += p.payload.length;
      }
      return pcm;
    },
    firstVoicedPacket(fromIndex = 0, threshold = 500) {
      const pcm = new Int16Array(SAMPLES_PER_PACKET * 2);
      for (let i = fromIndex; i < received.length; i++) {
        const p = received[i]!;
        if (p.payloadType !== 0 && p.payloadType !== 8) continue;
        const view = pcm.subarray(0, p.payload.length);
        if (p.payloadType === 0) mulawDecode(p.payload, view);
        else alawDecode(p.payload, view);
        if (rms(view) > threshold) return i;
      }
      return -1;
    },
    receivedDigits() {
      const digits: string[] = [];
      const local = createDtmfDeduplicator(64);
      for (const p of received) {
        if (p.payloadType !== dtmfPayloadType) continue;
        const event = decodeTelephoneEvent(p.payload);
        if (event instanceof SipError) continue;
        const digit = local.accept({ ssrc: p.ssrc, timestamp: p.timestamp, event });
        if (digit !== undefined) digits.push(digit);
      }
      return digits;
    },
    async waitFor(predicate, timeoutMs, what) {
      const deadline = performance.now() + timeoutMs;
      while (!predicate()) {
        if (performance.now() > deadline) throw new Error(`RTP_CALLER_TIMEOUT: ${what} did not happen within ${timeoutMs} ms (${received.length} packets received)`);
        await sleep(10);
      }
    },
    setRemote(address, remotePort) {
      remote = { address, port: remotePort };
      remoteFixed = true;
    },
    sendRaw(bytes) {
      if (!remote) throw new Error('RTP_CALLER_NO_REMOTE: sendRaw before the runtime\'s RTP address is known');
      socket.send(bytes, remote.port, remote.address);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

export { SAMPLE_RATE_HZ as RTP_CALLER_SAMPLE_RATE_HZ };
