import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createCarrierChannel } from '../../../media-node/channels/carrier-channel';
import { createRtpLink, type RtpLinkOptions } from '../../../media-node/sip/rtp-link';
import { MULAW_8K, PIPELINE_FORMAT, type AudioFrame } from '../../../shared/audio/format';
import { createRtpCarrierCodec } from '../../../shared/telephony/sip/rtp-carrier-codec';
import { audioRuntime } from '../../fakes/call';
import type { Clock } from '../../../shared/contracts/clock';
import { decodeTelephoneEvent, encodeTelephoneEvent, type TelephoneEvent } from '../../../shared/telephony/sip/dtmf-event';
import { decodeRtp, encodeRtpPacket, type RtpPacket } from '../../../shared/telephony/sip/rtp';
import { SipError } from '../../../shared/telephony/sip/sip-error';
import { createFakeClock, type FakeClock } from '../../fakes/clock';

const HOST = '127.0.0.1';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function udp(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
  cleanups.push(() => {
    try {
      socket.close();
    } catch {
      // closed by the test
    }
  });
  return socket;
}

/** Real-time wait until `condition` holds (UDP delivery is asynchronous even on loopback). */
async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A peer: collects what the link sends it (decoded), and sends it datagrams. */
async function peer() {
  const socket = await udp();
  const packets: RtpPacket[] = [];
  const arrivals: number[] = [];
  socket.on('message', (message: Buffer) => {
    const packet = decodeRtp(new Uint8Array(message));
    if (packet instanceof SipError) throw new Error(`the link sent a malformed packet: ${packet.message}`);
    packets.push(packet);
    arrivals.push(performance.now());
  });
  return { socket, packets, arrivals, port: socket.address().port };
}

function rtp(fields: { seq: number; ts?: number; ssrc?: number; pt?: number; marker?: boolean; payload?: Uint8Array; fill?: number }): Uint8Array {
  const payload = fields.payload ?? new Uint8Array(160).fill(fields.fill ?? fields.seq & 0xff);
  const out = new Uint8Array(12 + payload.length);
  const length = encodeRtpPacket(
    { marker: fields.marker ?? false, payloadType: fields.pt ?? 0, sequenceNumber: fields.seq & 0xffff, timestamp: (fields.ts ?? 8000 + fields.seq * 160) >>> 0, ssrc: fields.ssrc ?? 0xabcd },
    payload,
    out,
  );
  if (length instanceof SipError) throw new Error(length.message);
  return out;
}

function dtmfPacket(seq: number, ts: number, event: number, end: boolean, durationUnits: number, marker = false): Uint8Array {
  const payload = new Uint8Array(4);
  encodeTelephoneEvent({ event, end, volume: 10, durationUnits }, payload);
  return rtp({ seq, ts, pt: 101, marker, payload });
}

async function setUp(overrides: Partial<RtpLinkOptions> & { clock?: Clock } = {}) {
  const local = await udp();
  const far = await peer();
  const clock = (overrides.clock ?? createFakeClock(1000)) as FakeClock;
  const hangups: string[] = [];
  const errors: string[] = [];
  let closedCalls = 0;
  const rtpLink = createRtpLink({
    socket: local,
    remote: { address: HOST, port: far.port },
    codec: 'PCMU',
    payloadType: 0,
    dtmfPayloadType: 101,
    clock,
    onHangup: (reason) => hangups.push(reason),
    onProtocolError: (code) => errors.push(code),
    onClosed: () => closedCalls++,
    ...overrides,
  });
  cleanups.push(() => {
    if (rtpLink.link.open) rtpLink.link.close(1000, 'test over');
  });
  const messages: (string | Uint8Array)[] = [];
  const closes: boolean[] = [];
  const listen = () => {
    rtpLink.link.onMessage((message) => messages.push(typeof message === 'string' ? message : message.slice()));
    rtpLink.link.onClose((error) => closes.push(error));
  };
  /** Sends a datagram from `from` to the link and waits until the link has handled it. */
  const inject = async (bytes: Uint8Array, from: Socket = far.socket) => {
    const handled = new Promise((resolve) => local.once('message', resolve));
    from.send(bytes, rtpLink.localPort, HOST);
    await handled;
  };
  return { local, far, clock, rtpLink, link: rtpLink.link, hangups, errors, messages, closes, listen, inject, closedCalls: () => closedCalls };
}

const audioMessages = (messages: readonly (string | Uint8Array)[]) => messages.filter((m): m is Uint8Array => typeof m !== 'string');
/** Audio frames other than μ-law silence (test frames are filled with their sequence number). */
const spoken = (messages: readonly (string | Uint8Array)[]) => audioMessages(messages).filter((m) => m[0] !== 0xff);

describe('RTP link: outbound stream', () => {
  it('sends one packet per 20 ms: V=2, PT, sequence +1, timestamp +160, constant SSRC; silence (0xFF) when idle, never marked', async () => {
    const { clock, far, rtpLink } = await setUp();
    await clock.advance(200);
    await until(() => far.packets.length >= 10);
    expect(far.packets).toHaveLength(10);
    const [first] = far.packets;
    for (const [i, packet] of far.packets.entries()) {
      expect(packet.version).toBe(2);
      expect(packet.payloadType).toBe(0);
      expect(packet.ssrc).toBe(first!.ssrc);
      expect(packet.sequenceNumber).toBe((first!.sequenceNumber + i) & 0xffff);
      expect(packet.timestamp).toBe((first!.timestamp + i * 160) >>> 0);
      expect(packet.csrcs).toEqual([]);
      expect(packet.marker).toBe(false);
      expect(packet.payload.length).toBe(160);
      expect(packet.payload.every((b) => b === 0xff)).toBe(true);
    }
    expect(rtpLink.stats).toMatchObject({ packetsOut: 10, bytesOut: 10 * 172, silencePackets: 10 });
  });

  it('sends held audio frame by frame, the marker bit on the first packet of each talkspurt', async () => {
    const { clock, far, link, rtpLink } = await setUp();
    await clock.advance(40);
    // Any multiple of the frame: 480 bytes = three frames.
    link.send(new Uint8Array(480).map((_, i) => 1 + Math.floor(i / 160)));
    expect(link.bufferedAmount()).toBe(480);
    await clock.advance(20);
    expect(link.bufferedAmount()).toBe(320);
    await clock.advance(80);
    link.send(new Uint8Array(160).fill(9));
    await clock.advance(20);
    await until(() => far.packets.length >= 8);
    const summary = far.packets.map((p) => `${p.payload[0] === 0xff ? 's' : p.payload[0]}${p.marker ? 'M' : ''}`);
    expect(summary).toEqual(['s', 's', '1M', '2', '3', 's', 's', '9M']);
    expect(far.packets.every((p) => p.payload.every((b) => b === p.payload[0]))).toBe(true);
    expect(rtpLink.stats.silencePackets).toBe(4);
    expect(link.bufferedAmount()).toBe(0);
  });

  it('speaks PCMA with payload type 8 and A-law silence (0xD5)', async () => {
    const { clock, far } = await setUp({ codec: 'PCMA', payloadType: 8 });
    await clock.advance(60);
    await until(() => far.packets.length >= 3);
    expect(far.packets.every((p) => p.payloadType === 8 && p.payload.every((b) => b === 0xd5))).toBe(true);
  });

  it('holds at most maxHeldMs of audio, dropping (and counting) the excess', async () => {
    const { link, rtpLink } = await setUp({ maxHeldMs: 100 });
    link.send(new Uint8Array(160 * 8));
    expect(link.bufferedAmount()).toBe(800);
    expect(rtpLink.stats.droppedFull).toBe(3);
  });

  it('dropHeld (barge-in) discards what has not been sent yet', async () => {
    const { clock, far, link, rtpLink } = await setUp();
    link.send(new Uint8Array(160 * 10).fill(7));
    await clock.advance(40);
    rtpLink.dropHeld();
    expect(link.bufferedAmount()).toBe(0);
    expect(rtpLink.stats.droppedOnClear).toBe(8);
    await clock.advance(40);
    await until(() => far.packets.length >= 4);
    expect(far.packets.map((p) => p.payload[0])).toEqual([7, 7, 0xff, 0xff]);
  });

  it('sends RFC 4733 digits: one timestamp, M on the first, growing duration, the end packet three times', async () => {
    const { clock, far, rtpLink } = await setUp();
    await clock.advance(20);
    expect(rtpLink.sendDtmf('7', 100)).toBe(true);
    expect(rtpLink.sendDtmf('x')).toBe(false);
    await clock.advance(20 * 10);
    await until(() => far.packets.length >= 11);
    const events = far.packets.filter((p) => p.payloadType === 101);
    const decoded = events.map((p) => decodeTelephoneEvent(p.payload) as TelephoneEvent);
    expect(decoded.map((e) => [e.event, e.end, e.durationUnits])).toEqual([
      [7, false, 160],
      [7, false, 320],
      [7, false, 480],
      [7, false, 640],
      [7, true, 800],
      [7, true, 800],
      [7, true, 800],
    ]);
    expect(events.map((p) => p.marker)).toEqual([true, false, false, false, false, false, false]);
    expect(new Set(events.map((p) => p.timestamp)).size).toBe(1);
    // The event's timestamp is that of the tick it started on; sequence numbers go on across audio and events.
    const all = far.packets;
    expect(events[0]!.timestamp).toBe((all[0]!.timestamp + 160) >>> 0);
    for (let i = 1; i < all.length; i++) expect(all[i]!.sequenceNumber).toBe((all[i - 1]!.sequenceNumber + 1) & 0xffff);
    // Audio resumes after the digit, its timestamp where real time is.
    const after = all[8]!;
    expect(after.payloadType).toBe(0);
    expect(after.timestamp).toBe((all[0]!.timestamp + 8 * 160) >>> 0);
    expect(rtpLink.stats.dtmfOut).toBe(1);
  });

  it('refuses DTMF when no telephone-event payload type was negotiated', async () => {
    const { rtpLink } = await setUp({ dtmfPayloadType: undefined });
    expect(rtpLink.sendDtmf('1')).toBe(false);
  });

  it('after an event-loop stall catches up a few frames, skips the rest, and shows the gap in the timestamp', async () => {
    const fake = createFakeClock(1000);
    let stallMs = 0;
    const clock: Clock = { now: () => fake.now() + stallMs, setTimeout: fake.setTimeout, clearTimeout: fake.clearTimeout };
    const { far, rtpLink } = await setUp({ clock, maxCatchUpFrames: 3 });
    await fake.advance(40);
    stallMs = 1000;
    await fake.advance(20);
    await until(() => far.packets.length >= 5);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Two before the stall, then three at once (not fifty).
    expect(far.packets).toHaveLength(5);
    expect(rtpLink.stats.skippedTicks).toBe(48);
    const [, second, third] = far.packets;
    expect(third!.sequenceNumber).toBe((second!.sequenceNumber + 1) & 0xffff);
    expect(third!.timestamp).toBe((second!.timestamp + 49 * 160) >>> 0);
    expect(third!.marker).toBe(true);
  });

  it('packets sent in one burst each carry their own frame (no shared send buffer overwritten before dgram reads it)', async () => {
    const fake = createFakeClock(1000);
    let stallMs = 0;
    const clock: Clock = { now: () => fake.now() + stallMs, setTimeout: fake.setTimeout, clearTimeout: fake.clearTimeout };
    const { far, link } = await setUp({ clock, maxCatchUpFrames: 3 });
    link.send(Uint8Array.from({ length: 480 }, (_, i) => 1 + Math.floor(i / 160)));
    stallMs = 100;
    await fake.advance(20);
    await until(() => far.packets.length >= 3);
    expect(far.packets.map((p) => p.payload[0])).toEqual([1, 2, 3]);
  });

  it('paces about 50 packets a second on the real clock', async () => {
    const { far } = await setUp({ clock: undefined });
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const elapsed = performance.now() - start;
    const count = far.packets.length;
    expect(count).toBeGreaterThanOrEqual(Math.floor((elapsed / 20) * 0.6));
    expect(count).toBeLessThanOrEqual(Math.ceil(elapsed / 20) + 3);
    // No burst: nowhere ten packets inside 100 ms.
    for (let i = 10; i < far.arrivals.length; i++) expect(far.arrivals[i]! - far.arrivals[i - 10]!).toBeGreaterThan(100);
  });
});

describe('RTP link: symmetric RTP', () => {
  it('sends to the SDP address until a packet latches its source, then ignores other sources', async () => {
    const { clock, far, rtpLink, inject } = await setUp();
    const natted = await peer();
    await clock.advance(40);
    await inject(rtp({ seq: 1 }), natted.socket);
    expect(rtpLink.stats.latchedTo).toBe(`${HOST}:${natted.port}`);
    await clock.advance(40);
    await until(() => natted.packets.length >= 2);
    expect(far.packets).toHaveLength(2);
    // The SDP address now counts as a foreign source.
    await inject(rtp({ seq: 2 }), far.socket);
    expect(rtpLink.stats.droppedForeign).toBe(1);
    expect(rtpLink.stats.packetsIn).toBe(1);
  });

  it('latches only on a listed address (the SDP and signalling peers): a stranger spraying RTP takes no call', async () => {
    const guarded = await setUp({ latchAddresses: ['192.0.2.7', '::ffff:10.1.1.1'] });
    await guarded.inject(rtp({ seq: 1 }));
    expect(guarded.rtpLink.stats.latchedTo).toBeUndefined();
    expect(guarded.rtpLink.stats.droppedForeign).toBe(1);
    expect(guarded.rtpLink.stats.packetsIn).toBe(0);
    const allowed = await setUp({ latchAddresses: ['192.0.2.7', `::ffff:${HOST}`] });
    await allowed.inject(rtp({ seq: 1 }));
    expect(allowed.rtpLink.stats.latchedTo).toBe(`${HOST}:${allowed.far.port}`);
  });

  it('does not latch on a payload type it did not negotiate', async () => {
    const { rtpLink, inject } = await setUp();
    const stranger = await peer();
    await inject(rtp({ seq: 1, pt: 13, payload: new Uint8Array(1) }), stranger.socket);
    expect(rtpLink.stats.latchedTo).toBeUndefined();
    expect(rtpLink.stats.ignored).toBe(1);
  });

  it('setRemote (re-INVITE) sends to the new address and unlatches', async () => {
    const { clock, rtpLink, inject } = await setUp();
    const first = await peer();
    const moved = await peer();
    await inject(rtp({ seq: 1 }), first.socket);
    rtpLink.setRemote({ address: HOST, port: moved.port });
    expect(rtpLink.stats.latchedTo).toBeUndefined();
    await clock.advance(40);
    await until(() => moved.packets.length >= 2);
    expect(first.packets).toHaveLength(0);
    await inject(rtp({ seq: 2 }), moved.socket);
    expect(rtpLink.stats.latchedTo).toBe(`${HOST}:${moved.port}`);
  });
});

describe('RTP link: inbound stream', () => {
  it("delivers 'start' first, then the caller's frames in order through the jitter buffer", async () => {
    const { clock, rtpLink, messages, listen, inject } = await setUp();
    listen();
    expect(messages).toEqual(['start']);
    for (const seq of [1, 3, 2, 4, 5, 6, 6]) {
      await inject(rtp({ seq }));
      await clock.advance(20);
    }
    await clock.advance(60);
    expect(spoken(messages).slice(0, 6).map((m) => m[0])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(audioMessages(messages).every((m) => m.length === 160)).toBe(true);
    expect(rtpLink.stats.jitter).toMatchObject({ received: 7, duplicates: 1, lost: 0 });
    expect(rtpLink.stats).toMatchObject({ packetsIn: 7, bytesIn: 7 * 172 });
  });

  it('once the caller has spoken, delivers a frame every 20 ms: silence (0xFF) while nothing arrives', async () => {
    const { clock, rtpLink, messages, listen, inject } = await setUp({ jitter: { concealFrames: 1 } });
    listen();
    await clock.advance(100);
    // Nothing before the caller's first packet.
    expect(messages).toEqual(['start']);
    await inject(rtp({ seq: 1, fill: 0x10 }));
    await inject(rtp({ seq: 2, fill: 0x11 }));
    await clock.advance(200);
    const audio = audioMessages(messages);
    expect(audio).toHaveLength(10);
    // Two waiting ticks (silence), the two frames, one concealment (the last frame, attenuated), then silence.
    const label = (m: Uint8Array) => (m[0] === 0xff ? 's' : m[0] === 0x10 ? 'a' : m[0] === 0x11 ? 'b' : 'c');
    expect(audio.map(label)).toEqual(['s', 's', 'a', 'b', 'c', 's', 's', 's', 's', 's']);
    expect(audio.every((m) => m.length === 160)).toBe(true);
    expect(rtpLink.stats.silenceIn).toBe(7);
  });

  it('reports an RFC 4733 digit once, at its first end packet, whatever the repeats', async () => {
    const { rtpLink, messages, listen, inject } = await setUp();
    listen();
    await inject(dtmfPacket(10, 4000, 5, false, 160, true));
    await inject(dtmfPacket(11, 4000, 5, false, 320));
    expect(messages).toEqual(['start']);
    await inject(dtmfPacket(12, 4000, 5, true, 480));
    expect(messages).toEqual(['start', 'dtmf:5']);
    await inject(dtmfPacket(13, 4000, 5, true, 480));
    await inject(dtmfPacket(14, 4000, 5, true, 480));
    // A new press of the same key has a new timestamp.
    await inject(dtmfPacket(15, 5600, 5, true, 480));
    await inject(dtmfPacket(16, 7200, 11, true, 480));
    expect(messages).toEqual(['start', 'dtmf:5', 'dtmf:5', 'dtmf:#']);
    expect(rtpLink.stats.dtmfIn).toBe(3);
  });

  it('ignores other payload types (comfort noise) without counting them as audio', async () => {
    const { clock, rtpLink, messages, listen, inject } = await setUp();
    listen();
    await inject(rtp({ seq: 1 }));
    await inject(rtp({ seq: 2, pt: 13, payload: new Uint8Array([40]) }));
    await clock.advance(100);
    expect(rtpLink.stats.ignored).toBe(1);
    expect(rtpLink.stats.jitter.received).toBe(1);
    expect(spoken(messages)[0]![0]).toBe(1);
  });

  it('counts malformed datagrams and reports them, and 10 000 random ones neither throw nor stop the call', async () => {
    const { clock, far, rtpLink, errors, inject, local } = await setUp();
    await inject(Uint8Array.from([0x40, 0, 0, 1]));
    await inject(Uint8Array.from([0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]));
    expect(rtpLink.stats.malformed).toBe(2);
    expect(errors).toEqual(['truncated', 'truncated']);
    // xorshift32: every byte value, so some datagrams are valid RTP (audio, DTMF, other types) and go deeper.
    let seed = 2463534242;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      seed >>>= 0;
      return seed & 0xff;
    };
    const source: RemoteInfo = { address: HOST, port: far.port, family: 'IPv4', size: 0 };
    for (let i = 0; i < 10_000; i++) {
      const bytes = Buffer.alloc(random() % 200);
      for (let j = 0; j < bytes.length; j++) bytes[j] = random();
      // Straight into the socket's message event: loopback UDP would drop some of 10 000 datagrams sent at once.
      expect(() => local.emit('message', bytes, { ...source, size: bytes.length })).not.toThrow();
    }
    const s = rtpLink.stats;
    // Every datagram is accounted for: malformed, foreign, ignored, or taken in.
    expect(s.malformed + s.droppedForeign + s.ignored + s.packetsIn).toBe(10_002);
    expect(s.malformed).toBeGreaterThan(7000);
    expect(s.packetsIn).toBeGreaterThan(0);
    expect(s.jitter.received).toBeGreaterThan(0);
    await clock.advance(100);
    expect(rtpLink.link.open).toBe(true);
    expect(rtpLink.stats.packetsOut).toBe(5);
    await until(() => far.packets.length >= 5);
  });

  it('keeps messages while paused (bounded to 2 s of audio) and delivers them on resume', async () => {
    const { clock, rtpLink, link, messages, listen, inject } = await setUp();
    link.pause();
    listen();
    expect(messages).toEqual([]);
    // 3 s of caller audio while nobody reads.
    for (let seq = 1; seq <= 150; seq++) {
      await inject(rtp({ seq }));
      await clock.advance(20);
    }
    expect(messages).toEqual([]);
    link.resume();
    expect(messages[0]).toBe('start');
    const audio = audioMessages(messages);
    expect(audio).toHaveLength(100);
    expect(rtpLink.stats.droppedPending).toBeGreaterThan(40);
    // The newest survive, in order.
    const ids = audio.map((m) => m[0]!);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe((ids[i - 1]! + 1) & 0xff);
  });
});

describe('RTP link: the end of a call', () => {
  it("ends an inactive call: 'stop:rtp-timeout', then onHangup and close", async () => {
    const { clock, local, rtpLink, messages, closes, hangups, listen, inject, closedCalls } = await setUp({ inactivityMs: 1000 });
    listen();
    await clock.advance(600);
    await inject(rtp({ seq: 1 }));
    await clock.advance(900);
    expect(rtpLink.link.open).toBe(true);
    const socketClosed = new Promise((resolve) => local.once('close', resolve));
    await clock.advance(200);
    expect(messages.at(-1)).toBe('stop:rtp-timeout');
    expect(hangups).toEqual(['rtp-timeout']);
    expect(closes).toEqual([false]);
    expect(closedCalls()).toBe(1);
    expect(rtpLink.link.open).toBe(false);
    await socketClosed;
  });

  it('on hold sends nothing and does not time out; resuming sends again, the marker on the first packet', async () => {
    const { clock, far, rtpLink, link, messages, listen } = await setUp({ inactivityMs: 1000 });
    listen();
    await clock.advance(40);
    rtpLink.setHold(true);
    link.send(new Uint8Array(160 * 5));
    await clock.advance(3000);
    expect(messages.some((m) => typeof m === 'string' && m.startsWith('stop'))).toBe(false);
    expect(rtpLink.stats.droppedOnHold).toBe(5);
    rtpLink.setHold(false);
    await clock.advance(40);
    await until(() => far.packets.length >= 4);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(far.packets).toHaveLength(4);
    const [, before, resumed] = far.packets;
    expect(resumed!.marker).toBe(true);
    expect(resumed!.sequenceNumber).toBe((before!.sequenceNumber + 1) & 0xffff);
    // The timestamp went on with real time through the hold.
    expect(resumed!.timestamp).toBe((before!.timestamp + 151 * 160) >>> 0);
    // Resumed: the inactivity clock starts again.
    await clock.advance(1100);
    expect(messages).toContain('stop:rtp-timeout');
  });

  it('a held call whose peer vanished still ends, after the hold timeout counted from the hold', async () => {
    const { clock, rtpLink, messages, listen, hangups } = await setUp({ inactivityMs: 1000, holdTimeoutMs: 5000 });
    listen();
    await clock.advance(900);
    rtpLink.setHold(true);
    await clock.advance(4800);
    expect(messages.some((m) => typeof m === 'string' && m.startsWith('stop'))).toBe(false);
    await clock.advance(300);
    expect(messages).toContain('stop:rtp-timeout');
    expect(hangups).toEqual(['rtp-timeout']);
  });

  it('close (our hang-up) calls onHangup with the reason, closes the socket and stops sending', async () => {
    const { clock, far, local, link, hangups, closes, listen, closedCalls } = await setUp();
    listen();
    await clock.advance(40);
    const socketClosed = new Promise((resolve) => local.once('close', resolve));
    link.close(1000, 'hangup');
    expect(hangups).toEqual(['hangup']);
    expect(closes).toEqual([false]);
    expect(closedCalls()).toBe(1);
    expect(link.open).toBe(false);
    await socketClosed;
    await until(() => far.packets.length >= 2);
    await clock.advance(200);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(far.packets).toHaveLength(2);
    // A listener added late still hears the close.
    const late: boolean[] = [];
    link.onClose((error) => late.push(error));
    await Promise.resolve();
    expect(late).toEqual([false]);
  });

  it("remoteHangup (BYE) delivers 'stop' then closes, without onHangup", async () => {
    const { rtpLink, messages, closes, hangups, listen } = await setUp();
    listen();
    rtpLink.remoteHangup();
    expect(messages).toEqual(['start', 'stop']);
    expect(closes).toEqual([false]);
    expect(hangups).toEqual([]);
    rtpLink.link.close(1000, 'hangup');
    expect(hangups).toEqual([]);
  });

  it("remoteHangup while paused: 'stop' waits, and the close is announced after it", async () => {
    const { rtpLink, link, messages, closes, listen } = await setUp();
    link.pause();
    listen();
    rtpLink.remoteHangup();
    expect(messages).toEqual([]);
    expect(closes).toEqual([]);
    link.resume();
    expect(messages).toEqual(['start', 'stop']);
    expect(closes).toEqual([false]);
  });
});

describe('RTP link + codec + carrier channel (how runCarrierMedia drives a SIP call)', () => {
  it('starts the channel, turns caller RTP into pipeline frames and DTMF, sends played frames as paced RTP, and ends on BYE', async () => {
    const { resamplers } = await audioRuntime();
    const { clock, far, rtpLink, link, inject } = await setUp();
    // runCarrierMedia pauses the link while it claims the call, then builds the channel and resumes.
    link.pause();
    const carrier = createCarrierChannel({ id: 'ctx', codec: createRtpCarrierCodec({ codec: 'PCMU', streamId: 'call-id', callId: 'call-id' }), link, resamplers });
    link.resume();
    const started = await carrier.started;
    expect(started).toMatchObject({ streamId: 'call-id', callId: 'call-id' });
    expect(carrier.formats.input).toEqual(MULAW_8K);
    const frames: AudioFrame[] = [];
    const digits: string[] = [];
    const closes: string[] = [];
    carrier.channel.start({ onAudio: (frame) => frames.push(frame), onDtmf: (digit) => digits.push(digit), onMark: () => undefined, onClose: (reason) => closes.push(reason) });
    for (let seq = 1; seq <= 10; seq++) {
      await inject(rtp({ seq, fill: 0x80 }));
      await clock.advance(20);
    }
    await inject(dtmfPacket(11, 9000, 3, true, 480, true));
    await clock.advance(100);
    expect(frames.length).toBeGreaterThanOrEqual(10);
    expect(frames.every((f) => f.format.encoding === PIPELINE_FORMAT.encoding && f.data.length === 640)).toBe(true);
    expect(digits).toEqual(['3']);
    expect(carrier.stats.protocolErrors).toBe(0);
    // The engine plays a frame in the channel's format: it goes out in the next tick's packet.
    carrier.channel.play({ format: MULAW_8K, data: new Uint8Array(160).fill(0x42) });
    await clock.advance(20);
    await until(() => far.packets.some((p) => p.payload[0] === 0x42));
    rtpLink.remoteHangup();
    expect(closes).toEqual(['caller-hangup']);
  });
});
