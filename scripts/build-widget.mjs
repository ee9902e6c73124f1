#!/usr/bin/env node
/* global process, console, Buffer */
// Builds the browser widget (web/widget/) into one script: the two audio worklets are bundled first and
// inlined as strings (loaded through Blob URLs), then the widget with the protobuf runtime. The demo page's
// script (web/demo/demo.ts, the widget included) is built the same way.
//
//   node scripts/build-widget.mjs            → dist/widget.js and dist/demo.js (minified) and their sizes
//   node scripts/build-widget.mjs --dev      → unminified, with inline source maps
//
// Also imported by media-node/widget-assets.ts, which builds on demand when esbuild is installed.
import { build } from 'esbuild';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WIDGET_OUTPUT = join(ROOT, 'dist', 'widget.js');
export const DEMO_OUTPUT = join(ROOT, 'dist', 'demo.js');
/** Browsers with AudioWorklet (2020+) all run ES2020. */
const TARGET = 'es2020';

async function bundleWorklet(entry, minify) {
  const result = await build({
    entryPoints: [join(ROOT, 'web', 'widget', entry)],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: TARGET,
    minify,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

/**
 * @param {string} entry path under web/
 * @param {{ minify?: boolean, sourcemap?: boolean }} [options]
 * @returns {Promise<{ code: string, bytes: number }>}
 */
async function bundleEntry(entry, options = {}) {
  const minify = options.minify ?? true;
  const [capture, playback] = await Promise.all([bundleWorklet('capture-worklet.ts', minify), bundleWorklet('playback-worklet.ts', minify)]);
  const result = await build({
    entryPoints: [join(ROOT, 'web', entry)],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: TARGET,
    minify,
    sourcemap: options.sourcemap ? 'inline' : false,
    legalComments: 'none',
    logLevel: 'silent',
    define: {
      __VOICE_WIDGET_CAPTURE_WORKLET__: JSON.stringify(capture),
      __VOICE_WIDGET_PLAYBACK_WORKLET__: JSON.stringify(playback),
    },
    banner: { js: '/* voice-runtime widget, Apache-2.0 */' },
  });
  const code = result.outputFiles[0].text;
  return { code, bytes: Buffer.byteLength(code) };
}

/** The embeddable widget (`/widget.js`). */
export const buildWidget = (options) => bundleEntry('widget/index.ts', options);
/** The demo page's script (`/demo.js`). */
export const buildDemo = (options) => bundleEntry('demo/demo.ts', options);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dev = process.argv.includes('--dev');
  await mkdir(dirname(WIDGET_OUTPUT), { recursive: true });
  for (const [output, buildOne] of [
    [WIDGET_OUTPUT, buildWidget],
    [DEMO_OUTPUT, buildDemo],
  ]) {
    const { code, bytes } = await buildOne({ minify: !dev, sourcemap: dev });
    await writeFile(output, code);
    console.log(`${output}: ${(bytes / 1024).toFixed(1)} KiB${dev ? ' (unminified)' : ''}`);
  }
}
