import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createRtpPortPool, type RtpPort } from '../../../media-node/sip/rtp-ports';

const HOST = '127.0.0.1';
/** A random even base, so parallel test runs rarely collide (a collision is skipped like any foreign port). */
const base = () => 40_000 + 2 * Math.floor(Math.random() * 9_000);

const open: RtpPort[] = [];
const foreign: Socket[] = [];
afterEach(() => {
  for (const port of open.splice(0)) port.release();
  for (const socket of foreign.splice(0)) socket.close();
});

async function take(pool: ReturnType<typeof createRtpPortPool>): Promise<RtpPort | undefined> {
  const port = await pool.allocate();
  if (port) open.push(port);
  return port;
}

function bindForeign(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, HOST, () => {
      foreign.push(socket);
      resolve();
    });
  });
}

describe('RTP port pool', () => {
  it('binds UDP sockets on distinct even ports of the range, and says how many are in use', async () => {
    const min = base();
    const pool = createRtpPortPool({ host: HOST, min: min + 1, max: min + 8 });
    // min+1 is odd: the first even port is min+2; min+2..min+8 holds 4 even ports.
    expect(pool.capacity).toBe(4);
    const ports = [await take(pool), await take(pool), await take(pool)];
    const numbers = ports.map((p) => p!.port);
    expect(new Set(numbers).size).toBe(3);
    for (const n of numbers) {
      expect(n % 2).toBe(0);
      expect(n).toBeGreaterThanOrEqual(min + 2);
      expect(n).toBeLessThanOrEqual(min + 8);
    }
    expect(ports.map((p) => p!.socket.address().port)).toEqual(numbers);
    expect(ports[0]!.socket.address().address).toBe(HOST);
    expect(pool.inUse).toBe(3);
  });

  it('skips a port another process holds, and returns undefined when the range is exhausted', async () => {
    const min = base();
    await bindForeign(min + 2);
    const pool = createRtpPortPool({ host: HOST, min, max: min + 4 });
    const a = await take(pool);
    const b = await take(pool);
    expect([a!.port, b!.port].sort()).toEqual([min, min + 4]);
    expect(await pool.allocate()).toBeUndefined();
    expect(pool.inUse).toBe(2);
  });

  it('frees a port on release (idempotent) or when its socket closes, and hands out the least recently used one first', async () => {
    const min = base();
    const pool = createRtpPortPool({ host: HOST, min, max: min + 4 });
    const a = (await take(pool))!;
    const b = (await take(pool))!;
    a.release();
    a.release();
    expect(pool.inUse).toBe(1);
    // The round-robin goes on to the third port before coming back to the one just released.
    const c = (await take(pool))!;
    expect(c.port).toBe(min + 4);
    const closed = new Promise((resolve) => b.socket.once('close', resolve));
    b.socket.close();
    await closed;
    expect(pool.inUse).toBe(1);
    b.release();
    const again = await take(pool);
    expect(again).toBeDefined();
    expect(pool.inUse).toBe(2);
  });

  it('gives concurrent allocations distinct ports', async () => {
    const min = base();
    const pool = createRtpPortPool({ host: HOST, min, max: min + 10 });
    const ports = await Promise.all(Array.from({ length: 6 }, () => take(pool)));
    expect(new Set(ports.map((p) => p!.port)).size).toBe(6);
    expect(await pool.allocate()).toBeUndefined();
  });

  it('refuses a range without an even port above 1023', () => {
    expect(() => createRtpPortPool({ host: HOST, min: 40_001, max: 40_001 })).toThrow(/RTP port range/);
    expect(() => createRtpPortPool({ host: HOST, min: 100, max: 200 })).toThrow(/RTP_PORT_MIN/);
  });
});
