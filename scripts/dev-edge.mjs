#!/usr/bin/env node
/* global process, console */
/**
 * `npm run dev:edge`: the edge Worker in local workerd (wrangler dev), against the local PostgreSQL of
 * wrangler.toml's Hyperdrive `localConnectionString`.
 *
 * - State (Durable Object storage) persists in .wrangler/state (git-ignored), so it survives restarts;
 *   delete that folder to start clean.
 * - Local secrets come from .dev.vars (git-ignored), created on the first run with a random SECRET_KEY and
 *   INTERNAL_SECRET. Media nodes that should take calls from this edge need the same two values. Point
 *   UPSTASH_REDIS_REST_URL/TOKEN at an Upstash database, or at any Upstash-REST-compatible proxy in front of
 *   the Redis your media nodes use; without one, /readiness/ reports the cache as down.
 * - Telemetry off (WRANGLER_SEND_METRICS=false). Extra arguments go to wrangler (`npm run dev:edge -- --port 9787`).
 *
 * wrangler is started with node directly (not npx), and this process forwards SIGINT/SIGTERM to it, so
 * stopping this PID stops wrangler and its workerd children.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const devVars = join(root, '.dev.vars');
const wrangler = join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const port = process.env.EDGE_PORT ?? '8787';

if (!existsSync(devVars)) {
  const secret = () => randomBytes(48).toString('base64url');
  const lines = [
    '# Local secrets for `npm run dev:edge` (wrangler dev). Git-ignored: never commit this file.',
    '# Generated once; media nodes taking calls from this edge need the same SECRET_KEY and INTERNAL_SECRET.',
    `SECRET_KEY=${secret()}`,
    `INTERNAL_SECRET=${secret()}`,
    `PUBLIC_BASE_URL=http://127.0.0.1:${port}`,
    '# An Upstash database, or an Upstash-REST-compatible proxy in front of the media nodes\' Redis:',
    'UPSTASH_REDIS_REST_URL=http://127.0.0.1:8079',
    'UPSTASH_REDIS_REST_TOKEN=local-dev-token',
    '',
  ];
  // `wx`: never overwrite a file created in the meantime; 0600: it holds secrets.
  await writeFile(devVars, lines.join('\n'), { mode: 0o600, flag: 'wx' });
  console.log(`dev:edge: wrote ${devVars} with a random SECRET_KEY and INTERNAL_SECRET`);
}

const args = [wrangler, 'dev', '--persist-to', join(root, '.wrangler', 'state'), '--ip', '127.0.0.1', '--port', port, ...process.argv.slice(2)];
const child = spawn(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (child.exitCode === null) child.kill(signal);
  });
}
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
child.on('error', (error) => {
  console.error(`dev:edge: could not start wrangler: ${error.message}`);
  process.exitCode = 1;
});
