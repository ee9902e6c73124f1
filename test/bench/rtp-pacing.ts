import { createSocket, type Socket } from 'node:dgram';
import { createRtpLink } from '../../media-node/sip/rtp-link';
import { decodeRtp, encodeRtpPacket } from '../../shared/telephony/sip/rtp';
import { isSipError } from '../../shared/telephony/sip/sip-error';
import { percentile } from './harness';

export interface RtpPacingStep {
  calls: number;
  seconds: number;
  packetsOut: number;
  /** |inter-arrival − 20 ms| over every stream, at the far end (loopback). */
  spacingErrorP50Ms: number;
  spacingErrorP99Ms: number;
  spacingErrorMaxMs: number;
  /** Packets the far end should have got (50/s per call) but did not. */
  missingPercent: number;
  /** This process (links, jitter buffers, the far end's senders and sinks) as % of one core. */
  cpuPercent: number;
}

const bind = (): Promise<Socket> =>
  new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  });

/**
 * `calls` SIP calls' RTP in one process, in real time: each link sends 20 ms packets (speech frames
 * queued, then silence) to a far end that also streams 20 ms μ-law packets in (through the jitter
 * buffer). Measures the outbound pacing the caller's phone sees and the CPU it costs.
 */
export async function benchRtpPacing(calls: number, seconds: number): Promise<RtpPacingStep> {
  const sink = await bind();
  const sinkPort = sink.address().port;
  const lastAt = new Map<number, number>();
  const errors: number[] = [];
  let packetsOut = 0;
  sink.on('message', (message: Buffer) => {
    const packet = decodeRtp(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
    if (isSipError(packet)) return;
    const now = performance.now();
    const previous = lastAt.get(packet.ssrc);
    if (previous !== undefined) errors.push(Math.abs(now - previous - 20));
    lastAt.set(packet.ssrc, now);
    packetsOut++;
  });
  const links: ReturnType<typeof createRtpLink>[] = [];
  for (let i = 0; i < calls; i++) {
    const link = createRtpLink({ socket: await bind(), remote: { address: '127.0.0.1', port: sinkPort }, codec: 'PCMU', payloadType: 0, dtmfPayloadType: 101, inactivityMs: 60_000 });
    link.link.onMessage(() => undefined);
    links.push(link);
  }
  // The far end: the same socket streams every call's inbound RTP, 20 ms apart, phases spread (symmetric RTP
  // latches onto the address packets come from, so sending from another socket would move the streams there).
  const sender = sink;
  const payload = new Uint8Array(160).fill(0x7f);
  const out = new Uint8Array(172);
  let sequence = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const handles: ReturnType<typeof setTimeout>[] = [];
  links.forEach((link, i) => {
    const start = setTimeout(() => {
      const every = setInterval(() => {
        sequence = (sequence + 1) & 0xffff;
        const length = encodeRtpPacket({ payloadType: 0, sequenceNumber: sequence, timestamp: (sequence * 160) >>> 0, ssrc: 1000 + i, marker: false }, payload, out);
        if (typeof length === 'number') sender.send(out.subarray(0, length), link.localPort, '127.0.0.1');
        // Half the time the assistant speaks: a second of audio queued now and then.
        if (sequence % 100 === i % 100) link.link.send(new Uint8Array(160 * 50).fill(0x55));
      }, 20);
      handles.push(every);
    }, (i * 20) / calls);
    handles.push(start);
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  for (const handle of handles) clearInterval(handle);
  for (const link of links) link.link.close(1000, 'bench over');
  await new Promise((r) => setTimeout(r, 50));
  sink.close();
  errors.sort((a, b) => a - b);
  const expected = (calls * elapsedMs) / 20;
  return {
    calls,
    seconds,
    packetsOut,
    spacingErrorP50Ms: percentile(errors, 50),
    spacingErrorP99Ms: percentile(errors, 99),
    spacingErrorMaxMs: errors.at(-1) ?? 0,
    missingPercent: Math.max(0, (100 * (expected - packetsOut)) / expected),
    cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
  };
}
