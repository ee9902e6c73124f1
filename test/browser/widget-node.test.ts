import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerSpeechProviders } from '../../media-node/providers/register';
import { registerLlmProviders } from '../../media-node/providers/register-llm';
import { runMediaNode, type RunningNode } from '../../media-node/run';
import type { VoiceWidget } from '../../web/widget/widget';
import { chromiumPath, isPng, launchBrowser, recordConsole, screenshot, speechWav, startStaticSite, type StaticSite } from './browser';

/**
 * The widget in real Chromium against a real media node on embedded defaults (PGlite, `npm start`'s own
 * provider registration: PocketSphinx STT, Flite TTS, the `local` LLM stand-in), on 127.0.0.1:0. The fake
 * microphone speaks an espeak-ng line after a few seconds of silence, so the assistant's greeting is heard
 * first; each call's getUserMedia starts the file again.
 */

/** Silence before the caller speaks: the short greeting has played by then, a long one is still playing. */
const LEAD_MS = 4_500;
const CALLER_LINE = 'hello what is the weather today';
const SHORT_GREETING = 'Hello! Ask me anything.';
/** About 20 s of speech: still playing when the caller talks over it. */
const LONG_GREETING =
  'Welcome to the voice runtime demonstration. This greeting goes on for quite a while, so that there is plenty of time to ' +
  'interrupt it. It talks about the weather in distant cities, the colour of the sea at dawn, the history of the ' +
  'telephone, the patience of lighthouse keepers, and many other things that nobody asked about at all.';

let dir: string;
let running: RunningNode;
let base: string;
let browser: Browser;
let site: StaticSite;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  chromiumPath();
  dir = await mkdtemp(join(tmpdir(), 'widget-browser-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const wav = await speechWav(join(dir, 'caller.wav'), [{ silenceMs: LEAD_MS }, { say: CALLER_LINE }], 3_000);
  // What `npm start` runs (media-node/main.ts), on a random port and its own data directory.
  running = await runMediaNode({
    env: { PORT: '0', HOST: '127.0.0.1', DATA_DIR: join(dir, 'data'), DATABASE_URL: '', LOG_LEVEL: 'warn', DRAIN_TIMEOUT_MS: '2000', PATH: process.env.PATH },
    registerProviders: (registry, { metrics, logger }) => {
      registerLlmProviders(registry, { metrics });
      return registerSpeechProviders(registry, { metrics, warn: (message) => logger.warn(message) });
    },
    exit: () => undefined,
  });
  cleanups.push(() => running.stop('test over'));
  expect(running.node.generatedAdminKey, 'embedded defaults generate an admin key').toBeDefined();
  base = running.server.url;
  browser = await launchBrowser(wav.path);
  cleanups.push(() => browser.close());
  site = await startStaticSite();
  cleanups.push(() => site.close());
}, 60_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.warn('cleanup failed:', error));
});

/** Pages opened by the running test: on failure their console is printed and a screenshot saved. */
let open: { context: BrowserContext; page: Page; console: string[]; name: string }[] = [];

async function newPage(name: string, permissions: string[] = ['microphone']) {
  const context = await browser.newContext({ permissions, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const entry = { context, page, console: recordConsole(page), name };
  open.push(entry);
  return page;
}

afterEach(async (test) => {
  for (const entry of open) {
    if (test.task.result?.state === 'fail') {
      await screenshot(entry.page, `failed-${entry.name}`).catch(() => undefined);
      console.warn(`browser console of ${entry.name}:\n${entry.console.join('\n')}`);
    }
    await entry.context.close().catch(() => undefined);
  }
  open = [];
});

type DemoWindow = Window & { demoWidget?: VoiceWidget };

/** The demo page with its local keys loaded, and an assistant on the local engines made through its form. */
async function demoWithAssistant(page: Page, name: string, greeting: string): Promise<void> {
  await page.goto(`${base}/`);
  // Local keys: the keys form stays hidden, the (empty) assistant list opens the create form.
  await expect.poll(() => page.locator('#keys').isHidden(), { timeout: 10_000 }).toBe(true);
  // The list has loaded when it shows assistants, or opened the create form because it has none.
  const loaded = () => page.evaluate(() => document.querySelectorAll('#assistant option').length > 0 || (document.getElementById('create') as HTMLDetailsElement).open);
  await expect.poll(loaded, { timeout: 10_000 }).toBe(true);
  if (!(await page.locator('#create').evaluate((details: HTMLDetailsElement) => details.open))) await page.click('#create summary');
  await page.fill('#new-name', name);
  await page.fill('#new-greeting', greeting);
  await page.click('#create-assistant');
  await expect.poll(() => page.locator('#assistant option:checked').textContent(), { timeout: 10_000 }).toContain(name);
  expect(await page.locator('#setup-error').textContent()).toBe('');
}

/** A real click on "Start call"; resolves with the call's context id (from the session answer). */
async function startCall(page: Page): Promise<string> {
  const session = page.waitForResponse((r) => r.url().endsWith('/v1/talk/web/session') && r.request().method() === 'POST');
  await page.click('#call');
  const response = await session;
  expect(response.status(), await response.text()).toBe(201);
  return ((await response.json()) as { contextId: string }).contextId;
}

const stats = (page: Page) => page.evaluate(() => (window as DemoWindow).demoWidget!.stats);
const finalCaptions = (page: Page, role: 'user' | 'assistant') =>
  page.locator(`#transcript .line.${role}:not(.interim)`).evaluateAll((lines) => lines.map((l) => l.textContent ?? ''));

async function waitForContextStatus(contextId: string, status: string, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  let current: string | undefined;
  while (Date.now() < deadline) {
    current = (await running.node.stores.callContexts.get(contextId))?.status;
    if (current === status) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return current;
}

describe('widget in Chromium against a media node (local engines)', () => {
  it('demo page: a click starts a call, the greeting is heard, the caller is recognised and answered, latency charted, stop completes the call', async () => {
    const page = await newPage('demo-call');
    await demoWithAssistant(page, 'Short greeter', SHORT_GREETING);
    const startedAt = Date.now();
    const contextId = await startCall(page);

    // The greeting: its caption and its audio, rendered by the playback worklet.
    await expect.poll(() => finalCaptions(page, 'assistant'), { timeout: 10_000 }).toContain(SHORT_GREETING);
    const greetedAfterMs = Date.now() - startedAt;
    await expect.poll(() => page.locator('body').getAttribute('data-state'), { timeout: 5_000 }).toMatch(/^(listening|speaking)$/);
    const greeted = await stats(page);
    expect(greeted.contextRateHz).toBeGreaterThan(0);
    expect(greeted.samplesPlayed / greeted.contextRateHz, 'seconds of greeting played').toBeGreaterThan(0.5);
    // The microphone really reached the node (20 ms frames since the call went live).
    expect(greeted.framesSent).toBeGreaterThan(20);

    // The caller's line (PocketSphinx is rough: any words will do), then the assistant's reply.
    await expect.poll(() => finalCaptions(page, 'user'), { timeout: 15_000 }).toEqual([expect.stringMatching(/\w/)]);
    const heard = (await finalCaptions(page, 'user'))[0]!;
    await expect.poll(async () => (await finalCaptions(page, 'assistant')).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(async () => (await stats(page)).samplesPlayed - greeted.samplesPlayed, { timeout: 10_000 }).toBeGreaterThan(greeted.contextRateHz * 0.5);
    // The per-turn latency chart: a bar for the spoken turn (its voice-to-voice total, not "(not spoken)").
    await expect.poll(() => page.locator('#chart svg text').allTextContents(), { timeout: 10_000 }).toEqual(expect.arrayContaining([expect.stringMatching(/^\d+$/)]));
    expect(await page.locator('#chart svg rect').count()).toBeGreaterThan(1);
    const shot = await screenshot(page, 'demo-mid-call');
    expect(await isPng(shot)).toBe(true);
    console.log(`demo call: greeting caption final after ${greetedAfterMs} ms; recognised "${heard}"; reply played after ${Date.now() - startedAt} ms from the click; screenshot ${shot}`);

    // Stop: the call ends cleanly, for the page and in the node's store.
    await page.click('#call');
    await expect.poll(() => page.locator('#state').textContent(), { timeout: 5_000 }).toBe('ended');
    expect(await page.locator('#call-error').textContent()).toBe('');
    expect(await waitForContextStatus(contextId, 'completed', 5_000)).toBe('completed');
  }, 60_000);

  it('barge-in: the caller talking over a long greeting flushes playback, and the greeting stops where it was cut', async () => {
    const page = await newPage('barge-in');
    await demoWithAssistant(page, 'Long talker', LONG_GREETING);
    await startCall(page);
    // Sample the widget's counters and state in the page every 10 ms.
    await page.evaluate(() => {
      const w = (window as DemoWindow).demoWidget!;
      const record = { samples: [] as { t: number; played: number; flushes: number; state: string }[] };
      (window as unknown as { bargeIn: typeof record }).bargeIn = record;
      setInterval(() => {
        const s = w.stats;
        record.samples.push({ t: performance.now(), played: s.samplesPlayed, flushes: s.flushes, state: w.state });
      }, 10);
    });
    await expect.poll(async () => (await stats(page)).flushes, { timeout: 20_000 }).toBeGreaterThan(0);
    await page.waitForTimeout(600);
    const { samples } = await page.evaluate(() => (window as unknown as { bargeIn: { samples: { t: number; played: number; flushes: number; state: string }[] } }).bargeIn);
    const rate = (await stats(page)).contextRateHz;
    const at = samples.findIndex((s) => s.flushes > 0);
    const flushed = samples[at]!;
    const after = samples.filter((s) => s.t >= flushed.t && s.t <= flushed.t + 500);
    // The worklet reports every ~100 ms, so the value seen at the flush may be one report old: look for a stretch
    // of ≥ 150 ms in the next half second in which nothing played (the reply has not started yet by then).
    const stoodStill = after.some((a) => after.some((b) => b.t - a.t >= 150 && b.played === a.played));
    const settled = after.find((s) => s.t >= flushed.t + 200) ?? after.at(-1)!;
    console.log(`barge-in: flushed after ${(flushed.played / rate).toFixed(2)} s of greeting played; ${((settled.played - flushed.played) / rate).toFixed(3)} s more within 200 ms`);
    // The caller spoke at LEAD_MS: the greeting (about 20 s) was cut well before its end.
    expect(flushed.played / rate).toBeGreaterThan(1);
    expect(flushed.played / rate).toBeLessThan(12);
    // Playback stopped at the flush: the widget left "speaking" at once and the played counter stood still.
    expect(after.some((s) => s.t <= flushed.t + 100 && s.state !== 'speaking'), 'playback went quiet within 100 ms').toBe(true);
    expect(stoodStill, `no playback for 150 ms after the flush: ${JSON.stringify(after.filter((_, i) => i % 5 === 0).map((s) => [Math.round(s.t - flushed.t), s.played, s.state]))}`).toBe(true);
    // The greeting's caption is what was heard, marked as cut.
    await expect.poll(() => finalCaptions(page, 'assistant'), { timeout: 5_000 }).toEqual(expect.arrayContaining([expect.stringMatching(/…$/)]));
    const cut = (await finalCaptions(page, 'assistant')).find((c) => c.endsWith('…'))!;
    expect(LONG_GREETING.startsWith(cut.slice(0, 20))).toBe(true);
    expect(cut.length).toBeLessThan(LONG_GREETING.length);
    await page.click('#call');
    await expect.poll(() => page.locator('#state').textContent(), { timeout: 5_000 }).toBe('ended');
  }, 60_000);

  it('permission denied: the call does not start and the page says, in plain words, that the microphone was blocked', async () => {
    const page = await newPage('mic-denied', []);
    await demoWithAssistant(page, 'No microphone', SHORT_GREETING);
    let sessions = 0;
    page.on('request', (r) => void (r.url().endsWith('/v1/talk/web/session') && sessions++));
    await page.click('#call');
    await expect.poll(() => page.locator('#state').textContent(), { timeout: 5_000 }).toBe('error');
    const message = (await page.locator('#call-error').textContent()) ?? '';
    expect(message).toMatch(/microphone/i);
    expect(message).toMatch(/blocked/i);
    expect(await page.evaluate(() => (window as DemoWindow).demoWidget!.stats.framesSent)).toBe(0);
    // The widget gave up before asking for a session.
    expect(sessions).toBe(0);
    expect(await page.evaluate(async () => (await navigator.permissions.query({ name: 'microphone' as PermissionName })).state)).toBe('denied');
  }, 30_000);

  it('a dropped socket re-attaches with the resume token and the call goes on: the caller is heard and answered after it', async () => {
    const page = await newPage('network-drop');
    await demoWithAssistant(page, 'Resilient', SHORT_GREETING);
    const contextId = await startCall(page);
    await expect.poll(() => finalCaptions(page, 'assistant'), { timeout: 10_000 }).toContain(SHORT_GREETING);
    // Before the caller speaks (LEAD_MS into the call), the network drops.
    const states: string[] = [];
    await page.exposeFunction('recordState', (state: string) => void states.push(state));
    await page.evaluate(() => {
      const w = (window as DemoWindow).demoWidget!;
      w.on('state', (state) => (window as unknown as { recordState(s: string): void }).recordState(state));
      w.simulateNetworkDrop();
    });
    await expect.poll(() => page.evaluate(() => (window as DemoWindow).demoWidget!.stats.reconnects), { timeout: 10_000 }).toBe(1);
    const reattached = await stats(page);
    expect(states[0]).toBe('reconnecting');
    expect(states).toContain('listening');
    // The call went on: the caller's words after the drop were heard and answered, and the answer played.
    await expect.poll(() => finalCaptions(page, 'user'), { timeout: 15_000 }).toEqual([expect.stringMatching(/\w/)]);
    await expect.poll(async () => (await finalCaptions(page, 'assistant')).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(async () => (await stats(page)).samplesPlayed - reattached.samplesPlayed, { timeout: 10_000 }).toBeGreaterThan(reattached.contextRateHz * 0.5);
    expect((await stats(page)).framesSent).toBeGreaterThan(reattached.framesSent + 50);
    expect(await page.locator('#call-error').textContent()).toBe('');
    await page.click('#call');
    await expect.poll(() => page.locator('#state').textContent(), { timeout: 5_000 }).toBe('ended');
    expect(await waitForContextStatus(contextId, 'completed', 5_000)).toBe('completed');
  }, 60_000);

  it('the embed snippet on another origin: a publishable key listing the origin calls; one that does not shows a plain error', async () => {
    const admin = running.node.generatedAdminKey!;
    const post = async (path: string, key: string, body: unknown) => {
      const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(201);
      return (await response.json()) as Record<string, unknown> & { id: string; key: string };
    };
    const created = (await post('/v1/projects', admin, { name: 'Shop' })) as unknown as { project: { id: string }; apiKey: { key: string } };
    const assistant = await post('/v1/assistants', created.apiKey.key, {
      name: 'Shop helper',
      prompt: 'You help shoppers.',
      greeting: 'Welcome to the shop.',
      stt: { provider: 'local' },
      llm: { provider: 'local' },
      tts: { provider: 'local' },
    });
    const allowed = await post(`/v1/projects/${created.project.id}/publishable-keys`, admin, { allowedOrigins: [site.origin] });
    const elsewhere = await post(`/v1/projects/${created.project.id}/publishable-keys`, admin, { allowedOrigins: ['https://shop.example'] });
    const embedPage = (key: string) =>
      `<!doctype html><html><head><title>A shop</title><link rel="icon" href="data:,"></head><body><h1>A shop on ${site.origin}</h1>` +
      `<script src="${base}/widget.js" data-assistant="${assistant.id}" data-key="${key}" data-title="Shop helper"></script></body></html>`;
    site.put('/allowed.html', 'text/html', embedPage(allowed.key));
    site.put('/refused.html', 'text/html', embedPage(elsewhere.key));

    const page = await newPage('embed-allowed');
    await page.goto(`${site.origin}/allowed.html`);
    const host = page.locator('.voice-widget');
    await expect.poll(() => host.getAttribute('data-state'), { timeout: 10_000 }).toBe('idle');
    const session = page.waitForResponse((r) => r.url() === `${base}/v1/talk/web/session`);
    await page.locator('.voice-widget button.call').click();
    expect((await session).status()).toBe(201);
    const contextId = ((await (await session).json()) as { contextId: string }).contextId;
    await expect.poll(() => page.locator('.voice-widget .line.assistant:not(.interim)').allTextContents(), { timeout: 10_000 }).toContain('Welcome to the shop.');
    const played = await page.evaluate(() => (window as unknown as { VoiceWidget: { stats: { samplesPlayed: number; contextRateHz: number } } }).VoiceWidget.stats);
    expect(played.samplesPlayed / played.contextRateHz).toBeGreaterThan(0.5);
    expect(await host.getAttribute('data-state')).toMatch(/^(listening|speaking)$/);
    await page.locator('.voice-widget button.call').click();
    await expect.poll(() => host.getAttribute('data-state'), { timeout: 5_000 }).toBe('ended');
    expect(await waitForContextStatus(contextId, 'completed', 5_000)).toBe('completed');

    const refused = await newPage('embed-refused');
    await refused.goto(`${site.origin}/refused.html`);
    const refusedHost = refused.locator('.voice-widget');
    await expect.poll(() => refusedHost.getAttribute('data-state'), { timeout: 10_000 }).toBe('idle');
    await refused.locator('.voice-widget button.call').click();
    await expect.poll(() => refusedHost.getAttribute('data-state'), { timeout: 10_000 }).toBe('error');
    const error = refused.locator('.voice-widget .error');
    expect(await error.isVisible()).toBe(true);
    expect(await error.textContent()).toMatch(/not allowed to use this assistant/);
    expect(await error.getAttribute('data-code')).toBe('SESSION_REFUSED');
  }, 60_000);
});
