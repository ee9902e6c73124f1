import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The shared audio code inside real workerd: no nodejs_compat, .wasm imported as compiled modules (Fix A).
let outDir: string;
let mf: Miniflare | undefined;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'workerd-smoke-'));
  await build({
    entryPoints: [resolve(import.meta.dirname, 'smoke-worker.ts')],
    outfile: join(outDir, 'worker.js'),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser'],
    logLevel: 'silent',
    plugins: [
      {
        // Each .wasm is copied next to the bundle and stays an import; miniflare compiles it (CompiledWasm).
        name: 'wasm-beside-bundle',
        setup(builder) {
          builder.onResolve({ filter: /\.wasm$/ }, async (args) => {
            const source = resolve(args.resolveDir, args.path);
            await copyFile(source, join(outDir, basename(source)));
            return { path: `./${basename(source)}`, external: true };
          });
        },
      },
    ],
  });
  mf = new Miniflare({
    modules: true,
    scriptPath: join(outDir, 'worker.js'),
    modulesRoot: outDir,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2026-04-20',
    cf: false,
  });
  await mf.ready;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
  await rm(outDir, { recursive: true, force: true });
});

describe('workerd smoke (miniflare)', () => {
  it('resamples 48k → 16k and runs the WebRTC VAD inside workerd', async () => {
    const response = await mf!.dispatchFetch('http://smoke.test/');
    const body = (await response.json()) as {
      error?: string;
      userAgent: string;
      resampler: { frameLengths: number[]; totalSamples: number; amplitude: number; wasmMemoryBytes: number };
      vad: { silenceVoiced: number; speechLikeVoiced: number; frames: number };
    };
    expect(body.error).toBeUndefined();
    expect(response.status).toBe(200);
    expect(body.userAgent).toBe('Cloudflare-Workers');
    expect(body.resampler.frameLengths).toEqual([320]);
    expect(body.resampler.totalSamples).toBe(16_000);
    expect(Math.abs(20 * Math.log10(body.resampler.amplitude / 0.5))).toBeLessThan(0.1);
    expect(body.resampler.wasmMemoryBytes).toBeGreaterThan(0);
    expect(body.vad.silenceVoiced).toBe(0);
    expect(body.vad.speechLikeVoiced).toBe(body.vad.frames);
  });
});
