import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../media-node/db/migrations';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore, type CallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore, type ConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { migrate } from '../../shared/store/migrate';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import type { VoiceWidget } from '../../web/widget/widget';
import { startDeepgramFake, type DeepgramFakeServer } from '../providers/fakes/deepgram';
import { startOpenAiFake, type OpenAiFake } from '../providers/fakes/llm/openai';
import { startWranglerDev, type WranglerDev } from './wrangler-dev';
import { buildWidgetBundle, chromiumPath, isPng, launchBrowser, pollPage, recordConsole, screenshot, startStaticSite, toneWav, type StaticSite } from './browser';

/**
 * The same widget against the edge: the real Worker (edge/worker.ts) and its TalkSession Durable Object under
 * `wrangler dev` (workerd), on local PostgreSQL through the Hyperdrive binding. The
 * local engines are Node-only, so the assistant uses the Deepgram (STT + TTS) and OpenAI-compatible fakes on
 * 127.0.0.1 and the WebRTC VAD; the fake microphone plays tone-coded words, which the Deepgram fake hears (the
 * widget turns noise suppression, echo cancellation and auto gain off: pure tones die in noise suppression).
 * The host page and the widget bundle come from a tiny server on another origin (the Worker serves no widget).
 */

const DATABASE_URL = process.env.TEST_DATABASE_URL?.trim();
const SECRET_KEY = 'widget-edge-test-secret-key-0123456789abcdef';
const INTERNAL_SECRET = 'widget-edge-test-internal-secret-0123456789';
/**
 * The caller's three lines, in ms from the moment the microphone opens (every call starts the file again): the
 * first after the greeting; the second over a long reply (barge-in); the third after a dropped socket.
 */
const CALLER = [
  { startMs: 3_000, words: ['what', 'is', 'the', 'weather', 'today'] },
  { startMs: 9_000, words: ['okay', 'stop'] },
  { startMs: 14_500, words: ['hi', 'are', 'you', 'still', 'there'] },
];
const line = (i: number) => CALLER[i]!.words.join(' ');
const GREETING = 'hello welcome';
const REPLY = 'it is sunny and warm';
/** About 9 s of tone words: still playing when the caller's second line comes. */
const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny and the dragon was warm and once upon a time there was a story';

let browser: Browser;
let site: StaticSite;
let wrangler: WranglerDev;
let edgeUrl: string;
let contexts: CallContextStore;
let conversations: ConversationStore;
let assistantId: string;
let publishableKey: string;
let deepgram: DeepgramFakeServer;
let openai: OpenAiFake;
const cleanups: (() => Promise<unknown>)[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  chromiumPath();
  if (!DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set: the widget-against-the-edge test needs PostgreSQL (postgres://postgres@127.0.0.1:5432/test; .ci/run sets it)');
  const dir = await mkdtemp(join(tmpdir(), 'widget-edge-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));

  // PostgreSQL: a schema of this run, migrated from Node (the edge never migrates).
  const schema = `t_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const admin = createPostgresClient(DATABASE_URL, { max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const db = createPostgresClient(DATABASE_URL, { schema, max: 2 });
  cleanups.push(async () => {
    await db.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.close();
  });
  await migrate(db, await loadMigrations());
  contexts = createCallContextStore(db);
  conversations = createConversationStore(db);

  [deepgram, openai, site] = await Promise.all([startDeepgramFake(), startOpenAiFake(), startStaticSite()]);
  cleanups.push(() => deepgram.close(), () => openai.close(), () => site.close());

  const projects = createProjectStore(db);
  const project = await projects.createProject('Edge widget');
  publishableKey = (await projects.createPublishableKey(project.id, [site.origin])).key;
  assistantId = (
    await createAssistantStore(db).create({
      projectId: project.id,
      config: {
        name: 'Edge bot',
        prompt: 'You answer in the browser.',
        greeting: GREETING,
        stt: { provider: 'deepgram', endpoint: deepgram.endpoint, model: 'nova-3' },
        llm: { provider: 'openai', endpoint: openai.endpoint, model: 'gpt-fake' },
        tts: { provider: 'deepgram', endpoint: deepgram.endpoint, model: 'aura-2-thalia-en' },
        vad: { provider: 'webrtc', webrtcMode: 2 },
        idle: { timeoutMs: 0 },
      },
    })
  ).id;
  await createCredentialStore(db, await createSecretBox(SECRET_KEY)).create({ projectId: project.id, provider: 'deepgram', name: 'dg', secret: JSON.stringify({ apiKey: deepgram.apiKey }), isDefault: true });

  // The Worker under `wrangler dev` (workerd, as `npm run dev:edge` runs it) from the repository's
  // wrangler.toml: its own build, the TalkSession Durable Object, Hyperdrive to local PostgreSQL.
  const [port, widgetJs, wav] = await Promise.all([freePort(), buildWidgetBundle(), toneWav(join(dir, 'tones.wav'), CALLER)]);
  edgeUrl = `http://127.0.0.1:${port}`;
  const hyperdrive = new URL(DATABASE_URL);
  // Hyperdrive's local connection string must carry a password, even with trust auth.
  if (!hyperdrive.password) hyperdrive.password = 'dev';
  const vars = {
    DATABASE_SCHEMA: schema,
    SECRET_KEY,
    INTERNAL_SECRET,
    OPENAI_API_KEY: openai.apiKey,
    // Browser calls never reach the registry; the Worker still needs the setting.
    UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:9',
    UPSTASH_REDIS_REST_TOKEN: 'unused',
    PUBLIC_BASE_URL: edgeUrl,
    LOG_LEVEL: 'warn',
  };
  wrangler = await startWranglerDev({ port, persistTo: join(dir, 'wrangler-state'), vars, hyperdrive: hyperdrive.toString(), baseUrl: edgeUrl });
  cleanups.push(() => wrangler.stop());

  site.put('/widget.js', 'text/javascript', widgetJs);
  site.put(
    '/',
    'text/html',
    `<!doctype html><html><head><title>Edge widget</title><link rel="icon" href="data:,"></head><body><h1>A page on ${site.origin}</h1>
<script src="/widget.js" data-auto="false"></script>
<script>
  window.widget = VoiceWidget.create({
    assistantId: ${JSON.stringify(assistantId)},
    publishableKey: ${JSON.stringify(publishableKey)},
    baseUrl: ${JSON.stringify(edgeUrl)},
    title: 'Edge assistant',
    audioConstraints: { noiseSuppression: false, echoCancellation: false, autoGainControl: false },
  });
</script></body></html>`,
  );
  browser = await launchBrowser(wav.path);
  cleanups.push(() => browser.close());
}, 90_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.warn('cleanup failed:', error));
});

type WidgetWindow = Window & { widget: VoiceWidget };

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return predicate();
}

/** A page hosting the widget, in a context allowed the microphone; on failure its console and a screenshot. */
async function withWidgetPage(name: string, run: (page: Page) => Promise<void>): Promise<void> {
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  let log: string[] = [];
  try {
    context = await browser.newContext({ permissions: ['microphone'], viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    log = recordConsole(page);
    await page.goto(site.url);
    await expect.poll(() => page!.locator('.voice-widget').getAttribute('data-state'), { timeout: 10_000 }).toBe('idle');
    // The widget's events with their times, for a failure's message.
    await page.evaluate(() => {
      const w = (window as unknown as WidgetWindow).widget;
      const t0 = performance.now();
      const events: string[] = [];
      (window as unknown as { events: string[] }).events = events;
      const at = () => Math.round(performance.now() - t0);
      w.on('transcript', (e) => events.push(`${at()} ${e.role} ${e.id} ${e.final ? 'final' : 'interim'} ${e.text}`));
      w.on('state', (state) => events.push(`${at()} state ${state}`));
      w.on('event', (e) => events.push(`${at()} event ${e.name} ${JSON.stringify(e.data)}`));
      w.on('error', (e) => events.push(`${at()} error ${e.code} ${e.detail ?? ''}`));
    });
    await run(page);
  } catch (error) {
    if (page) console.warn(`widget events of ${name}:\n${(await page.evaluate(() => (window as unknown as { events?: string[] }).events ?? []).catch(() => [])).join('\n')}`);
    if (page) await screenshot(page, `failed-${name}`).catch(() => undefined);
    console.warn(`browser console of ${name}:\n${log.join('\n')}`);
    throw error;
  } finally {
    await context?.close();
  }
}

/** A real click on the widget's call button; resolves with the session's context id. */
async function clickCall(page: Page): Promise<string> {
  const session = page.waitForResponse((r) => r.url() === `${edgeUrl}/v1/talk/web/session`);
  await page.locator('.voice-widget button.call').click();
  const answer = await session;
  expect(answer.status(), await answer.text()).toBe(201);
  const { contextId, url } = (await answer.json()) as { contextId: string; url: string };
  expect(url).toBe(`${edgeUrl.replace('http', 'ws')}/v1/talk/web/ctx/${contextId}`);
  return contextId;
}

const assistantCaptions = (page: Page) => page.locator('.voice-widget .line.assistant:not(.interim)').allTextContents();
const userCaptions = (page: Page) => page.locator('.voice-widget .line.user:not(.interim)').allTextContents();
const stats = (page: Page) => page.evaluate(() => (window as unknown as WidgetWindow).widget.stats);
const lastLlmMessage = () => (openai.requests.at(-1)?.body as { messages: { role: string; content: string }[] } | undefined)?.messages.at(-1);

/** Hang up with the widget's button; the Durable Object completes the context and conversation in PostgreSQL. */
async function hangUpAndCheckCompleted(page: Page, contextId: string) {
  await page.locator('.voice-widget button.call').click();
  await expect.poll(() => page.locator('.voice-widget').getAttribute('data-state'), { timeout: 5_000 }).toBe('ended');
  expect(await waitUntil(async () => (await contexts.get(contextId))?.status === 'completed', 10_000), 'context completed').toBe(true);
  const stored = (await contexts.get(contextId))!;
  expect(await waitUntil(async () => (await conversations.get(stored.conversationId))?.status === 'completed', 10_000), 'conversation completed').toBe(true);
  return conversations.messages(stored.conversationId);
}

describe('widget in Chromium against the edge (Worker + TalkSession Durable Object in workerd)', () => {
  it('a click starts a call: greeting heard, the caller\u2019s words reach the STT, the reply plays, stop completes the context in PostgreSQL', async () => {
    await withWidgetPage('edge-call', async (page) => {
      openai.script({ type: 'reply', text: REPLY });
      const contextId = await clickCall(page);

      // The greeting: caption and audio (tone words from the Deepgram fake, through the Durable Object).
      await expect.poll(() => assistantCaptions(page), { timeout: 15_000 }).toEqual([GREETING]);
      const greeted = await stats(page);
      expect(greeted.samplesPlayed / greeted.contextRateHz, 'seconds of greeting played').toBeGreaterThan(0.3);

      // The caller's tone words, captured by the fake microphone, reach the Deepgram fake word for word.
      await expect.poll(() => userCaptions(page), { timeout: 15_000 }).toEqual([line(0)]);
      // The reply: caption and more audio played.
      await expect.poll(() => assistantCaptions(page), { timeout: 15_000 }).toEqual([GREETING, REPLY]);
      expect(lastLlmMessage()).toMatchObject({ role: 'user', content: line(0) });
      const replied = await pollPage(page, () => (window as unknown as WidgetWindow).widget.stats, (s) => s.samplesPlayed - greeted.samplesPlayed > s.contextRateHz * 0.5, 10_000);
      expect(replied.ok, `reply audio played: ${JSON.stringify(replied.last)}`).toBe(true);
      expect(replied.last.flushes).toBe(0);
      expect(replied.last.reconnects).toBe(0);
      expect(await isPng(await screenshot(page, 'edge-call'))).toBe(true);

      const messages = await hangUpAndCheckCompleted(page, contextId);
      expect(messages.map((m) => [m.role, m.text])).toEqual([
        ['assistant', GREETING],
        ['user', line(0)],
        ['assistant', REPLY],
      ]);
    });
  }, 60_000);

  it('barge-in flushes playback of a long reply, and a dropped socket re-attaches: the caller is heard and answered after it', async () => {
    await withWidgetPage('edge-barge-in-drop', async (page) => {
      openai.script({ type: 'reply', text: STORY, tokenDelayMs: 20 }, { type: 'reply', text: 'okay sure' }, { type: 'reply', text: 'welcome again' });
      const contextId = await clickCall(page);
      await expect.poll(() => userCaptions(page), { timeout: 15_000 }).toEqual([line(0)]);
      // The story plays until the caller's second line cuts it: playback is flushed and the caption cut.
      await expect.poll(async () => (await stats(page)).flushes, { timeout: 15_000 }).toBeGreaterThan(0);
      const flushed = await stats(page);
      await page.waitForTimeout(150);
      expect((await stats(page)).samplesPlayed - flushed.samplesPlayed, 'nothing more of the story played').toBeLessThan(flushed.contextRateHz * 0.05);
      await expect.poll(() => userCaptions(page), { timeout: 10_000 }).toEqual([line(0), line(1)]);
      await expect.poll(() => assistantCaptions(page), { timeout: 10_000 }).toEqual([GREETING, expect.stringMatching(/^once upon a time .* …$/), 'okay sure']);
      const cut = (await assistantCaptions(page))[1]!.replace(/ …$/, '');
      expect(STORY.startsWith(cut)).toBe(true);
      expect(cut.length).toBeLessThan(STORY.length);

      // The network drops before the third line: the widget re-attaches with its resume token and the call goes on.
      const before = await stats(page);
      await page.evaluate(() => (window as unknown as WidgetWindow).widget.simulateNetworkDrop());
      expect(await page.locator('.voice-widget').getAttribute('data-state')).toBe('reconnecting');
      await expect.poll(async () => (await stats(page)).reconnects, { timeout: 10_000 }).toBe(1);
      await expect.poll(() => userCaptions(page), { timeout: 15_000 }).toEqual([line(0), line(1), line(2)]);
      await expect.poll(() => assistantCaptions(page), { timeout: 15_000 }).toContain('welcome again');
      await expect.poll(async () => (await stats(page)).samplesPlayed - before.samplesPlayed, { timeout: 10_000 }).toBeGreaterThan(before.contextRateHz * 0.3);
      expect(await page.locator('.voice-widget .error').isHidden()).toBe(true);

      const messages = await hangUpAndCheckCompleted(page, contextId);
      expect(messages.filter((m) => m.role === 'user').map((m) => m.text)).toEqual([line(0), line(1), line(2)]);
      const story = messages.find((m) => m.role === 'assistant' && m.text.startsWith('once upon'))!;
      expect(story.interrupted).toBe(true);
      expect(story.heardText!.length).toBeLessThan(STORY.length);
    });
  }, 60_000);
});
