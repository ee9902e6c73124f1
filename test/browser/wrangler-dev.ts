import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRANGLER = fileURLToPath(new URL('../../node_modules/wrangler/bin/wrangler.js', import.meta.url));

export interface WranglerDev {
  /** What wrangler printed (for a failure's message). */
  readonly output: () => string;
  stop(): Promise<void>;
}

/**
 * `wrangler dev` on the repository's wrangler.toml, as `npm run dev:edge` runs it: node runs wrangler directly
 * (killing that PID ends its workerd children), DO state in a throwaway folder, vars given with `--var` (they
 * win over a developer's .dev.vars), the Hyperdrive binding pointed at `hyperdrive`. Resolves once the
 * Worker answers `GET /healthz/`.
 */
export async function startWranglerDev(options: {
  port: number;
  persistTo: string;
  vars: Readonly<Record<string, string>>;
  hyperdrive: string;
  baseUrl: string;
  readyTimeoutMs?: number;
}): Promise<WranglerDev> {
  const args = [WRANGLER, 'dev', '--ip', '127.0.0.1', '--port', String(options.port), '--persist-to', options.persistTo, '--log-level', 'warn'];
  for (const [name, value] of Object.entries(options.vars)) args.push('--var', `${name}:${value}`);
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: options.hyperdrive },
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const cut = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(cut);
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}:\n${output}`);
    const ok = await fetch(`${options.baseUrl}/healthz/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { output: () => output, stop };
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new Error(`wrangler dev did not answer /healthz/ within ${options.readyTimeoutMs ?? 60_000} ms:\n${output}`);
}
