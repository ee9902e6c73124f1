import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startAudioSocketServer, type AudioSocketServer } from '../../media-node/channels/audiosocket-server';
import type { CarrierMedia } from '../../media-node/channels/carriers';
import type { CarrierLink } from '../../shared/telephony/carrier';
import { tlv, uuidBytes } from '../fakes/audiosocket-peer';

/** The listener's handshake on its own: the call loop is a recorder. */
describe('AudioSocket listener handshake', () => {
  let server: AudioSocketServer | undefined;
  afterEach(async () => {
    await server?.close(100);
    server = undefined;
  });

  async function listen(options: { formatWaitMs?: number; uuidTimeoutMs?: number } = {}) {
    const runs: { media: CarrierMedia; contextId: string; link: CarrierLink; messages: Uint8Array[] }[] = [];
    const errors: string[] = [];
    server = await startAudioSocketServer({
      port: 0,
      host: '127.0.0.1',
      ...options,
      onProtocolError: (code) => errors.push(code),
      async run(media, contextId, link) {
        const run = { media, contextId, link, messages: [] as Uint8Array[] };
        runs.push(run);
        link.onMessage((m) => run.messages.push(m as Uint8Array));
      },
    });
    return { runs, errors, port: server.port };
  }

  async function client(port: number) {
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    const received: number[] = [];
    socket.on('data', (d: Buffer) => received.push(...d));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await new Promise((r) => socket.once('connect', r));
    return { socket, received, closed };
  }

  const until = async (predicate: () => boolean, ms = 3000) => {
    const end = Date.now() + ms;
    while (!predicate() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return predicate();
  };

  const uuid = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';

  it('starts the call at the rate of the first audio frame, delivering the handshake frames first and in order', async () => {
    const { runs, port } = await listen();
    const c = await client(port);
    c.socket.write(tlv(0x01, uuidBytes(uuid)));
    c.socket.write(tlv(0x03, [0x37]));
    c.socket.write(tlv(0x13, new Uint8Array(960)));
    expect(await until(() => runs.length === 1 && runs[0]!.messages.length === 3)).toBe(true);
    const run = runs[0]!;
    expect(run.contextId).toBe(uuid);
    expect(run.media.provider).toBe('asterisk');
    expect(run.media.outputFormat).toEqual({ encoding: 'pcm16', sampleRateHz: 24000 });
    const codec = run.media.codec();
    expect(codec.decode(run.messages[0]!)).toMatchObject({ type: 'start', format: { output: { sampleRateHz: 24000 } } });
    expect(run.messages.map((m) => m[0])).toEqual([0x01, 0x03, 0x13]);
    c.socket.destroy();
  });

  it('without audio in the format wait, the call runs at slin 8 kHz', async () => {
    const { runs, port } = await listen({ formatWaitMs: 100 });
    const c = await client(port);
    c.socket.write(tlv(0x01, uuidBytes(uuid)));
    expect(await until(() => runs.length === 1)).toBe(true);
    expect(runs[0]!.media.outputFormat).toEqual({ encoding: 'pcm16', sampleRateHz: 8000 });
    c.socket.destroy();
  });

  it('a connection that never sends its UUID, or starts with something else, gets the hang-up frame and is closed', async () => {
    const { runs, errors, port } = await listen({ uuidTimeoutMs: 200 });
    const silent = await client(port);
    await silent.closed;
    expect(silent.received).toEqual([0, 0, 0]);
    const wrong = await client(port);
    wrong.socket.write(tlv(0x03, [0x31]));
    await wrong.closed;
    expect(wrong.received).toEqual([0, 0, 0]);
    expect(runs).toHaveLength(0);
    expect(errors).toEqual(['invalid-message']);
  });

  it('closing the listener hangs up the calls still connected', async () => {
    const { runs, port } = await listen();
    const c = await client(port);
    c.socket.write(tlv(0x01, uuidBytes(uuid)));
    c.socket.write(tlv(0x10, new Uint8Array(320)));
    expect(await until(() => runs.length === 1)).toBe(true);
    await server!.close(500);
    server = undefined;
    await c.closed;
    expect(c.received).toEqual([0, 0, 0]);
  });
});
