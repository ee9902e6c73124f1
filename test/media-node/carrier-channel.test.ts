import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createCarrierChannel } from '../../media-node/channels/carrier-channel';
import { wsCarrierLink } from '../../media-node/channels/ws-link';
import type { WebSocket } from 'ws';
import { twilioCarrierCodec } from '../../shared/telephony/twilio';
import { audioRuntime } from '../fakes/call';

/** Just enough of a `ws` socket: the channel listens for message/close/error. */
function fakeSocket() {
  const socket = Object.assign(new EventEmitter(), { OPEN: 1, CONNECTING: 0, readyState: 1, bufferedAmount: 0, send: () => undefined, close: () => undefined, pause: () => undefined, resume: () => undefined });
  return socket;
}

const STREAM_SID = `MZ${'1'.repeat(32)}`;
const CALL_SID = `CA${'2'.repeat(32)}`;
const message = (body: Record<string, unknown>) => Buffer.from(JSON.stringify(body));

describe('carrier channel', () => {
  it('a carrier that hangs up while the call is starting ends the call as soon as it starts', async () => {
    const { resamplers } = await audioRuntime();
    for (const sendsStop of [true, false]) {
      const socket = fakeSocket();
      const carrier = createCarrierChannel({ id: 'ctx', codec: twilioCarrierCodec, link: wsCarrierLink(socket as unknown as WebSocket), resamplers });
      socket.emit('message', message({ event: 'connected', protocol: 'Call', version: '1.0.0' }), false);
      socket.emit('message', message({ event: 'start', sequenceNumber: '1', streamSid: STREAM_SID, start: { streamSid: STREAM_SID, callSid: CALL_SID, accountSid: `AC${'3'.repeat(32)}`, tracks: ['inbound'], customParameters: {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } }), false);
      await carrier.started;
      if (sendsStop) socket.emit('message', message({ event: 'stop', sequenceNumber: '2', streamSid: STREAM_SID, stop: { callSid: CALL_SID } }), false);
      socket.emit('close', 1000, Buffer.from(''));

      const closes: string[] = [];
      carrier.channel.start({ onAudio: () => undefined, onDtmf: () => undefined, onMark: () => undefined, onClose: (reason) => closes.push(reason) });
      expect(closes).toEqual([sendsStop ? 'caller-hangup' : 'carrier-closed']);
    }
  });

  it('holds caller audio that arrives before the engine starts, bounded: the newest 100 messages, the rest counted', async () => {
    const { resamplers } = await audioRuntime();
    const socket = fakeSocket();
    const carrier = createCarrierChannel({ id: 'ctx', codec: twilioCarrierCodec, link: wsCarrierLink(socket as unknown as WebSocket), resamplers });
    socket.emit('message', message({ event: 'start', sequenceNumber: '1', streamSid: STREAM_SID, start: { streamSid: STREAM_SID, callSid: CALL_SID, accountSid: `AC${'3'.repeat(32)}`, tracks: ['inbound'], customParameters: {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } }), false);
    await carrier.started;
    const payload = Buffer.alloc(160, 0xff).toString('base64');
    for (let i = 0; i < 150; i++) {
      socket.emit('message', message({ event: 'media', sequenceNumber: String(i + 2), streamSid: STREAM_SID, media: { track: 'inbound', chunk: String(i + 1), timestamp: String(i * 20), payload } }), false);
    }
    let frames = 0;
    carrier.channel.start({ onAudio: () => frames++, onDtmf: () => undefined, onMark: () => undefined, onClose: () => undefined });
    expect(carrier.stats.droppedEarly).toBe(50);
    expect(frames).toBe(100); // each 20 ms μ-law message becomes one 20 ms pipeline frame
  });
  it('frames after the caller hung up are ignored (no audio decoded, nothing thrown out of the socket handler)', async () => {
    const { resamplers } = await audioRuntime();
    const socket = fakeSocket();
    const carrier = createCarrierChannel({ id: 'ctx', codec: twilioCarrierCodec, link: wsCarrierLink(socket as unknown as WebSocket), resamplers });
    socket.emit('message', message({ event: 'start', sequenceNumber: '1', streamSid: STREAM_SID, start: { streamSid: STREAM_SID, callSid: CALL_SID, accountSid: `AC${'3'.repeat(32)}`, tracks: ['inbound'], customParameters: {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } }), false);
    await carrier.started;
    let frames = 0;
    const closes: string[] = [];
    carrier.channel.start({ onAudio: () => frames++, onDtmf: () => undefined, onMark: () => undefined, onClose: (reason) => closes.push(reason) });
    const payload = Buffer.alloc(160, 0xff).toString('base64');
    const media = (n: number) => message({ event: 'media', sequenceNumber: String(n), streamSid: STREAM_SID, media: { track: 'inbound', chunk: String(n), timestamp: String(n * 20), payload } });
    socket.emit('message', media(2), false);
    expect(frames).toBe(1);
    socket.emit('message', message({ event: 'stop', sequenceNumber: '3', streamSid: STREAM_SID, stop: { callSid: CALL_SID } }), false);
    expect(closes).toEqual(['caller-hangup']);
    // Before the fix this threw AUDIO_CONVERTER_DESTROYED out of the socket's message handler (a process crash).
    expect(() => socket.emit('message', media(4), false)).not.toThrow();
    expect(frames).toBe(1);
  });
});
