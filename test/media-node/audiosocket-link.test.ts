import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAudioSocketLink } from '../../media-node/channels/audiosocket-link';
import { createAudioSocketSplitter, encodeAudioSocketAudio } from '../../shared/telephony/audiosocket';
import { createFakeClock } from '../fakes/clock';

/** Just enough of a net.Socket: what the link writes, and whether it reads. */
function fakeSocket() {
  const written: { atMs: number; bytes: Uint8Array }[] = [];
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    writable: true,
    writableLength: 0,
    reading: false,
    ended: false,
    now: (): number => 0,
    write(bytes: Uint8Array) {
      written.push({ atMs: socket.now(), bytes });
      return true;
    },
    end(bytes?: Uint8Array) {
      if (bytes) written.push({ atMs: socket.now(), bytes });
      socket.ended = true;
      socket.writable = false;
    },
    destroy() {
      socket.destroyed = true;
    },
    pause() {
      socket.reading = false;
    },
    resume() {
      socket.reading = true;
    },
  });
  return { socket, written };
}

const frame20ms = (fill: number) => encodeAudioSocketAudio(8000, new Uint8Array(320).fill(fill))!;

function setUp() {
  const clock = createFakeClock(1000);
  const { socket, written } = fakeSocket();
  socket.now = () => clock.now();
  const framingErrors: string[] = [];
  const paced = createAudioSocketLink(socket as unknown as Socket, {
    splitter: createAudioSocketSplitter({ maxPayloadBytes: 1000 }),
    initialFrames: [Uint8Array.from([0x01, 0, 16, ...new Uint8Array(16)])],
    clock,
    onFramingError: (error) => framingErrors.push(error.message),
  });
  return { clock, socket, written, paced, framingErrors };
}

describe('AudioSocket link', () => {
  it('writes audio in real time at most two frames ahead, holding the rest', async () => {
    const { clock, written, paced } = setUp();
    for (let i = 0; i < 10; i++) paced.link.send(frame20ms(i));
    // Two frames go at once (40 ms in Asterisk's hands), the other eight wait.
    expect(written.map((w) => w.bytes[3])).toEqual([0, 1]);
    expect(paced.heldMs).toBe(160);
    await clock.advance(20);
    expect(written.length).toBe(3);
    await clock.advance(100);
    expect(written.length).toBe(8);
    // Never more than 40 ms ahead of real time: frame k is written no earlier than (k - 2) × 20 ms after the first.
    written.forEach((w, k) => expect(w.atMs - 1000).toBeGreaterThanOrEqual((k - 1) * 20 - 20));
    await clock.advance(1000);
    expect(written.map((w) => w.bytes[3])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(paced.stats.framesWritten).toBe(10);
  });

  it('a barge-in drops what is held: nothing more is written after it', async () => {
    const { clock, written, paced } = setUp();
    for (let i = 0; i < 10; i++) paced.link.send(frame20ms(i));
    await clock.advance(40);
    const before = written.length;
    paced.dropHeld();
    await clock.advance(500);
    expect(written.length).toBe(before);
    expect(paced.stats.framesDroppedOnClear).toBe(10 - before);
    // The next turn's audio starts at once.
    paced.link.send(frame20ms(42));
    expect(written.at(-1)!.bytes[3]).toBe(42);
  });

  it('holds at most two seconds of audio: beyond it frames are dropped and counted; empty payloads are never written', async () => {
    const { written, paced } = setUp();
    for (let i = 0; i < 110; i++) paced.link.send(frame20ms(i));
    paced.link.send(new Uint8Array(0));
    expect(written.length + paced.heldMs / 20).toBe(102);
    expect(paced.stats.framesDroppedFull).toBe(8);
  });

  it('closing writes the hang-up frame (held audio dropped) and ends the connection; sends after it are ignored', async () => {
    const { written, paced, socket } = setUp();
    for (let i = 0; i < 5; i++) paced.link.send(frame20ms(i));
    paced.link.close(1000, 'hangup');
    expect(Array.from(written.at(-1)!.bytes)).toEqual([0, 0, 0]);
    expect(written.length).toBe(3);
    expect(socket.ended).toBe(true);
    expect(paced.link.open).toBe(false);
    paced.link.send(frame20ms(9));
    paced.link.close(1000, 'again');
    expect(written.length).toBe(3);
  });

  it('delivers frames (the handshake ones first) only while someone listens and reading is not paused', () => {
    const { socket, paced } = setUp();
    const got: number[] = [];
    paced.link.pause();
    paced.link.onMessage((m) => got.push((m as Uint8Array)[0]!));
    expect(got).toEqual([]);
    expect(socket.reading).toBe(false);
    paced.link.resume();
    expect(got).toEqual([0x01]);
    expect(socket.reading).toBe(true);
    // A frame cut inside its header across two reads arrives once, whole.
    socket.emit('data', Buffer.from([0x03, 0x00]));
    socket.emit('data', Buffer.from([0x01, 0x31, 0x00, 0x00, 0x00]));
    expect(got).toEqual([0x01, 0x03, 0x00]);
  });

  it('a stream that cannot be framed is reported and hung up; the close reaches the listeners once', () => {
    const { socket, paced, written, framingErrors } = setUp();
    const closes: boolean[] = [];
    paced.link.onMessage(() => undefined);
    paced.link.onClose((error) => closes.push(error));
    socket.emit('data', Buffer.from([0x10, 0xff, 0xff]));
    expect(framingErrors).toHaveLength(1);
    expect(Array.from(written.at(-1)!.bytes)).toEqual([0, 0, 0]);
    socket.emit('close', false);
    socket.emit('close', false);
    expect(closes).toEqual([false]);
  });
});
