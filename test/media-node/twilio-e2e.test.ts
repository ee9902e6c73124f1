import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { createProviderRegistry } from '../../shared/providers/registry';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { splitWords } from '../fakes/tones';
import { nodeVariants } from './node-variants';
import { heardWords, say, twilioInbound, waitFor } from './twilio-helpers';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const ACCOUNT_SID = `AC${'a'.repeat(32)}`;
const AUTH_TOKEN = 'twilio-test-auth-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(nodeVariants())('on $name', (variant) => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let apiKey: string;
  let assistantId: string;
  let cleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'twilio-e2e-'));
    const prepared = await variant.prepare();
    cleanup = prepared.cleanup;
    const env = parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', ...prepared.env });
    node = await startNode(env);
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registerPhoneFakes(registry, (m) => {
      const said = lastUserText(m);
      if (said.includes('weather')) return 'it is sunny';
      if (said.includes('story')) return STORY;
      return 'okay sure';
    });
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

    const admin = node.generatedAdminKey!;
    const api = (path: string, init: RequestInit & { key?: string } = {}) =>
      fetch(`${server.url}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers } });
    const created = await (await api('/v1/projects', { method: 'POST', key: admin, body: JSON.stringify({ name: 'E2E' }) })).json();
    apiKey = created.apiKey.key;
    expect((await api('/v1/credentials/twilio-main', { method: 'PUT', body: JSON.stringify({ provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }) })).status).toBe(201);
    const assistant = await (
      await api('/v1/assistants', {
        method: 'POST',
        body: JSON.stringify(phoneAssistant({ name: 'Phone bot', prompt: 'You answer the phone.', greeting: 'hello welcome' })),
      })
    ).json();
    assistantId = assistant.id;
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await cleanup?.();
    await rm(dir, { recursive: true, force: true });
  });

  const inboundWebhook = (options: { token?: string; callSid?: string } = {}) =>
    twilioInbound({ url: server.url, publicBaseUrl: server.publicBaseUrl(), assistantId, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }, options);

  describe('a Twilio call end to end (real node, simulated carrier)', () => {
    it('greets, answers, is interrupted (Twilio cleared, history = heard words), and is stored and readable through REST', async () => {
      const hook = await inboundWebhook();
      expect(hook.status).toBe(200);
      expect(hook.streamUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/talk\/twilio\/ctx\/[0-9a-f-]{36}$/);
      const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });

      expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
      say(carrier, 'what is the weather today');
      expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome it is sunny', 8000), `answer; heard: ${heardWords(carrier).join(' ')}`).toBe(true);

      say(carrier, 'tell me a story');
      expect(await waitFor(() => heardWords(carrier).length >= 2 + 3 + 4, 8000), `story; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
      const clearsBefore = carrier.stats.clears;
      say(carrier, 'okay stop');
      expect(await waitFor(() => carrier.stats.clears > clearsBefore, 3000), 'a clear after the barge-in').toBe(true);
      expect(await waitFor(() => heardWords(carrier).join(' ').endsWith('okay sure'), 8000), `reply after barge-in; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
      await carrier.hangUp();

      const conversationId = new URL(hook.streamUrl!).pathname.split('/').at(-1)!;
      const context = await node.stores.callContexts.get(conversationId);
      expect(context).toBeDefined();
      expect(await waitFor(async () => (await node.stores.callContexts.get(conversationId))?.status === 'completed', 5000)).toBe(true);
      await node.writer.flush({ timeoutMs: 5000 });
      const response = await fetch(`${server.url}/v1/conversations/${context!.conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } });
      expect(response.status).toBe(200);
      const body = await response.json();
      const messages = body.messages as { role: string; text: string; heardText?: string; interrupted: boolean }[];
      expect(messages.map((m) => m.role)).toEqual(['assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
      const story = messages[4]!;
      expect(story.interrupted).toBe(true);
      // The history holds what the caller heard of the story (between "it is sunny" and "okay sure"): audio
      // Twilio dropped on the clear is not in it. A word cut mid-way may count on one side only.
      const storyHeard = heardWords(carrier).slice(5, -2);
      const recorded = story.heardText!.split(' ');
      expect(storyHeard.length).toBeGreaterThan(2);
      expect(storyHeard.length).toBeLessThan(splitWords(STORY).length);
      expect(recorded).toEqual(storyHeard.slice(0, recorded.length));
      expect(Math.abs(recorded.length - storyHeard.length)).toBeLessThanOrEqual(1);
      expect(story.text.length).toBeGreaterThan(story.heardText!.length);
      expect(body.turnMetrics.length).toBeGreaterThanOrEqual(4);
      expect(body.conversation.status).toBe('completed');
    }, 60_000);

    it('refuses a wrong signature (403) and a media URL used twice (4409) or unknown (4404)', async () => {
      expect((await inboundWebhook({ token: 'wrong-token' })).status).toBe(403);

      const hook = await inboundWebhook();
      const first = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
      // The socket being open does not mean its claim has landed: wait until the call speaks.
      expect(await waitFor(() => heardWords(first).length > 0, 10_000)).toBe(true);
      const closeCode = (url: string) =>
        new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.on('close', (code) => resolve(code));
          ws.on('error', reject);
        });
      expect(await closeCode(hook.streamUrl!)).toBe(4409);
      expect(await closeCode(hook.streamUrl!.replace(/ctx\/[^/]+$/, `ctx/${crypto.randomUUID()}`))).toBe(4404);
      await first.hangUp();
    }, 30_000);

    it('stores a signed status callback once and ignores its duplicate', async () => {
      const hook = await inboundWebhook();
      const contextId = new URL(hook.streamUrl!).pathname.split('/').at(-1)!;
      const path = `/v1/talk/twilio/ctx/${contextId}/event`;
      const params = { AccountSid: ACCOUNT_SID, CallSid: hook.callSid, CallStatus: 'no-answer', SequenceNumber: '2', ApiVersion: '2010-04-01' };
      const post = async () =>
        fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': await signTwilioRequest({ authToken: AUTH_TOKEN, url: `${server.publicBaseUrl()}${path}`, params }) },
          body: new URLSearchParams(params).toString(),
        });
      // Signed, but about another call or another account: refused, nothing stored.
      const postWith = async (extra: Record<string, string>) => {
        const forged = { ...params, ...extra };
        return fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': await signTwilioRequest({ authToken: AUTH_TOKEN, url: `${server.publicBaseUrl()}${path}`, params: forged }) },
          body: new URLSearchParams(forged).toString(),
        });
      };
      expect((await postWith({ CallSid: `CA${'f'.repeat(32)}` })).status).toBe(409);
      expect((await postWith({ AccountSid: `AC${'f'.repeat(32)}` })).status).toBe(403);
      expect((await post()).status).toBe(204);
      expect((await post()).status).toBe(204);
      const context = await node.stores.callContexts.get(contextId);
      // No answer before the media connected: the context failed and can never be claimed.
      expect(context).toMatchObject({ status: 'failed', callStatus: 'no-answer' });
      const events = await node.stores.conversations.callEvents({ callContextId: contextId });
      expect(events).toHaveLength(1);
    }, 30_000);
  });

  describe('draining (SIGTERM)', () => {
    it('a running call goes on, new calls get 503, readiness says draining, and the drain ends when the call does', async () => {
      const hook = await inboundWebhook();
      const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
      expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 10_000), `greeting; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
      // Calls of earlier tests may still be winding down.
      expect(await waitFor(() => server.activeCalls === 1, 5000), `active calls: ${server.activeCalls}`).toBe(true);

    let drained = false;
      const draining = server.drain(20_000).then(() => (drained = true));
      await sleep(100);
      expect((await inboundWebhook()).status).toBe(503);
      const readiness = await fetch(`${server.url}/readiness/`);
      expect(readiness.status).toBe(503);
      expect((await readiness.json()).failing).toContain('draining');

      // The running call still works.
      say(carrier, 'what is the weather today');
      expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome it is sunny', 8000)).toBe(true);
      expect(drained).toBe(false);
      const hangUpAt = Date.now();
      await carrier.hangUp();
      await draining;
      expect(drained).toBe(true);
      // Loose bound: the drain follows the call's end promptly (a drain that spun in microtasks took 20 s here).
      expect(Date.now() - hangUpAt).toBeLessThan(5000);
    }, 60_000);
  });
});
