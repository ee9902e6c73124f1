import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { decodeWav, encodeWav, WavError } from '../../shared/audio/wav';
import { synthesizeWords } from '../fakes/tones';

/**
 * Headless Chromium for the widget's end-to-end tests, set up as ../shared/reference/verified-browser.md
 * found works on this machine kind: Debian's chromium driven by playwright-core, a fake microphone playing a
 * WAV once (`%noloop`), microphone access through per-context permissions (so one browser can also be
 * denied), calls started with a real click (the autoplay path pages take).
 */

export const RESULTS_DIR = join(import.meta.dirname, 'results');
const CHROMIUM = process.env.CHROMIUM_PATH?.trim() || '/usr/bin/chromium';

/** The browser binary, or a failure that says how to get it (these tests never skip). */
export function chromiumPath(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  throw new Error(
    `Chromium is not installed at ${CHROMIUM}: the widget's browser tests need it (apt-get install -y chromium, as .ci/run does, or set CHROMIUM_PATH)`,
  );
}

/**
 * One browser whose fake microphone plays `wavPath` from the moment a page opens it (each new capture starts
 * the file again). No `--use-fake-ui-for-media-stream`: that flag grants the microphone whatever the context's
 * permissions say, and the denied case needs a context without them.
 */
export async function launchBrowser(wavPath: string): Promise<Browser> {
  if (!existsSync(wavPath)) throw new Error(`fake microphone WAV missing: ${wavPath} (Chromium would capture silence)`);
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wavPath}%noloop`,
    ],
  });
}

/** Page errors and console lines, kept for a failing test's message. */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (message) => {
    if (lines.length < 200) lines.push(`[${message.type()}] ${message.text()}`);
  });
  page.on('pageerror', (error) => lines.push(`[pageerror] ${error.message}`));
  return lines;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Polls `read` in the page until `accept` holds; returns whether it did (the last value is in `last`). */
export async function pollPage<T>(page: Page, read: () => T | Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<{ ok: boolean; last: T }> {
  const deadline = Date.now() + timeoutMs;
  let last = await page.evaluate(read);
  while (!accept(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await page.evaluate(read);
  }
  return { ok: accept(last), last };
}

const silence = (sampleRateHz: number, ms: number) => new Int16Array(Math.round((sampleRateHz * ms) / 1000));

function concat(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function writePcmWav(path: string, sampleRateHz: number, pcm: Int16Array): Promise<void> {
  await writeFile(path, encodeWav({ encoding: 'pcm16', sampleRateHz }, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength)));
}

/** A fake-microphone line: silence, then each part (speech or more silence) in order, then trailing silence. */
export type WavPart = { readonly say: string } | { readonly silenceMs: number };

/**
 * Speech spoken by espeak-ng (a separate program: GPL, never bundled), assembled in TypeScript (no sox):
 * 16-bit mono at espeak's own 22.05 kHz (Chromium resamples the fake device), with the silences asked for.
 * Returns the path and where each spoken part starts, in ms from the file's start.
 */
export async function speechWav(path: string, parts: readonly WavPart[], trailingSilenceMs = 2_000): Promise<{ path: string; speechStartsMs: number[]; durationMs: number }> {
  const pieces: Int16Array[] = [];
  const speechStartsMs: number[] = [];
  let samples = 0;
  const spoken = await Promise.all(parts.map((part, i) => ('say' in part ? espeak(part.say, `${path}.part${i}.wav`) : undefined)));
  const rates = new Set(spoken.flatMap((s) => (s ? [s.sampleRateHz] : [])));
  if (rates.size !== 1) throw new Error(`a speech WAV needs spoken parts at one rate (espeak-ng gave ${[...rates].join(', ') || 'none'})`);
  const rate = [...rates][0]!;
  for (const [i, part] of parts.entries()) {
    const piece = 'say' in part ? spoken[i]!.pcm : silence(rate, part.silenceMs);
    if ('say' in part) speechStartsMs.push(Math.round((samples * 1000) / rate));
    pieces.push(piece);
    samples += piece.length;
  }
  pieces.push(silence(rate, trailingSilenceMs));
  const pcm = concat(pieces);
  await writePcmWav(path, rate, pcm);
  return { path, speechStartsMs, durationMs: Math.round((pcm.length * 1000) / rate) };
}

async function espeak(text: string, scratchPath: string): Promise<{ sampleRateHz: number; pcm: Int16Array }> {
  // To a file, not --stdout: on a pipe espeak-ng cannot seek back and leaves the sizes in the header wrong.
  await promisify(execFile)('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', scratchPath, text]).catch((error: unknown) => {
    throw new Error(`espeak-ng failed (the media-node browser test speaks its caller with it: apt-get install -y espeak-ng): ${String(error)}`);
  });
  const file = await readFile(scratchPath);
  const wav = decodeWav(new Uint8Array(file.buffer, file.byteOffset, file.byteLength));
  if (wav instanceof WavError) throw wav;
  if (wav.format.encoding !== 'pcm16') throw new Error(`espeak-ng wrote ${wav.format.encoding}, expected PCM16`);
  // A copy, so the samples are aligned whatever the header's length.
  const bytes = wav.data.slice();
  return { sampleRateHz: wav.format.sampleRateHz, pcm: new Int16Array(bytes.buffer, 0, bytes.byteLength >> 1) };
}

/**
 * Tone words (test/fakes/tones.ts) at 48 kHz for the tone-hearing STT fakes: each utterance starts at its
 * `startMs` (silence before), one word at a time with `gapMs` of silence between words (wider than the
 * alphabet's 40 ms, so the browser's resampling filters cannot fill the gap a word needs to end on).
 */
export async function toneWav(
  path: string,
  utterances: readonly { readonly startMs: number; readonly words: readonly string[] }[],
  options: { gapMs?: number; trailingSilenceMs?: number } = {},
): Promise<{ path: string; durationMs: number }> {
  const rate = 48_000;
  const gap = silence(rate, options.gapMs ?? 100);
  const pieces: Int16Array[] = [];
  let samples = 0;
  for (const { startMs, words } of utterances) {
    const start = Math.round((startMs * rate) / 1000);
    if (start < samples) throw new Error(`the utterance at ${startMs} ms overlaps the one before it`);
    pieces.push(new Int16Array(start - samples));
    samples = start;
    for (const word of words) {
      const tone = synthesizeWords([word], rate).pcm;
      pieces.push(tone, gap);
      samples += tone.length + gap.length;
    }
  }
  pieces.push(silence(rate, options.trailingSilenceMs ?? 2_000));
  const pcm = concat(pieces);
  await writePcmWav(path, rate, pcm);
  return { path, durationMs: Math.round((pcm.length * 1000) / rate) };
}

export interface StaticSite {
  readonly url: string;
  readonly origin: string;
  /** Serve `body` at `path` (replaces an earlier one). */
  put(path: string, contentType: string, body: string): void;
  close(): Promise<void>;
}

/** A tiny web server on 127.0.0.1 for host pages: another origin than the node or the edge. */
export async function startStaticSite(): Promise<StaticSite> {
  const files = new Map<string, { contentType: string; body: string }>();
  const server: Server = createServer((req, res) => {
    const file = files.get(new URL(req.url ?? '/', 'http://x').pathname);
    if (!file) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    res.writeHead(200, { 'content-type': file.contentType, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/`,
    origin,
    put: (path, contentType, body) => void files.set(path, { contentType, body }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The built widget bundle (scripts/build-widget.mjs), unminified so a failure's stack reads. */
export async function buildWidgetBundle(): Promise<string> {
  const script = (await import(join(import.meta.dirname, '..', '..', 'scripts', 'build-widget.mjs'))) as { buildWidget(o: { minify: boolean }): Promise<{ code: string }> };
  return (await script.buildWidget({ minify: false })).code;
}

/** Bytes of a file as a data URL-free check that it is a PNG (the screenshot really was written). */
export async function isPng(path: string): Promise<boolean> {
  const head = (await readFile(path)).subarray(0, 8);
  return head.equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}
