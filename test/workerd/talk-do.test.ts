import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleWorker } from './bundle';
import { budgetedFetch, budgetedSocketFactory, createConnectionBudget } from '../../edge/talk/connection-budget';
import { loadMigrations } from '../../media-node/db/migrations';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore, type CallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore, type ConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { migrate } from '../../shared/store/migrate';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import type { SqlClient } from '../../shared/store/sql';
import { DisconnectionType, InterruptionType, StreamMode } from '../../shared/talk/gen/talk_api_pb';
import { splitWords } from '../fakes/tones';
import { startDeepgramFake, type DeepgramFakeServer } from '../providers/fakes/deepgram';
import { startOpenAiFake, type OpenAiFake } from '../providers/fakes/llm/openai';
import { startTcpProxy } from '../store/tcp-proxy';
import { connectTalkClient, type TalkClient } from './talk-client';

/**
 * The browser call's Durable Object (edge/talk/durable-object.ts) inside real workerd (Miniflare 4), against
 * local PostgreSQL (through a TCP proxy that can be cut) and the Deepgram (STT + TTS) and OpenAI-compatible
 * fakes on 127.0.0.1. The test entry (talk-do-worker.ts) routes `/v1/talk/web/ctx/:id` to the object like the
 * edge Worker, and adds a diagnostics route (connection budget, journal, writer) that production lacks.
 */

const DATABASE_URL = process.env.TEST_DATABASE_URL?.trim();
if (!DATABASE_URL && process.env.CI === 'true') throw new Error('TEST_DATABASE_URL is not set: under CI=true the Durable Object suite must run against PostgreSQL (.ci/run sets it)');
if (!DATABASE_URL) console.warn('TEST_DATABASE_URL not set: the Durable Object suite (workerd + PostgreSQL) is skipped');

const SECRET_KEY = 'talk-do-test-secret-key-0123456789abcdef';
const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await sleep(100);
  }
  return predicate();
}

interface Harness {
  mf: Miniflare;
  baseUrl: string;
  db: SqlClient;
  contexts: CallContextStore;
  conversations: ConversationStore;
  projectId: string;
  assistantId: string;
  /** A secret API key of the project. */
  apiKey: string;
  deepgram: DeepgramFakeServer;
  openai: OpenAiFake;
  proxy: Awaited<ReturnType<typeof startTcpProxy>>;
}

const cleanups: (() => Promise<unknown>)[] = [];
let h: Harness;

/** The edge assistant: Deepgram STT + TTS, an OpenAI-compatible LLM, the WebRTC VAD (all edge-capable). */
function edgeAssistant(deepgram: DeepgramFakeServer, openai: OpenAiFake, overrides: Record<string, unknown> = {}) {
  return {
    name: 'Edge bot',
    prompt: 'You answer in the browser.',
    greeting: 'hello welcome',
    stt: { provider: 'deepgram', endpoint: deepgram.endpoint, model: 'nova-3' },
    llm: { provider: 'openai', endpoint: openai.endpoint, model: 'gpt-fake' },
    tts: { provider: 'deepgram', endpoint: deepgram.endpoint, model: 'aura-2-thalia-en' },
    vad: { provider: 'webrtc', webrtcMode: 2 },
    ...overrides,
  };
}

async function bundle(outDir: string): Promise<void> {
  await bundleWorker({ worker: join(import.meta.dirname, 'talk-do-worker.ts') }, outDir);
}

/** The workerd process Miniflare started for this test (a child of this process). */
function workerdPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('workerd')) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function newContext(assistantId = h.assistantId, projectId = h.projectId) {
  const conversation = await h.conversations.create({ projectId, assistantId, assistantVersion: 1, channel: 'web', direction: 'inbound' });
  return h.contexts.create({ projectId, assistantId, assistantVersion: 1, conversationId: conversation.id, provider: 'web', direction: 'inbound' });
}

const sessionUrl = (contextId: string) => `${h.baseUrl.replace(/^http/, 'ws')}/v1/talk/web/ctx/${contextId}`;

/** A Durable Object of a binding, reached from Node through Miniflare (the project has no workers-types). */
async function objectStub(binding: 'TALK_SESSION' | 'JOURNAL_PROBE', name: string) {
  const namespace = (await h.mf.getDurableObjectNamespace(binding)) as unknown as {
    idFromName(name: string): unknown;
    get(id: unknown): { fetch(url: string, init?: { method?: string; body?: string }): Promise<{ status: number; json(): Promise<unknown> }> };
  };
  return namespace.get(namespace.idFromName(name));
}

/** The object's figures through its test-only route. */
async function diagnostics(contextId: string) {
  const response = await (await objectStub('TALK_SESSION', contextId)).fetch('http://talk-session/__diagnostics');
  return (await response.json()) as {
    budget?: { limit: number; inUse: number; peak: number; refused: number; open: Record<string, number> };
    journalStored: number;
    writer?: { state: string; applied: number; retries: number; journaled: number; queued: number; rejected: number; dropped: number };
    databaseReplaced?: number;
    callOver: boolean;
    instanceId: string;
    alarmAt: number | null;
  };
}

function initialization(resumeToken = '') {
  return {
    case: 'initialization' as const,
    value: {
      streamMode: StreamMode.BOTH,
      inputAudio: { sampleRate: 16_000 },
      outputAudio: { sampleRate: 16_000 },
      ...(resumeToken ? { resumeToken } : {}),
    },
  };
}

describe.runIf(DATABASE_URL)('TalkSession Durable Object in workerd', () => {
  beforeAll(async () => {
    const url = new URL(DATABASE_URL!);
    const schema = `t_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const admin = createPostgresClient(DATABASE_URL!, { max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const db = createPostgresClient(DATABASE_URL!, { schema, max: 4 });
    cleanups.push(async () => {
      await db.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    });
    await migrate(db, await loadMigrations());

    const [deepgram, openai, proxy] = await Promise.all([
      startDeepgramFake(),
      startOpenAiFake(),
      startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) }),
    ]);
    cleanups.push(() => deepgram.close(), () => openai.close(), () => proxy.close());

    // The project, its assistant and its Deepgram key (sealed with SECRET_KEY, decrypted inside workerd).
    const projects = createProjectStore(db);
    const project = await projects.createProject('Edge');
    const apiKey = (await projects.createApiKey(project.id, 'talk-do')).key;
    const assistant = await createAssistantStore(db).create({ projectId: project.id, config: edgeAssistant(deepgram, openai) });
    await createCredentialStore(db, await createSecretBox(SECRET_KEY)).create({ projectId: project.id, provider: 'deepgram', name: 'dg', secret: JSON.stringify({ apiKey: deepgram.apiKey }), isDefault: true });

    const outDir = await mkdtemp(join(tmpdir(), 'workerd-talk-do-'));
    cleanups.push(() => rm(outDir, { recursive: true, force: true }));
    await bundle(outDir);
    // workerd reaches PostgreSQL through the proxy (so the test can cut it), in the test's schema.
    const proxied = new URL(DATABASE_URL!);
    proxied.host = `127.0.0.1:${proxy.port}`;
    const mf = new Miniflare({
      modules: true,
      scriptPath: join(outDir, 'worker.js'),
      modulesRoot: outDir,
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
      compatibilityDate: '2026-04-20',
      compatibilityFlags: ['nodejs_compat'],
      durableObjects: {
        TALK_SESSION: { className: 'TalkSession', useSQLite: true },
        JOURNAL_PROBE: { className: 'JournalProbe', useSQLite: true },
      },
      bindings: {
        DATABASE_URL: proxied.toString(),
        DATABASE_SCHEMA: schema,
        SECRET_KEY,
        OPENAI_API_KEY: openai.apiKey,
        // The Worker's own settings (edge/env.ts); nothing in these tests reaches Upstash or a media node.
        INTERNAL_SECRET: 'talk-do-test-internal-secret-0123456789',
        UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:9',
        UPSTASH_REDIS_REST_TOKEN: 'unused',
        PUBLIC_BASE_URL: 'http://edge.test',
        LOG_LEVEL: 'warn',
      },
      cf: false,
      host: '127.0.0.1',
      port: 0,
    });
    cleanups.push(() => mf.dispose());
    const baseUrl = (await mf.ready).toString().replace(/\/$/, '');
    h = { mf, baseUrl, db, contexts: createCallContextStore(db), conversations: createConversationStore(db), projectId: project.id, assistantId: assistant.id, apiKey, deepgram, openai, proxy };
  }, 60_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.warn('cleanup failed:', error));
  });

  // First, while the process is fresh: later sessions leave a grown V8 heap behind that hides new growth.
  it('estimates the memory of live sessions from the workerd process RSS (an estimate: workerd here enforces no 128 MB)', async () => {
    const workerd = workerdPid();
    expect(workerd, 'the workerd child process of this test').toBeDefined();
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    const peakRss = async () => {
      let peak = 0;
      for (let i = 0; i < 5; i++) {
        peak = Math.max(peak, await rssBytes(workerd!));
        await sleep(100);
      }
      return peak;
    };
    const openSessions = async (count: number) => {
      const contexts = await Promise.all(Array.from({ length: count }, () => newContext()));
      const clients = await Promise.all(contexts.map((context) => connectTalkClient(sessionUrl(context.id))));
      for (const client of clients) client.send(initialization());
      for (const client of clients) expect(await client.waitFor(() => client.heardWords().join(' ') === 'hello welcome', 15_000), 'every session greeted').toBe(true);
      return clients;
    };
    const hangUp = async (clients: TalkClient[]) => {
      for (const client of clients) client.send({ case: 'disconnection', value: { reason: 'done' } });
      await Promise.all(clients.map((client) => client.closed));
    };

    const idle = await peakRss();
    const first = await openSessions(1);
    const withFirst = await peakRss();
    const concurrent = 6;
    const more = await openSessions(concurrent);
    const withAll = await peakRss();
    await hangUp([...first, ...more]);
    const firstMb = (withFirst - idle) / 2 ** 20;
    const perSessionMb = (withAll - withFirst) / concurrent / 2 ** 20;
    console.log(
      `memory (estimate; RSS of the whole workerd process, one isolate for every object): idle ${mb(idle)} MB; first live session +${firstMb.toFixed(1)} MB ` +
        `(code, WASM instances and the session); ${concurrent} more concurrent sessions +${mb(withAll - withFirst)} MB ≈ ${perSessionMb.toFixed(1)} MB per Durable Object session after its greeting`,
    );
    expect(idle).toBeGreaterThan(10 * 2 ** 20);
    expect(firstMb).toBeLessThan(96);
    expect(perSessionMb).toBeLessThan(32);
  }, 60_000);

  it('runs a browser call: session through the Worker, greeting, transcripts, reply, barge-in cut to what was heard, resume with the token, disconnection', async () => {
    // The session is created through the Worker (POST /v1/talk/web/session with the project's secret key).
    const created = await h.mf.dispatchFetch('http://edge.test/v1/talk/web/session', {
      method: 'POST',
      headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ assistantId: h.assistantId }),
    });
    expect(created.status).toBe(201);
    const session = (await created.json()) as { contextId: string; conversationId: string; url: string; expiresAt: string };
    expect(session.url).toBe(`ws://edge.test/v1/talk/web/ctx/${session.contextId}`);
    const context = (await h.contexts.get(session.contextId))!;
    expect(context).toMatchObject({ status: 'pending', provider: 'web', conversationId: session.conversationId });
    const listensBefore = h.deepgram.connections.filter((c) => c.path === '/v1/listen').length;
    const databaseConnectionsBefore = h.proxy.connections;
    const client = await connectTalkClient(sessionUrl(context.id));
    client.send(initialization());
    expect(await client.waitFor(() => client.all('initialization').length === 1, 10_000), 'SessionInitialized').toBe(true);
    const init = client.all('initialization')[0]!;
    expect(init).toMatchObject({ contextId: context.id, conversationId: context.conversationId, resumed: false, streamMode: StreamMode.BOTH, resumeWindowMs: 30_000 });
    expect(init.resumeToken.length).toBeGreaterThanOrEqual(16);

    // The greeting: text delta and audio, played and confirmed through marks.
    expect(await client.waitFor(() => client.heardWords().join(' ') === 'hello welcome', 10_000), `greeting; heard: ${client.heardWords().join(' ')}`).toBe(true);
    expect(client.all('assistant').some((m) => !m.completed && m.text.includes('hello welcome'))).toBe(true);
    expect(client.all('playbackMark').length).toBeGreaterThan(0);

    // A turn: interim and final transcripts, then the reply as text and audio, then its metrics.
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 1, 5000), 'the greeting played out').toBe(true);
    h.openai.script({ type: 'reply', text: 'it is sunny' });
    await client.say('what is the weather today');
    expect(await client.waitFor(() => client.heardWords().join(' ') === 'hello welcome it is sunny', 10_000), `reply; heard: ${client.heardWords().join(' ')}`).toBe(true);
    const transcripts = client.all('user');
    expect(transcripts.some((t) => !t.completed && t.text.length > 0), 'an interim transcript').toBe(true);
    expect(transcripts.filter((t) => t.completed).map((t) => t.text)).toEqual(['what is the weather today']);
    expect(client.all('assistant').some((m) => !m.completed && m.text.includes('sunny'))).toBe(true);
    expect(await client.waitFor(() => client.all('metric').length >= 1, 5000), 'turn metrics').toBe(true);
    const lastRequest = h.openai.requests.at(-1)!.body as { messages: { role: string; content: string }[] };
    expect(lastRequest.messages.at(-1)).toMatchObject({ role: 'user', content: 'what is the weather today' });

    // Barge-in: the story is paused by the caller's voice (VAD) and cut by words (WORD + flush).
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 2, 5000), 'the reply played out').toBe(true);
    const storyFrom = client.received.length;
    h.openai.script({ type: 'reply', text: STORY, tokenDelayMs: 20 }, { type: 'reply', text: 'okay sure' });
    void client.say('tell me a story');
    expect(await client.waitFor(() => client.heardWords().length >= 2 + 3 + 4, 15_000), `story; heard: ${client.heardWords().join(' ')}`).toBe(true);
    await client.say('okay stop');
    expect(await client.waitFor(() => client.all('playbackFlush').length >= 1, 5000), 'PlaybackFlush').toBe(true);
    const storyMessages = client.received.slice(storyFrom).map((r) => r.message);
    expect(storyMessages.flatMap((m) => (m.case === 'interruption' ? [m.value.type] : []))).toEqual([InterruptionType.VAD, InterruptionType.WORD]);
    const controls = storyMessages.map((m) => m.case).filter((c) => c === 'playbackPause' || c === 'playbackFlush' || c === 'interruption');
    // The pause itself may flush the lead the client holds (played from the heard position on a resume).
    expect(controls.slice(controls.indexOf('interruption'))).toEqual(['interruption', 'playbackPause', 'interruption', 'playbackFlush']);
    expect(client.all('interruption').length, 'no interruption before the story').toBe(2);
    expect(await client.waitFor(() => client.heardWords().join(' ').endsWith('okay sure'), 10_000), `after the barge-in; heard: ${client.heardWords().join(' ')}`).toBe(true);
    const storyHeard = client.heardWords().slice(5, -2);
    expect(storyHeard.length).toBeGreaterThanOrEqual(4);
    expect(storyHeard.length).toBeLessThan(splitWords(STORY).length);

    // The socket drops; the client comes back with its token and gets a new one; the call goes on.
    client.terminate();
    await sleep(200);
    const resumed = await connectTalkClient(sessionUrl(context.id));
    resumed.send(initialization(init.resumeToken));
    expect(await resumed.waitFor(() => resumed.all('initialization').length === 1, 10_000), 'resumed SessionInitialized').toBe(true);
    const again = resumed.all('initialization')[0]!;
    expect(again).toMatchObject({ contextId: context.id, resumed: true });
    expect(again.resumeToken).not.toBe(init.resumeToken);
    expect(await resumed.waitFor(() => client.all('assistant').filter((m) => m.completed).length + resumed.all('assistant').filter((m) => m.completed).length >= 4, 5000)).toBe(true);
    h.openai.script({ type: 'reply', text: 'welcome again' });
    await resumed.say('hi are you still there');
    expect(await resumed.waitFor(() => resumed.heardWords().join(' ') === 'welcome again', 10_000), `after the resume; heard: ${resumed.heardWords().join(' ')}`).toBe(true);

    // The used token is refused.
    const stale = await connectTalkClient(sessionUrl(context.id), { microphone: false });
    stale.send(initialization(init.resumeToken));
    expect((await stale.closed).code).toBe(4401);
    expect(stale.all('error')[0]).toMatchObject({ fatal: true });

    // The client ends the call.
    resumed.send({ case: 'disconnection', value: { reason: 'done' } });
    expect((await resumed.closed).code).toBe(1000);
    expect(resumed.all('disconnection')).toEqual([expect.objectContaining({ type: DisconnectionType.USER })]);

    // PostgreSQL: the context is completed; the history holds the story cut to what was heard.
    expect(await waitUntil(async () => (await h.contexts.get(context.id))?.status === 'completed', 10_000), 'context completed').toBe(true);
    expect(await waitUntil(async () => (await h.conversations.get(context.conversationId))?.status === 'completed', 10_000), 'conversation completed').toBe(true);
    const messages = await h.conversations.messages(context.conversationId);
    expect(messages.map((m) => m.role)).toEqual(['assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(messages.map((m) => m.text).filter((_, i) => i % 2 === 1)).toEqual(['what is the weather today', 'tell me a story', 'okay stop', 'hi are you still there']);
    const story = messages[4]!;
    expect(story.interrupted).toBe(true);
    const recorded = story.heardText!.split(' ');
    expect(recorded).toEqual(storyHeard.slice(0, recorded.length));
    expect(Math.abs(recorded.length - storyHeard.length)).toBeLessThanOrEqual(1);
    expect(story.text.length).toBeGreaterThan(story.heardText!.length);
    expect((await h.conversations.turnMetrics(context.conversationId)).length).toBeGreaterThanOrEqual(3);

    // I/O opened in one event of the object served every later one: one STT socket and one database
    // connection for the whole call (hundreds of audio events, a reconnect of the client).
    expect(h.deepgram.connections.filter((c) => c.path === '/v1/listen').length - listensBefore).toBe(1);
    expect(h.proxy.connections - databaseConnectionsBefore).toBe(1);
    const after = await diagnostics(context.id);
    expect(after.callOver).toBe(true);
    expect(after.budget!.peak).toBeGreaterThanOrEqual(4);
    expect(after.budget!.peak).toBeLessThanOrEqual(6);
    expect(after.budget!.refused).toBe(0);
    expect(after.writer).toMatchObject({ rejected: 0, dropped: 0, queued: 0, journaled: 0 });
    console.log(`connection budget of the call: peak ${after.budget!.peak} of ${after.budget!.limit} (database + stt + tts + llm)`);
  }, 90_000);

  it('a socket accepted before hibernation starts its call afterwards: the object rebuilds its transport from the attachment', async () => {
    const context = await newContext();
    const client = await connectTalkClient(sessionUrl(context.id));
    const before = await diagnostics(context.id);
    // Nothing pending in the object (no call yet, only a hibernatable socket): it is evicted after ~10 s idle
    // (any request to it, diagnostics included, starts the idle time again).
    await sleep(14_000);
    expect((await diagnostics(context.id)).instanceId, 'the object was evicted while its socket stayed open').not.toBe(before.instanceId);
    client.send(initialization());
    expect(await client.waitFor(() => client.heardWords().join(' ') === 'hello welcome', 10_000), `greeting after hibernation; heard: ${client.heardWords().join(' ')}`).toBe(true);
    expect(client.all('initialization')[0]).toMatchObject({ contextId: context.id, resumed: false });
    client.send({ case: 'disconnection', value: { reason: 'done' } });
    expect((await client.closed).code).toBe(1000);
  }, 45_000);

  it('refuses Node-only providers and the Silero VAD with a configuration error, before any provider connects', async () => {
    const assistants = createAssistantStore(h.db);
    const cases = [
      { overrides: { tts: { provider: 'local' } }, code: 'PROVIDER_NOT_EDGE_CAPABLE', says: /"local" needs a media node/ },
      { overrides: { stt: { provider: 'google-speech-service' } }, code: 'PROVIDER_NOT_EDGE_CAPABLE', says: /"google-speech-service" needs a media node/ },
      { overrides: { vad: { provider: 'silero' } }, code: 'VAD_NOT_EDGE_CAPABLE', says: /"silero" VAD needs a media node/ },
    ];
    const connectionsBefore = h.deepgram.connections.length;
    for (const { overrides, code, says } of cases) {
      const assistant = await assistants.create({ projectId: h.projectId, config: edgeAssistant(h.deepgram, h.openai, overrides) });
      const context = await newContext(assistant.id);
      const client = await connectTalkClient(sessionUrl(context.id), { microphone: false });
      client.send(initialization());
      const closed = await client.closed;
      expect(closed.code, JSON.stringify(overrides)).toBe(1011);
      const errors = client.all('error');
      expect(errors).toHaveLength(1);
      // The session's Error carries the configuration error's own code and the reason; so does the context.
      expect(errors[0]).toMatchObject({ code, fatal: true });
      expect(errors[0]!.message).toMatch(says);
      expect(await waitUntil(async () => (await h.contexts.get(context.id))?.status === 'failed', 5000), 'context failed').toBe(true);
      const stored = await h.contexts.get(context.id);
      expect(stored!.failureReason).toMatch(new RegExp(`^${code}: `));
    }
    expect(h.deepgram.connections.length).toBe(connectionsBefore);

    // Plain HTTP at the session path: the Worker and the object itself both answer 426.
    const context = await newContext();
    expect((await h.mf.dispatchFetch(`http://edge.test/v1/talk/web/ctx/${context.id}`)).status).toBe(426);
    const direct = await (await objectStub('TALK_SESSION', context.id)).fetch(`http://talk-session/v1/talk/web/ctx/${context.id}`);
    expect(direct.status).toBe(426);
    expect(((await direct.json()) as { error: { code: string } }).error.code).toBe('UPGRADE_REQUIRED');
  }, 30_000);

  it('goes on talking while PostgreSQL is unreachable: records wait in the SQLite journal and arrive when it is back', async () => {
    const context = await newContext();
    const client = await connectTalkClient(sessionUrl(context.id));
    client.send(initialization());
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 1, 10_000), 'greeting played').toBe(true);
    expect(await waitUntil(async () => (await diagnostics(context.id)).writer?.queued === 0, 5000), 'greeting recorded').toBe(true);
    expect(await h.conversations.messages(context.conversationId)).toHaveLength(1);

    // The proxy drops the object's database connection and refuses new ones until `cut(0)` below.
    h.proxy.cut(120_000);
    h.openai.script({ type: 'reply', text: 'it is sunny' }, { type: 'reply', text: 'okay sure' });
    await client.say('what is the weather today');
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 2, 10_000), `reply during the outage; heard: ${client.heardWords().join(' ')}`).toBe(true);
    await client.say('tell me a joke');
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 3, 10_000), `second reply; heard: ${client.heardWords().join(' ')}`).toBe(true);
    expect(client.heardWords().join(' ')).toBe('hello welcome it is sunny okay sure');

    // The stuck query misses its deadline; the writer backs off and moves the records to the journal.
    expect(await waitUntil(async () => (await diagnostics(context.id)).journalStored > 0, 15_000), 'records spilled to the SQLite journal').toBe(true);
    const during = await diagnostics(context.id);
    expect(during.writer!.retries).toBeGreaterThan(0);
    expect(during.databaseReplaced).toBeGreaterThan(0);
    expect(during.writer!.rejected).toBe(0);
    expect(await h.conversations.messages(context.conversationId)).toHaveLength(1);

    h.proxy.cut(0); // the database is reachable again
    expect(await waitUntil(async () => {
      const d = await diagnostics(context.id);
      return d.journalStored === 0 && d.writer?.queued === 0;
    }, 15_000), 'the journal drained').toBe(true);
    const messages = await h.conversations.messages(context.conversationId);
    expect(messages.map((m) => [m.role, m.text])).toEqual([
      ['assistant', 'hello welcome'],
      ['user', 'what is the weather today'],
      ['assistant', 'it is sunny'],
      ['user', 'tell me a joke'],
      ['assistant', 'okay sure'],
    ]);

    client.send({ case: 'disconnection', value: { reason: 'done' } });
    expect((await client.closed).code).toBe(1000);
    expect(await waitUntil(async () => (await h.contexts.get(context.id))?.status === 'completed', 10_000)).toBe(true);
    const after = await diagnostics(context.id);
    expect(after.writer).toMatchObject({ rejected: 0, dropped: 0 });
  }, 60_000);

  it("a call that ends while PostgreSQL is away leaves its records in the journal; the object's alarm writes them later", async () => {
    const context = await newContext();
    const client = await connectTalkClient(sessionUrl(context.id));
    client.send(initialization());
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 1, 10_000), 'greeting played').toBe(true);
    expect(await waitUntil(async () => (await diagnostics(context.id)).writer?.queued === 0, 5000), 'greeting recorded').toBe(true);

    h.proxy.cut(120_000);
    h.openai.script({ type: 'reply', text: 'it is sunny' });
    await client.say('what is the weather today');
    expect(await client.waitFor(() => client.all('assistant').filter((m) => m.completed).length === 2, 10_000), 'reply during the outage').toBe(true);
    client.send({ case: 'disconnection', value: { reason: 'done' } });
    expect((await client.closed).code).toBe(1000);

    // The end of the call could not reach PostgreSQL: the records are in the journal and an alarm is set.
    expect(await waitUntil(async () => {
      const d = await diagnostics(context.id);
      return d.callOver && d.writer?.state === 'closed' && d.journalStored > 0 && d.alarmAt !== null;
    }, 20_000), 'journaled at the end of the call, alarm set').toBe(true);
    const pending = await diagnostics(context.id);
    expect(pending.alarmAt! - Date.now()).toBeGreaterThan(10_000);
    expect(await h.conversations.messages(context.conversationId)).toHaveLength(1);

    h.proxy.cut(0);
    // What the alarm does when it fires (run now through the test route instead of waiting a minute).
    const replayed = (await (await (await objectStub('TALK_SESSION', context.id)).fetch('http://talk-session/__alarm')).json()) as { journalStored: number };
    expect(replayed.journalStored).toBe(0);
    const messages = await h.conversations.messages(context.conversationId);
    expect(messages.map((m) => [m.role, m.text])).toEqual([
      ['assistant', 'hello welcome'],
      ['user', 'what is the weather today'],
      ['assistant', 'it is sunny'],
    ]);
    expect((await h.conversations.get(context.conversationId))?.status).toBe('completed');
  }, 60_000);

  it('the SQLite journal keeps records in order across a restart of the object, all or nothing per append', async () => {
    const name = `journal-${crypto.randomUUID()}`;
    const run = async (steps: unknown[]) => (await (await objectStub('JOURNAL_PROBE', name)).fetch('http://journal-probe/', { method: 'POST', body: JSON.stringify(steps) })).json() as Promise<Record<string, unknown>[]>;
    const first = await run([
      { op: 'open' },
      { op: 'append', records: [{ n: 1 }, { n: 2 }, { n: 3 }] },
      { op: 'read', max: 2 },
      { op: 'ack', count: 1 },
      { op: 'appendUnserialisable' },
      { op: 'append', records: ['x'.repeat(1_100_000)] },
    ]);
    expect(first[0]).toMatchObject({ size: 0 });
    expect(first[1]).toEqual({ size: 3, stored: 3 });
    expect(first[2]).toEqual({ records: [{ n: 1 }, { n: 2 }] });
    expect(first[3]).toEqual({ size: 2, stored: 2 });
    // A record that cannot be serialised or stored fails its whole append: nothing of it is kept.
    expect(first[4]).toMatchObject({ size: 2, stored: 2 });
    expect(String(first[4]!.error)).toMatch(/BigInt/);
    expect(first[5]).toMatchObject({ size: 2, stored: 2 });
    expect(String(first[5]!.error)).toMatch(/JOURNAL_RECORD/);

    // ctx.abort() resets the object: the next request runs in a new instance over the same storage.
    await (await objectStub('JOURNAL_PROBE', name)).fetch('http://journal-probe/', { method: 'POST', body: JSON.stringify([{ op: 'abort' }]) }).catch(() => undefined);
    const second = await run([{ op: 'open' }, { op: 'read', max: 10 }, { op: 'append', records: [{ n: 4 }] }, { op: 'read', max: 10 }, { op: 'ack', count: 10 }, { op: 'read', max: 10 }]);
    expect(second[0]!.instance).not.toBe(first[0]!.instance);
    expect(second[0]).toMatchObject({ size: 2 });
    expect(second[1]).toEqual({ records: [{ n: 2 }, { n: 3 }] });
    expect(second[2]).toEqual({ size: 3, stored: 3 });
    expect(second[3]).toEqual({ records: [{ n: 2 }, { n: 3 }, { n: 4 }] });
    expect(second[4]).toEqual({ size: 0, stored: 0 });
    expect(second[5]).toEqual({ records: [] });
  }, 30_000);

});

describe('connection budget (edge/talk/connection-budget.ts; web-standard, run in Node)', () => {
  it('holds at most 6 connections: a seventh waits for a slot, and is refused after waiting too long', async () => {
    const budget = createConnectionBudget({ waitMs: 150 });
    const leases = await Promise.all(['database', 'stt', 'tts', 'llm', 'cache', 'tools'].map((label) => budget.acquire(label)));
    expect(budget.snapshot()).toMatchObject({ limit: 6, inUse: 6, peak: 6, open: { database: 1, stt: 1, tts: 1, llm: 1, cache: 1, tools: 1 } });

    const refused = await budget.acquire('tools').catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'EDGE_CONNECTION_BUDGET', retryable: true });
    expect(String((refused as Error).message)).toMatch(/all 6 outbound connections of this session are open \(database 1, stt 1, tts 1, llm 1, cache 1, tools 1\)/);

    const waiting = budget.acquire('tts');
    leases[2]!.release();
    leases[2]!.release(); // idempotent: one slot back, not two
    const granted = await waiting;
    expect(granted.label).toBe('tts');
    expect(budget.snapshot()).toMatchObject({ inUse: 6, peak: 6, refused: 1, waited: 2 });
    for (const lease of [...leases, granted]) lease.release();
    expect(budget.snapshot()).toMatchObject({ inUse: 0, peak: 6, open: {} });
  });

  it('a waiting connection gives up when its signal aborts', async () => {
    const budget = createConnectionBudget({ limit: 1, waitMs: 5000 });
    const held = await budget.acquire('stt');
    const abort = new AbortController();
    const waiting = budget.acquire('tts', abort.signal).catch((error: unknown) => error);
    abort.abort(new DOMException('gone', 'AbortError'));
    expect(await waiting).toMatchObject({ name: 'AbortError' });
    held.release();
    expect(budget.snapshot().inUse).toBe(0);
  });

  it('fetch holds its slot until the body has been read, cancelled or failed; a refusal never reaches the network', async () => {
    const budget = createConnectionBudget({ limit: 2, waitMs: 50 });
    let calls = 0;
    const fake = (async () => {
      calls++;
      return new Response(new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('ok')), c.close()) }), { status: 200 });
    }) as typeof fetch;
    const llm = budgetedFetch(budget, fake, 'llm');
    const first = await llm('http://llm.test/');
    const second = await llm('http://llm.test/');
    expect(budget.snapshot()).toMatchObject({ inUse: 2, open: { llm: 2 } });
    await expect(llm('http://llm.test/')).rejects.toMatchObject({ code: 'EDGE_CONNECTION_BUDGET' });
    expect(calls).toBe(2);
    expect(await first.text()).toBe('ok');
    await second.body!.cancel();
    expect(budget.snapshot().inUse).toBe(0);

    const failing = budgetedFetch(budget, (async () => Promise.reject(new TypeError('network down'))) as typeof fetch, 'tools');
    await expect(failing('http://tool.test/')).rejects.toThrow('network down');
    const empty = budgetedFetch(budget, (async () => new Response(null, { status: 204 })) as typeof fetch, 'tools');
    expect((await empty('http://tool.test/')).status).toBe(204);
    expect(budget.snapshot()).toMatchObject({ inUse: 0, peak: 2 });
  });

  it('a socket holds its slot until its close is reported; a failed connect gives it back at once', async () => {
    const budget = createConnectionBudget({ limit: 1, waitMs: 50 });
    let closeHandler: ((code: number, reason: string) => void) | undefined;
    const connect = budgetedSocketFactory(
      budget,
      async (_request, handlers) => {
        closeHandler = handlers.onClose;
        return { send: () => undefined, bufferedAmount: 0, open: true, close: () => undefined };
      },
      'stt',
    );
    const closes: number[] = [];
    await connect({ url: 'ws://stt.test/', timeoutMs: 100 }, { onMessage: () => undefined, onClose: (code) => closes.push(code) });
    await expect(connect({ url: 'ws://stt.test/', timeoutMs: 100 }, { onMessage: () => undefined, onClose: () => undefined })).rejects.toMatchObject({
      name: 'SocketConnectError',
      status: undefined,
    });
    closeHandler!(1006, '');
    expect(closes).toEqual([1006]);
    expect(budget.snapshot().inUse).toBe(0);

    const refusing = budgetedSocketFactory(budget, async () => Promise.reject(new Error('refused')), 'tts');
    await expect(refusing({ url: 'ws://tts.test/', timeoutMs: 100 }, { onMessage: () => undefined, onClose: () => undefined })).rejects.toThrow('refused');
    expect(budget.snapshot().inUse).toBe(0);
  });
});
