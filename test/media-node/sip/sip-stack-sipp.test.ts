import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSipStack } from '../../../media-node/sip/sip-stack';
import { bindUdpTransport } from '../../../media-node/sip/udp-transport';

/** The SIP stack against sipp 3.6's built-in scenarios (`-sn uac`, `-sn uas`) on loopback. */

const SIPP = '/usr/bin/sipp';
const ANSWER = 'v=0\r\no=- 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
const OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

function runSipp(args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SIPP, [...args, '-nostdin', '-timeout', '20s', '-timeout_error'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000); });
    child.stderr.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(onInvite: Parameters<typeof createSipStack>[0]['onInvite']) {
  const transport = await bindUdpTransport({ host: '127.0.0.1', port: 0 });
  const stack = createSipStack({ transport, publicHost: '127.0.0.1', publicPort: transport.localPort, timers: { t1Ms: 100, t2Ms: 400, t4Ms: 500 }, onInvite });
  const dir = await mkdtemp(join(tmpdir(), 'sipp-'));
  cleanups.push(async () => {
    await stack.close();
    await transport.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { transport, stack, dir };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('SIP stack with sipp', () => {
  it('as UAS: sipp -sn uac calls, we answer with SDP, sipp ACKs and BYEs, exits 0, no dialog left', async () => {
    const ended: string[] = [];
    const { transport, stack, dir } = await setup((invite) => {
      invite.progress(180);
      const dialog = invite.accept(ANSWER);
      dialog.onTerminated((reason) => ended.push(reason));
    });
    const result = await runSipp(['-sn', 'uac', '-m', '1', '-s', 'service', `127.0.0.1:${transport.localPort}`, '-i', '127.0.0.1', '-p', String(await freeUdpPort())], dir);
    expect(result.code, result.output).toBe(0);
    expect(ended).toEqual(['bye-received']);
    expect(stack.dialogCount).toBe(0);
    expect(stack.stats.malformed).toBe(0);
  });

  it('as UAC: stack.invite() to sipp -sn uas, then bye(); sipp exits 0', async () => {
    const { stack, dir } = await setup(() => undefined);
    const sippPort = await freeUdpPort();
    const sipp = runSipp(['-sn', 'uas', '-m', '1', '-i', '127.0.0.1', '-p', String(sippPort)], dir);
    // sipp needs a moment to bind; Timer A retransmits the INVITE if it was not ready.
    const outcome = await stack.invite({
      requestUri: `sip:service@127.0.0.1:${sippPort}`,
      destination: { address: '127.0.0.1', port: sippPort },
      from: 'sip:agent@127.0.0.1',
      to: `sip:service@127.0.0.1:${sippPort}`,
      sdp: OFFER,
    });
    if (!outcome.ok) throw new Error(`sipp refused: ${outcome.status} ${outcome.reason}`);
    expect(outcome.response.status).toBe(200);
    expect(outcome.sdp).toContain('m=audio');
    expect(stack.dialogCount).toBe(1);
    await outcome.dialog.bye();
    const result = await sipp;
    expect(result.code, result.output).toBe(0);
    expect(stack.dialogCount).toBe(0);
    await until(() => stack.transactionCount === 0, 2000);
  });
});
