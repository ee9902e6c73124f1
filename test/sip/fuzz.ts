import { createSocket } from 'node:dgram';
import { prng } from '../fakes/prng';
import type { RtpCaller } from '../fakes/rtp-caller';

const INVITE = [
  'INVITE sip:+19990000001@127.0.0.1 SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-fuzz-%B;rport',
  'From: <sip:fuzz@127.0.0.1>;tag=%T',
  'To: <sip:+19990000001@127.0.0.1>',
  'Call-ID: fuzz-%B',
  'CSeq: 1 INVITE',
  'Contact: <sip:fuzz@127.0.0.1:5999>',
  'Max-Forwards: 70',
  'Content-Type: application/sdp',
  'Content-Length: %L',
  '',
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n',
].join('\r\n');

/**
 * Malformed SIP (to a number nobody has: a mutation that still parses gets a 404, never a call): random bytes, truncations and byte flips of a valid INVITE (with the body's length kept
 * wrong or right), broken start lines, header floods, oversized datagrams. Sent from a socket that answers
 * nothing, paced in bursts so the kernel's buffers do not simply drop them. Returns how many were sent.
 */
export async function fuzzSip(port: number, count: number, seed: number): Promise<number> {
  const random = prng(seed);
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const int = (n: number) => Math.floor(random() * n);
  const valid = (i: number) => {
    const body = INVITE.split('\r\n\r\n')[1]!;
    return INVITE.replace(/%B/g, `${seed}-${i}`).replace('%T', String(i)).replace('%L', String(body.length));
  };
  const cases: ((i: number) => Uint8Array)[] = [
    () => Uint8Array.from({ length: 1 + int(1500) }, () => int(256)),
    (i) => new TextEncoder().encode(valid(i).slice(0, int(valid(i).length))),
    (i) => {
      const bytes = new TextEncoder().encode(valid(i));
      for (let k = 0; k < 1 + int(8); k++) bytes[int(bytes.length)] = int(256);
      return bytes;
    },
    (i) => new TextEncoder().encode(valid(i).replace('SIP/2.0\r\n', ['SIP/3.0\r\n', '\r\n', 'SIP/2.0 extra\r\n', ''][int(4)]!)),
    (i) => new TextEncoder().encode(valid(i).replace('Content-Length: ', `Content-Length: ${int(2) ? '-' : '99999'}`)),
    (i) => new TextEncoder().encode(valid(i).replace('CSeq: 1 INVITE', ['CSeq: x INVITE', 'CSeq: 1 BYE', 'CSeq: 99999999999 INVITE', ''][int(4)]!)),
    (i) => new TextEncoder().encode(valid(i).replace('Max-Forwards: 70', Array.from({ length: 200 }, (_, k) => `X-H${k}: ${k}`).join('\r\n'))),
    () => new Uint8Array(70_000).fill(65),
    (i) => new TextEncoder().encode(`${['BYE', 'CANCEL', 'ACK', 'NOTIFY', 'REFER', 'FOO'][int(6)]} sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK${i}\r\nCall-ID: ${i}\r\nCSeq: 1 FOO\r\n\r\n`),
    () => new TextEncoder().encode(`SIP/2.0 ${int(700)} Whatever\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nCall-ID: stray\r\n\r\n`),
  ];
  let sent = 0;
  for (let i = 0; i < count; i++) {
    socket.send(cases[i % cases.length]!(i), port, '127.0.0.1');
    sent++;
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 15));
  }
  await new Promise((r) => setTimeout(r, 100));
  await new Promise<void>((r) => socket.close(() => r()));
  return sent;
}

/** Malformed RTP to a live call's port, from the caller's own (latched) socket: short, wrong version, bad lengths, foreign PTs. */
export async function fuzzRtp(caller: RtpCaller, count: number, seed: number): Promise<number> {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const cases: (() => Uint8Array)[] = [
    () => Uint8Array.from({ length: int(12) }, () => int(256)),
    () => Uint8Array.from({ length: 12 + int(300) }, () => int(256)),
    () => Uint8Array.from([0x40, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, ...new Uint8Array(160)]), // version 1
    () => Uint8Array.from([0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]), // 15 CSRCs, none there
    () => Uint8Array.from([0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0xff, 0xff]), // extension longer than the packet
    () => Uint8Array.from([0xa0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 200]), // padding longer than the payload
    () => Uint8Array.from([0x80, 101, 0, int(256), 0, 0, 0, 1, 0, 0, 0, 1, 1, 2]), // telephone-event too short
    () => Uint8Array.from([0x80, 0x60 + int(20), 0, int(256), 0, 0, 0, 1, 0, 0, 0, 1, ...new Uint8Array(160)]), // other PTs
  ];
  for (let i = 0; i < count; i++) {
    caller.sendRaw(cases[i % cases.length]!());
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 15));
  }
  return count;
}
