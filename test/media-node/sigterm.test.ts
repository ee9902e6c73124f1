import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode } from '../../media-node/node';
import { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { phoneAssistant } from '../fakes/phone';
import { heardWords, say, twilioInbound, waitFor } from './twilio-helpers';

const ACCOUNT_SID = `AC${'c'.repeat(32)}`;
const AUTH_TOKEN = 'twilio-sigterm-auth-token';
const ADMIN_KEY = `admin-${crypto.randomUUID()}`;
const FIXTURE = join(import.meta.dirname, 'fixtures', 'node-with-fakes.ts');

let child: ChildProcess | undefined;
let dir: string | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The node as `npm start` runs it, in its own process; resolves once it logs where it listens. */
async function spawnNode(dataDir: string): Promise<{ child: ChildProcess; url: string; publicBaseUrl: string; exited: Promise<number | null>; logs: string[] }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ADMIN_API_KEY: ADMIN_KEY, DRAIN_TIMEOUT_MS: '30000', LOG_LEVEL: 'info', DATABASE_URL: '', REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const listening = new Promise<{ port: number; publicBaseUrl: string }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { port?: number; publicBaseUrl?: string };
        if (entry.port && entry.publicBaseUrl) resolve({ port: entry.port, publicBaseUrl: entry.publicBaseUrl });
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`the node exited (${code}) before listening:\n${logs.join('\n')}`)));
  });
  const { port, publicBaseUrl } = await listening;
  return { child: proc, url: `http://127.0.0.1:${port}`, publicBaseUrl, exited, logs };
}

describe('SIGTERM to a running node process (npm start)', () => {
  it('drains: the call in progress goes on, a new webhook gets 503, the node exits 0 when the call ends, and the call is stored', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sigterm-'));
    const running = await spawnNode(dir);
    child = running.child;
    const api = (path: string, body: unknown, key: string) =>
      fetch(`${running.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
    const project = await (await api('/v1/projects', { name: 'Drain' }, ADMIN_KEY)).json();
    const key = project.apiKey.key as string;
    const credential = await fetch(`${running.url}/v1/credentials/twilio-main`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }),
    });
    expect(credential.status).toBe(201);
    const assistant = await (await api('/v1/assistants', phoneAssistant({ name: 'Drain bot', prompt: 'Answer.', greeting: 'hello welcome' }), key)).json();
    const target = { url: running.url, publicBaseUrl: running.publicBaseUrl, assistantId: assistant.id as string, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN };

    const hook = await twilioInbound(target);
    expect(hook.status).toBe(200);
    const carrier = await connectTwilioCarrier({ mediaUrl: hook.streamUrl!, callSid: hook.callSid, accountSid: ACCOUNT_SID });
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome', 15_000), `greeting; heard: ${heardWords(carrier).join(' ')}`).toBe(true);

    child.kill('SIGTERM');
    // Draining: readiness fails and a new call is refused so the carrier fails over.
    expect(await waitFor(async () => (await fetch(`${running.url}/readiness/`)).status === 503, 5000)).toBe(true);
    expect((await twilioInbound(target)).status).toBe(503);

    // The running call still works, and the process waits for it.
    say(carrier, 'what is the weather today');
    expect(await waitFor(() => heardWords(carrier).join(' ') === 'hello welcome it is sunny', 10_000), `answer; heard: ${heardWords(carrier).join(' ')}`).toBe(true);
    expect(child.exitCode).toBeNull();
    await carrier.hangUp();
    const code = await Promise.race([running.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    expect(code, running.logs.slice(-20).join('\n')).toBe(0);

    // Nothing lost: the same data directory, opened again, holds the finished call.
    const node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', DATABASE_URL: '', REDIS_URL: '', ADMIN_API_KEY: ADMIN_KEY }));
    try {
      const context = await node.stores.callContexts.get(new URL(hook.streamUrl!).pathname.split('/').at(-1)!);
      expect(context?.status).toBe('completed');
      expect((await node.stores.conversations.get(context!.conversationId))?.status).toBe('completed');
      const messages = await node.stores.conversations.messages(context!.conversationId);
      expect(messages.map((m) => `${m.role}: ${m.text}`)).toEqual(['assistant: hello welcome', 'user: what is the weather today', 'assistant: it is sunny']);
    } finally {
      await node.close();
    }
  }, 90_000);
});
