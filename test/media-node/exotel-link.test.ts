import { describe, expect, it } from 'vitest';
import { connectExotel } from '../../media-node/channels/exotel-link';
import type { CarrierLink } from '../../shared/telephony/carrier';

/** A CarrierLink that records what is sent and lets the test play the carrier's messages. */
function fakeLink() {
  const sent: (string | Uint8Array)[] = [];
  let deliver: (message: string | Uint8Array) => void = () => undefined;
  let open = true;
  const link: CarrierLink = {
    onMessage: (listener) => (deliver = listener),
    onClose: () => undefined,
    send: (payload) => void sent.push(payload),
    close: () => void (open = false),
    get open() {
      return open;
    },
    bufferedAmount: () => 0,
    pause: () => undefined,
    resume: () => undefined,
  };
  return { link, sent, receive: (message: string) => deliver(message) };
}

const START = JSON.stringify({
  event: 'start',
  sequence_number: '1',
  stream_sid: 'MZ9',
  start: { stream_sid: 'MZ9', call_sid: 'CA9', media_format: { encoding: 'audio/x-raw', sample_rate: '8000', bit_rate: '16' } },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const parsed = (sent: (string | Uint8Array)[]) => sent.map((p) => JSON.parse(p as string) as { event: string; media?: { payload: string }; mark?: { name: string } });
const payloadBytes = (m: { media?: { payload: string } }) => Buffer.from(m.media!.payload, 'base64').length;

describe('the Exotel link (chunking over time)', () => {
  it('sends a valid chunk as soon as one is full, and flushes the padded rest with its mark when the frames stop', async () => {
    const fake = fakeLink();
    const { codec, link } = connectExotel(fake.link, { idleFlushMs: 30 });
    link.onMessage((message) => codec.decode(message));
    fake.receive(START);
    for (let i = 0; i < 11; i++) link.send(codec.encodeMedia('MZ9', new Uint8Array(320).fill(1)) as Uint8Array);
    link.send(codec.encodeMark('MZ9', 'end')!);
    let messages = parsed(fake.sent);
    expect(messages.map((m) => m.event)).toEqual(['media']);
    expect(payloadBytes(messages[0]!)).toBe(3200);
    await sleep(80);
    messages = parsed(fake.sent);
    expect(messages.map((m) => m.event)).toEqual(['media', 'media', 'mark']);
    expect(payloadBytes(messages[1]!)).toBe(3200);
    const tail = Buffer.from(messages[1]!.media!.payload, 'base64');
    expect(tail[319]).toBe(1);
    expect(tail[320]).toBe(0); // PCM silence after the real audio
  });

  it('a clear drops what was held (and the marks behind it); closing flushes the rest first', async () => {
    const fake = fakeLink();
    const { codec, link } = connectExotel(fake.link, { idleFlushMs: 30 });
    link.onMessage((message) => codec.decode(message));
    fake.receive(START);
    link.send(new Uint8Array(640));
    link.send(codec.encodeMark('MZ9', 'dropped')!);
    link.send(codec.encodeClear('MZ9')!);
    await sleep(60);
    expect(parsed(fake.sent).map((m) => m.event)).toEqual(['clear']);
    link.send(new Uint8Array(640));
    link.close(1000, 'hangup');
    expect(parsed(fake.sent).map((m) => m.event)).toEqual(['clear', 'media']);
    expect(fake.link.open).toBe(false);
  });
});
