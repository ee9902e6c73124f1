import { copyFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { build } from 'esbuild';

/**
 * Bundles a test Worker the way wrangler would for workerd: ESM, the `workerd` export condition (postgres.js
 * picks its cloudflare:sockets build), Node and cloudflare: modules left to the runtime, and every `.wasm`
 * copied beside the bundle and kept as an import, which miniflare compiles (workerd cannot compile bytes).
 */
export async function bundleWorker(entryPoints: Record<string, string>, outDir: string): Promise<void> {
  await build({
    entryPoints: Object.fromEntries(Object.entries(entryPoints).map(([name, path]) => [name, resolve(path)])),
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser'],
    external: ['cloudflare:*', 'node:*'],
    logLevel: 'silent',
    plugins: [
      {
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
}
