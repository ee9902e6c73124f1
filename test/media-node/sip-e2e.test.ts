import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { MULAW_8K } from '../../shared/audio/format';
import { systemClock } from '../../shared/contracts/clock';
import type { ChatMessage, ToolCall } from '../../shared/contracts/llm';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { createFakeLlm, lastUserText, type ScriptedReply } from '../fakes/llm';
import { phoneAssistant } from '../fakes/phone';
import { createRtpCaller, type RtpCaller } from '../fakes/rtp-caller';
import { createFakeStt } from '../fakes/stt';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';
import { createFakeTts } from '../fakes/tts';
import { runSipp, startSipp } from '../sip/sipp';
import { nodeVariants } from './node-variants';
import { waitFor } from './twilio-helpers';

// Direct SIP end to end: sipp drives the signalling, a UDP socket owned by the test is the caller's RTP endpoint
// (named in sipp's SDP), so the runtime's symmetric RTP latches onto it; what comes back is decoded into words.

const TRANSFER: ToolCall = { id: 'call-transfer', name: 'transfer_call', arguments: '{}' };
const NUMBER = '+14155550123';
const DIGEST_NUMBER = '+14155550124';
const IDLE_NUMBER = '+14155550125';
const TRANSFER_NUMBER = '+14155550126';

function reply(messages: readonly ChatMessage[]): ScriptedReply {
  const said = lastUserText(messages);
  if (messages.at(-1)?.role === 'tool') return '';
  if (said.includes('pressed the keys: 42')) return 'thanks';
  if (said.includes('weather')) return 'it is sunny';
  if (said.includes('wait here')) return { text: 'sure', toolCalls: [TRANSFER] };
  return 'okay sure';
}

const words = (caller: RtpCaller, from = 0) => decodeWords(caller.receivedPcm(from), 8000);
const heard = (caller: RtpCaller, from = 0) => words(caller, from).join(' ');
const say = (caller: RtpCaller, text: string) => caller.sendSpeech(synthesizeWords(splitWords(text), 8000).pcm);

/** A phone sends RTP all the time (silence between words); the caller's sends are queued, so speech goes in between. */
async function withLiveCaller<T>(run: (caller: RtpCaller) => Promise<T>): Promise<T> {
  const caller = await createRtpCaller();
  let live = true;
  const silence = (async () => {
    while (live) await caller.sendSilence(100).catch(() => new Promise((r) => setTimeout(r, 20)));
  })();
  try {
    return await run(caller);
  } finally {
    live = false;
    await silence;
    await caller.close();
  }
}

describe.each(nodeVariants().slice(-1))('direct SIP on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let target: string;
  let apiKey: string;
  let projectId: string;
  let cleanup: (() => Promise<void>) | undefined;
  const assistantIds: Record<string, string> = {};

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const contextsByCallee = async (number: string) => {
    const rows = await node.db.query<{ id: string; status: string; call_status: string; channel_id: string | null }>(
      'SELECT id, status, call_status, channel_id FROM call_contexts WHERE callee = $1 ORDER BY created_at',
      [number],
    );
    return rows;
  };
  const settled = async () => {
    expect(await waitFor(() => server.sip!.dialogCount === 0, 15_000), `dialogs left: ${server.sip!.dialogCount}`).toBe(true);
    expect(await waitFor(() => server.sip!.rtpPortsInUse === 0, 5000), `RTP ports left: ${server.sip!.rtpPortsInUse}`).toBe(true);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sip-e2e-'));
    const prepared = await variant.prepare();
    cleanup = prepared.cleanup;
    // PORT=0 gives SIP a random UDP port too; a range of RTP ports of this suite's own.
    node = await startNode(
      parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', AUDIOSOCKET_PORT: 'off', RTP_PORT_MIN: '21000', RTP_PORT_MAX: '21399', SIP_RTP_TIMEOUT_MS: '5000', ...prepared.env }),
    );
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registry.stt.register(createFakeStt({ clock: systemClock, latencyMs: 30 }).stt);
    registry.llm.register(createFakeLlm({ clock: systemClock, firstTokenDelayMs: 100, tokenDelayMs: 20, reply }).llm);
    registry.tts.register(createFakeTts({ clock: systemClock, formats: [MULAW_8K], firstAudioDelayMs: 50, realTimeFactor: 0.2 }).tts);
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, sip: { timers: { t1Ms: 100, t2Ms: 400, t4Ms: 500 }, resolveHost: async () => '127.0.0.1', answerDelayMs: 500 } });
    expect(server.sip).toBeDefined();
    target = `127.0.0.1:${server.sip!.port}`;

    const admin = node.generatedAdminKey!;
    const created = await (
      await fetch(`${server.url}/v1/projects`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ name: 'SIP E2E' }) })
    ).json();
    apiKey = created.apiKey.key as string;
    projectId = created.project.id as string;
    const assistant = async (name: string, extra: Record<string, unknown> = {}) =>
      (await api('POST', '/v1/assistants', { ...phoneAssistant({ name, prompt: 'You answer the phone.', greeting: 'hello welcome' }), output: { leadMs: 300 }, ...extra })).body.id as string;
    assistantIds.chat = await assistant('SIP bot');
    assistantIds.idle = await assistant('SIP idle bot', { idle: { timeoutMs: 1000, maxReprompts: 0, reprompts: ['are you still there'], hangupMessage: 'thanks goodbye' } });
    assistantIds.transfer = await assistant('SIP transfer bot', {
      tools: [{ name: 'transfer_call', action: { type: 'transfer_call', to: '+15551230000', announcement: 'okay wait here' } }],
    });

    expect((await api('PUT', '/v1/credentials/pbx-auth', { provider: 'sip', username: 'pbx', password: 'pbx-secret-password' })).status).toBeLessThan(300);
    expect((await api('PUT', '/v1/sip/trunks/local', { inbound: { allowedAddresses: ['127.0.0.1/32'] }, outbound: { host: '127.0.0.1', port: 5999 } })).status).toBeLessThan(300);
    expect((await api('PUT', '/v1/sip/trunks/pbx', { inbound: { digest: { credential: 'pbx-auth', challenge: 401, realm: 'voice' } } })).status).toBeLessThan(300);
    expect((await api('PUT', `/v1/assistants/${assistantIds.chat}/numbers`, { numbers: [NUMBER, { number: DIGEST_NUMBER, trunk: 'pbx' }] })).status).toBe(200);
    expect((await api('PUT', `/v1/assistants/${assistantIds.idle}/numbers`, { numbers: [IDLE_NUMBER] })).status).toBe(200);
    expect((await api('PUT', `/v1/assistants/${assistantIds.transfer}/numbers`, { numbers: [TRANSFER_NUMBER] })).status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('a call: greeting over paced RTP, an answer to speech, RFC 4733 DTMF, BYE from the caller; the call is recorded', async () => {
    await withLiveCaller(async (caller) => {
      const sipp = await startSipp({ scenario: 'uac-call-caller-hangs-up.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port), call_ms: '9000' }, timeoutMs: 30_000 });
      await caller.waitFor(() => heard(caller) === 'hello welcome', 10_000, 'the greeting');
      // What we sent: one SSRC, PCMU, seq +1 and timestamp +160 per packet, paced at 20 ms from a monotonic clock.
      const packets = caller.received.slice(0, 100);
      expect(new Set(packets.map((p) => p.ssrc)).size).toBe(1);
      expect(packets.every((p) => p.payloadType === 0 && p.payload.length === 160)).toBe(true);
      for (let i = 1; i < packets.length; i++) {
        expect((packets[i]!.seq - packets[i - 1]!.seq) & 0xffff).toBe(1);
        expect((packets[i]!.timestamp - packets[i - 1]!.timestamp) >>> 0).toBe(160);
      }
      const spanMs = packets.at(-1)!.atMs - packets[0]!.atMs;
      expect(spanMs / (packets.length - 1)).toBeGreaterThan(17);
      expect(spanMs / (packets.length - 1)).toBeLessThan(23);

      const before = caller.received.length;
      await say(caller, 'what is the weather today');
      await caller.waitFor(() => heard(caller, before).includes('it is sunny'), 8000, 'the answer');
      await new Promise((r) => setTimeout(r, 300));
      const beforeKeys = caller.received.length;
      for (const digit of '42#') await caller.sendDtmf(digit);
      await caller.waitFor(() => heard(caller, beforeKeys).includes('thanks'), 8000, 'the DTMF answer');

      const run = await sipp.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      const [context] = await contextsByCallee(NUMBER);
      expect(await waitFor(async () => (await node.stores.callContexts.get(context!.id))?.status === 'completed', 5000)).toBe(true);
      const stored = await node.stores.callContexts.get(context!.id);
      expect(stored?.callStatus).toBe('completed');
      expect(stored?.provider).toBe('sip');
      await node.writer.flush({ timeoutMs: 5000 });
      const messages = await node.stores.conversations.messages(stored!.conversationId);
      expect(messages.map((m) => [m.role, m.text])).toEqual(
        expect.arrayContaining([
          ['assistant', 'hello welcome'],
          ['assistant', 'it is sunny'],
          ['assistant', 'thanks'],
        ]),
      );
      await settled();
    });
  }, 60_000);

  it('the assistant hangs up: BYE from us after its goodbye', async () => {
    const caller = await createRtpCaller();
    try {
      const run = await runSipp({ scenario: 'uac-call-callee-hangs-up.xml', target, service: IDLE_NUMBER, keys: { rtp_port: String(caller.port) }, timeoutMs: 30_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(heard(caller)).toBe('hello welcome thanks goodbye');
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('a caller that sends no RTP is hung up after SIP_RTP_TIMEOUT_MS (5 s here): BYE from us', async () => {
    const caller = await createRtpCaller();
    try {
      const started = Date.now();
      const run = await runSipp({ scenario: 'uac-call-callee-hangs-up.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port) }, timeoutMs: 30_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(Date.now() - started).toBeGreaterThan(4500);
      expect(heard(caller)).toBe('hello welcome');
      const [context] = (await contextsByCallee(NUMBER)).slice(-1);
      expect(await waitFor(async () => (await node.stores.callContexts.get(context!.id))?.status === 'completed', 5000)).toBe(true);
      expect((await node.stores.callContexts.get(context!.id))?.disconnectReason).toBe('rtp-timeout');
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('keys sent as SIP INFO (application/dtmf-relay) reach the assistant like RFC 4733 digits', async () => {
    await withLiveCaller(async (caller) => {
      const run = await runSipp({ scenario: 'uac-dtmf-info.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port), call_ms: '3000', digit: '7' }, timeoutMs: 20_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      const [context] = (await contextsByCallee(NUMBER)).slice(-1);
      await node.writer.flush({ timeoutMs: 5000 });
      const messages = await node.stores.conversations.messages((await node.stores.callContexts.get(context!.id))!.conversationId);
      expect(messages.some((m) => m.role === 'user' && m.text.includes('pressed the keys: 7'))).toBe(true);
      await settled();
    });
  }, 30_000);

  it('CANCEL before the answer: 200 to the CANCEL, 487 to the INVITE; nothing is left', async () => {
    const run = await runSipp({ scenario: 'uac-cancel.xml', target, service: NUMBER, keys: { rtp_port: '9' }, timeoutMs: 20_000 });
    expect(run.exitCode, run.errors || run.stderr).toBe(0);
    await settled();
  }, 30_000);

  it('re-INVITE: hold (answered recvonly) and resume', async () => {
    const caller = await createRtpCaller();
    try {
      const run = await runSipp({ scenario: 'uac-reinvite.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port) }, timeoutMs: 30_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('488 for an offer without G.711, 404 for an unknown number, 200 to OPTIONS', async () => {
    for (const [scenario, service] of [
      ['uac-488.xml', NUMBER],
      ['uac-404.xml', '+19995550000'],
      ['uac-options.xml', NUMBER],
    ] as const) {
      const run = await runSipp({ scenario, target, service, keys: { rtp_port: '9' }, timeoutMs: 15_000 });
      expect(run.exitCode, `${scenario}: ${run.errors || run.stderr}`).toBe(0);
    }
    await settled();
  }, 40_000);

  it('a retransmitted INVITE is absorbed: one call', async () => {
    const caller = await createRtpCaller();
    try {
      const before = (await contextsByCallee(NUMBER)).length;
      const run = await runSipp({ scenario: 'uac-retransmit.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port) }, timeoutMs: 20_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect((await contextsByCallee(NUMBER)).length).toBe(before + 1);
      expect(server.sip!.stats.retransmissionsAbsorbed).toBeGreaterThan(0);
      await settled();
    } finally {
      await caller.close();
    }
  }, 30_000);

  it('a digest trunk: 401 challenge, then the call with the stored credential', async () => {
    const caller = await createRtpCaller();
    try {
      const run = await runSipp({ scenario: 'uac-digest.xml', target, service: DIGEST_NUMBER, keys: { rtp_port: String(caller.port) }, auth: { username: 'pbx', password: 'pbx-secret-password' }, timeoutMs: 20_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(heard(caller)).toContain('hello welcome');
      const wrong = await runSipp({ scenario: 'uac-digest.xml', target, service: DIGEST_NUMBER, keys: { rtp_port: String(caller.port) }, auth: { username: 'pbx', password: 'wrong' }, timeoutMs: 10_000 });
      expect(wrong.exitCode).not.toBe(0);
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('what Asterisk (pjsip.conf of docs/channels/sip.md) sends: 401, digest with the trunk credential, the call', async () => {
    const caller = await createRtpCaller();
    try {
      const run = await runSipp({ scenario: 'pjsip-trunk.xml', target, service: DIGEST_NUMBER, keys: { rtp_port: String(caller.port), call_ms: '3000' }, auth: { username: 'pbx', password: 'pbx-secret-password' }, timeoutMs: 20_000 });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(heard(caller)).toContain('hello welcome');
      await settled();
    } finally {
      await caller.close();
    }
  }, 30_000);

  it('REFER: the assistant transfers the caller; on NOTIFY 200 our leg hangs up', async () => {
    const caller = await createRtpCaller();
    try {
      const sipp = await startSipp({ scenario: 'uac-refer.xml', target, service: TRANSFER_NUMBER, keys: { rtp_port: String(caller.port), }, timeoutMs: 30_000 });
      await caller.waitFor(() => heard(caller) === 'hello welcome', 10_000, 'the greeting');
      await say(caller, 'wait here');
      const run = await sipp.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(run.logs.join('\n')).toMatch(/refer sip:\+15551230000@127\.0\.0\.1/);
      expect(heard(caller)).toContain('sure okay wait here');
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('REFER refused: the caller hears the fallback and stays with the assistant', async () => {
    await withLiveCaller(async (caller) => {
      const sipp = await startSipp({ scenario: 'uac-refer-refused.xml', target, service: TRANSFER_NUMBER, keys: { rtp_port: String(caller.port), call_ms: '8000' }, timeoutMs: 30_000 });
      await caller.waitFor(() => heard(caller) === 'hello welcome', 10_000, 'the greeting');
      await say(caller, 'wait here');
      await caller.waitFor(() => heard(caller).includes('sorry'), 10_000, 'the fallback message');
      const run = await sipp.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      await settled();
    });
  }, 40_000);

  it('outbound: INVITE to the trunk (sipp answers with 180, 183 early media, 200), greeting, the assistant hangs up', async () => {
    const caller = await createRtpCaller();
    try {
      const callee = await startSipp({ scenario: 'uas-callee.xml', keys: { rtp_port: String(caller.port) }, timeoutMs: 30_000 });
      await api('PUT', '/v1/sip/trunks/callee', { inbound: { allowedAddresses: ['192.0.2.1'] }, outbound: { host: '127.0.0.1', port: callee.port } });
      const placed = await api('POST', '/v1/calls', { assistantId: assistantIds.idle, provider: 'sip', trunk: 'callee', to: '+15557654321', from: '+14155550100' });
      expect(placed.status, JSON.stringify(placed.body)).toBe(201);
      expect(placed.body.status).toBe('queued');
      const run = await callee.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(heard(caller)).toBe('hello welcome thanks goodbye');
      const context = await node.stores.callContexts.get(placed.body.callId);
      expect(context?.callStatus).toBe('completed');
      await settled();
    } finally {
      await caller.close();
    }
  }, 40_000);

  it('outbound with digest (the trunk challenges with 401 and checks the password) and a busy callee', async () => {
    const caller = await createRtpCaller();
    try {
      const callee = await startSipp({ scenario: 'uas-digest.xml', keys: { rtp_port: String(caller.port) }, auth: { username: 'pbx', password: 'pbx-secret-password' }, timeoutMs: 30_000 });
      await api('PUT', '/v1/sip/trunks/callee-auth', { inbound: { allowedAddresses: ['192.0.2.1'] }, outbound: { host: '127.0.0.1', port: callee.port, credential: 'pbx-auth' } });
      const placed = await api('POST', '/v1/calls', { assistantId: assistantIds.idle, provider: 'sip', trunk: 'callee-auth', to: '+15557654321', from: '+14155550100' });
      expect(placed.status, JSON.stringify(placed.body)).toBe(201);
      const run = await callee.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(heard(caller)).toContain('hello welcome');

      const busy = await startSipp({ scenario: 'uas-busy.xml', timeoutMs: 15_000 });
      await api('PUT', '/v1/sip/trunks/callee-busy', { inbound: { allowedAddresses: ['192.0.2.1'] }, outbound: { host: '127.0.0.1', port: busy.port } });
      const refused = await api('POST', '/v1/calls', { assistantId: assistantIds.idle, provider: 'sip', trunk: 'callee-busy', to: '+15557654321', from: '+14155550100' });
      expect(refused.status).toBe(201);
      expect((await busy.done).exitCode).toBe(0);
      expect(await waitFor(async () => (await node.stores.callContexts.get(refused.body.callId))?.callStatus === 'busy', 5000)).toBe(true);
      await settled();
    } finally {
      await caller.close();
    }
  }, 50_000);

  it('50 concurrent calls at a fixed rate, all completed', async () => {
    const caller = await createRtpCaller();
    try {
      const before = (await contextsByCallee(NUMBER)).length;
      const run = await runSipp({
        scenario: 'uac-call-caller-hangs-up.xml',
        target,
        service: NUMBER,
        keys: { rtp_port: String(caller.port), call_ms: '2500' },
        calls: 50,
        rate: 10,
        limit: 50,
        timeoutMs: 60_000,
      });
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      const contexts = (await contextsByCallee(NUMBER)).slice(before);
      expect(contexts).toHaveLength(50);
      expect(await waitFor(async () => (await contextsByCallee(NUMBER)).slice(before).every((c) => c.status === 'completed'), 10_000)).toBe(true);
      // Every call sent its own RTP stream to the caller's socket.
      expect(new Set(caller.received.map((p) => p.ssrc)).size).toBe(50);
      await settled();
    } finally {
      await caller.close();
    }
  }, 120_000);

  it('survives 10 000 malformed SIP and RTP datagrams: no crash, no leaked dialog, calls still work', async () => {
    const { fuzzSip, fuzzRtp } = await import('../sip/fuzz');
    await withLiveCaller(async (caller) => {
      const sipp = await startSipp({ scenario: 'uac-call-caller-hangs-up.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port), call_ms: '8000' }, timeoutMs: 30_000 });
      await caller.waitFor(() => caller.received.length > 5, 10_000, 'RTP from the call');
      const sent = await fuzzSip(server.sip!.port, 6000, 7);
      const rtpSent = await fuzzRtp(caller, 4000, 11);
      expect(sent + rtpSent).toBeGreaterThanOrEqual(10_000);
      const before = caller.received.length;
      await say(caller, 'what is the weather today');
      await caller.waitFor(() => heard(caller, before).includes('it is sunny'), 8000, 'an answer after the fuzzing');
      const run = await sipp.done;
      expect(run.exitCode, run.errors || run.stderr).toBe(0);
      expect(server.sip!.stats.malformed).toBeGreaterThan(1000);
      await settled();
      const options = await runSipp({ scenario: 'uac-options.xml', target, service: NUMBER, keys: { rtp_port: '9' }, timeoutMs: 10_000 });
      expect(options.exitCode).toBe(0);
    });
  }, 90_000);

  it('number and trunk routes refuse what they cannot use', async () => {
    expect((await api('PUT', `/v1/assistants/${assistantIds.idle}/numbers`, { numbers: [NUMBER] })).status).toBe(409);
    expect((await api('GET', `/v1/assistants/${assistantIds.chat}/numbers`)).body.numbers.map((n: { number: string }) => n.number).sort()).toEqual([NUMBER, DIGEST_NUMBER].sort());
    expect((await api('POST', '/v1/calls', { assistantId: assistantIds.chat, provider: 'sip', trunk: 'nope', to: '+15557654321', from: '+14155550100' })).status).toBe(400);
    // "from" may be left to the trunk for SIP only; "trunk" is SIP's only.
    const noFrom = await api('POST', '/v1/calls', { assistantId: assistantIds.chat, provider: 'twilio', to: '+15557654321' });
    expect([noFrom.status, noFrom.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    const trunkElsewhere = await api('POST', '/v1/calls', { assistantId: assistantIds.chat, provider: 'vonage', trunk: 'local', to: '+15557654321', from: '+14155550100' });
    expect([trunkElsewhere.status, trunkElsewhere.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect(projectId).toBeTruthy();
  });
});

describe('direct SIP on a full node', () => {
  it('answers 503 with Retry-After while the node is at CAPACITY, and takes calls again once one ends', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sip-full-'));
    const node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', AUDIOSOCKET_PORT: 'off', CAPACITY: '1', RTP_PORT_MIN: '21400', RTP_PORT_MAX: '21499', DATABASE_URL: '' }));
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registry.stt.register(createFakeStt({ clock: systemClock, latencyMs: 30 }).stt);
    registry.llm.register(createFakeLlm({ clock: systemClock, reply }).llm);
    registry.tts.register(createFakeTts({ clock: systemClock, formats: [MULAW_8K], firstAudioDelayMs: 50, realTimeFactor: 0.2 }).tts);
    const server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, sip: { timers: { t1Ms: 100, t2Ms: 400, t4Ms: 500 } } });
    const caller = await createRtpCaller();
    try {
      const post = async (path: string, key: string, body: unknown, method = 'POST') =>
        (await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) })).json();
      const created = await post('/v1/projects', node.generatedAdminKey!, { name: 'full' });
      const key = created.apiKey.key as string;
      const assistant = await post('/v1/assistants', key, phoneAssistant({ name: 'bot', prompt: 'p', greeting: 'hello welcome' }));
      await post('/v1/sip/trunks/local', key, { inbound: { allowedAddresses: ['127.0.0.1'] } }, 'PUT');
      await post(`/v1/assistants/${assistant.id}/numbers`, key, { numbers: [NUMBER] }, 'PUT');
      const target = `127.0.0.1:${server.sip!.port}`;

      const first = await startSipp({ scenario: 'uac-call-caller-hangs-up.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port), call_ms: '3000' }, timeoutMs: 20_000 });
      await caller.waitFor(() => caller.received.length > 0, 10_000, 'the first call');
      const refused = await runSipp({ scenario: 'uac-503.xml', target, service: NUMBER, timeoutMs: 10_000 });
      expect(refused.exitCode, refused.errors || refused.stderr).toBe(0);
      expect(refused.messages).toMatch(/Retry-After: 5/);
      expect((await first.done).exitCode).toBe(0);
      expect(await waitFor(() => server.activeCalls === 0, 5000)).toBe(true);
      const again = await runSipp({ scenario: 'uac-call-caller-hangs-up.xml', target, service: NUMBER, keys: { rtp_port: String(caller.port), call_ms: '500' }, timeoutMs: 20_000 });
      expect(again.exitCode, again.errors || again.stderr).toBe(0);
    } finally {
      await caller.close();
      await server.close();
      await node.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
