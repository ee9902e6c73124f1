import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Runs sipp (3.6) as a real SIP peer for end-to-end tests: UAC scenarios call the runtime, UAS scenarios
 * answer its outbound calls. sipp runs without a terminal (stdin ignored, -nostdin), every trace goes to a
 * private temp directory, and what the scenarios `<log>` (the runtime's SDP answer, tags, Refer-To) is
 * parsed and handed back, live for a background run.
 */

export const SCENARIO_DIR = fileURLToPath(new URL('./scenarios/', import.meta.url));

/**
 * Values for the custom keywords the scenarios use; `-key` overrides them. sipp refuses a scenario that
 * names a keyword it has no value for, so every one has a default. (`[media_port]`/`[media_ip]` are sipp's
 * own and make it open media sockets: the scenarios use `[rtp_port]`/`[rtp_ip]` for the test's socket.)
 */
export const DEFAULT_KEYS: Readonly<Record<string, string>> = {
  caller: '+15550100',
  rtp_ip: '127.0.0.1',
  // The discard port: a scenario run without a media socket still produces a valid offer.
  rtp_port: '9',
  rtp_payloads: '0 8 101',
  call_ms: '1000',
  ring_ms: '0',
  digit: '5',
  user: 'sipp',
  password: 'sipp',
};

/** Flags a scenario cannot work without (sipp has no way to say them in the XML). */
const SCENARIO_ARGS: Readonly<Record<string, readonly string[]>> = {
  // Responses to the first INVITE arrive during the pause before its copy: drop them instead of aborting.
  'uac-retransmit.xml': ['-default_behaviors', 'all,-abortunexp'],
};

export interface SippOptions {
  /** A file name in test/sip/scenarios (with or without `.xml`), or an absolute path. */
  readonly scenario: string;
  /** `host:port` of the peer; required for UAC scenarios, omitted for UAS ones (sipp waits for calls). */
  readonly target?: string;
  /** `-s`: the user part of the request URI (the number called). */
  readonly service?: string;
  /** `-key name value` for the scenarios' custom keywords (see DEFAULT_KEYS); `rtcp_port` defaults to rtp_port + 1. */
  readonly keys?: Readonly<Record<string, string | number>>;
  /** `-m`: calls to make (UAC) or to answer (UAS) before exiting; default 1. */
  readonly calls?: number;
  /** `-r`: calls per second. */
  readonly rate?: number;
  /** `-l`: maximum simultaneous calls. */
  readonly limit?: number;
  /** `-p`: sipp's SIP port; default a free one. */
  readonly localPort?: number;
  /** `-i`: the address sipp writes into Via/Contact/SDP o=; default 127.0.0.1. */
  readonly localIp?: string;
  /** Whole-run limit (`-timeout … -timeout_error`); default 30 s. */
  readonly timeoutMs?: number;
  /** `-au`/`-ap`: what `[authentication]` answers a 401/407 with. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** `-inf`: CSV injection file content (first line SEQUENTIAL/RANDOM/USER; fields as [field0]…). */
  readonly csv?: string;
  readonly extraArgs?: readonly string[];
  /** Each `<log>` line as sipp writes it (polled every 20 ms). */
  readonly onLog?: (line: string) => void;
}

export interface SippStats {
  readonly successful: number;
  readonly failed: number;
}

export interface SippRun {
  /** 0 all calls successful, 1 some failed, 97 stopped by an internal command, 99 no call processed, 255 fatal. */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The -trace_err file: unexpected messages and why calls failed. */
  readonly errors: string;
  /** The -trace_msg file: every message sent and received. */
  readonly messages: string;
  /** Every `<log>` line of every call, in order. */
  readonly logs: readonly string[];
  /** From the -trace_stat file (cumulative counters of the last dump). */
  readonly stats?: SippStats;
  /** The runtime's SDP answer (UAC) or offer (UAS), from the first call's logs. */
  readonly remoteMedia?: { readonly address: string; readonly port: number };
}

export interface SippProcess {
  readonly done: Promise<SippRun>;
  /** sipp's SIP port (where a UAS scenario listens). */
  readonly port: number;
  /** `<log>` lines so far. */
  readonly logs: readonly string[];
  /** Resolves with the first log line matching `pattern` (already seen or to come); rejects after timeoutMs or when sipp exits first. */
  waitForLog(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Resolves once sipp holds its SIP port (a UAS is listening); rejects after timeoutMs or if sipp exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after a second; `done` still resolves with what was traced. */
  kill(): void;
}

export class SippMissingError extends Error {
  constructor(searched: string) {
    super(`SIPP_MISSING: the sipp binary was not found (${searched}). Install the Debian package sip-tester (sipp 3.6) or set SIPP_BIN; .ci/run installs it.`);
    this.name = 'SippMissingError';
  }
}

/** The sipp binary: SIPP_BIN, else `sipp` on PATH. Throws SippMissingError (never skips, in CI or not). */
export function sippBinary(): string {
  const explicit = process.env.SIPP_BIN;
  if (explicit) {
    if (!existsSync(explicit)) throw new SippMissingError(`SIPP_BIN=${explicit}`);
    return explicit;
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/bin', '/usr/local/bin']) {
    const candidate = join(dir, 'sipp');
    if (existsSync(candidate)) return candidate;
  }
  throw new SippMissingError(`PATH=${process.env.PATH ?? ''}`);
}

/** A UDP port that was free a moment ago (bound to port 0, then released). */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * Whether someone holds a UDP port. Linux lists bound sockets in /proc/net/udp, which we read without
 * touching the port; elsewhere we try to bind it (EADDRINUSE = held), which could, rarely, race sipp's own bind.
 */
async function udpPortInUse(port: number, host: string): Promise<boolean> {
  const table = await readFile('/proc/net/udp', 'utf8').catch(() => undefined);
  if (table !== undefined) {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    return table.split('\n').some((line) => line.trim().split(/\s+/)[1]?.endsWith(`:${hexPort}`));
  }
  const socket = createSocket('udp4');
  return new Promise<boolean>((resolve) => {
    socket.once('error', () => {
      socket.close();
      resolve(true);
    });
    socket.bind(port, host, () => socket.close(() => resolve(false)));
  });
}

export function scenarioPath(scenario: string): string {
  if (isAbsolute(scenario)) return scenario;
  return join(SCENARIO_DIR, scenario.endsWith('.xml') ? scenario : `${scenario}.xml`);
}

/** Runs sipp to completion. */
export async function runSipp(options: SippOptions): Promise<SippRun> {
  return (await startSipp(options)).done;
}

/** Starts sipp in the background (e.g. a UAS waiting for the runtime's outbound call on `port`). */
export async function startSipp(options: SippOptions): Promise<SippProcess> {
  const binary = sippBinary();
  const scenarioFile = scenarioPath(options.scenario);
  if (!existsSync(scenarioFile)) throw new Error(`SIPP_SCENARIO: ${scenarioFile} does not exist`);
  const port = options.localPort ?? (await freeUdpPort());
  const dir = await mkdtemp(join(tmpdir(), 'sipp-'));
  const files = {
    errors: join(dir, 'errors.log'), stats: join(dir, 'stats.csv'), logs: join(dir, 'logs.log'), messages: join(dir, 'messages.log'), csv: join(dir, 'inject.csv'),
  };
  if (options.csv !== undefined) await writeFile(files.csv, options.csv);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const args = [
    ...(options.target ? [options.target] : []),
    '-sf', scenarioFile,
    '-i', options.localIp ?? '127.0.0.1',
    '-p', String(port),
    '-m', String(options.calls ?? 1),
    '-nostdin',
    '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error',
    '-trace_err', '-error_file', files.errors,
    '-trace_stat', '-stf', files.stats, '-fd', '1',
    '-trace_logs', '-log_file', files.logs,
    '-trace_msg', '-message_file', files.messages,
    ...keyArgs(options.keys ?? {}),
  ];
  if (options.service !== undefined) args.push('-s', options.service);
  if (options.rate !== undefined) args.push('-r', String(options.rate));
  if (options.limit !== undefined) args.push('-l', String(options.limit));
  if (options.auth) {
    args.push('-au', options.auth.username, '-ap', options.auth.password);
    // sipp's digest uri is otherwise sip:<remote host:port>, not the request URI a strict server compares it with.
    if (options.target) args.push('-auth_uri', `${options.service ?? 'service'}@${options.target}`);
  }
  if (options.csv !== undefined) args.push('-inf', files.csv);
  args.push(...(SCENARIO_ARGS[basename(scenarioFile)] ?? []), ...(options.extraArgs ?? []));

  // stdin from /dev/null: sipp reads keyboard commands otherwise.
  const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = boundedText();
  const stderr = boundedText();
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));

  const logs: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let logOffset = 0;
  let partial = '';
  let exited = false;
  const pollLogs = async () => {
    const text = await readFile(files.logs, 'utf8').catch(() => '');
    if (text.length <= logOffset) return;
    const fresh = partial + text.slice(logOffset);
    logOffset = text.length;
    const lines = fresh.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines.map((l) => l.trimEnd()).filter(Boolean)) {
      logs.push(line);
      options.onLog?.(line);
      for (const waiter of waiters) {
        const match = line.match(waiter.pattern);
        if (match) {
          waiters.delete(waiter);
          clearTimeout(waiter.timer);
          waiter.resolve(match);
        }
      }
    }
  };
  let polling = Promise.resolve();
  const poller = setInterval(() => {
    polling = polling.then(pollLogs);
  }, 20);

  const exitCode = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 255)));
  });
  // A run that outlives its own -timeout by far means sipp hung: kill it rather than the test runner.
  const watchdog = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 10_000);

  const done = exitCode.then(async (code) => {
    exited = true;
    clearTimeout(watchdog);
    clearInterval(poller);
    await polling;
    await pollLogs();
    if (partial.trim()) logs.push(partial.trim());
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`SIPP_LOG_TIMEOUT: sipp exited (code ${code}) before logging ${waiter.pattern}`));
    }
    waiters.clear();
    const [errors, messages, statsCsv] = await Promise.all([files.errors, files.messages, files.stats].map((f) => readFile(f, 'utf8').catch(() => '')));
    await rm(dir, { recursive: true, force: true });
    const stats = parseStats(statsCsv ?? '') ?? parseScreenStats(stdout.text());
    const remoteMedia = parseRemoteMedia(logs);
    return {
      exitCode: code, stdout: stdout.text(), stderr: stderr.text(), errors: errors ?? '', messages: messages ?? '', logs,
      ...(stats ? { stats } : {}), ...(remoteMedia ? { remoteMedia } : {}),
    };
  });

  return {
    done,
    port,
    logs,
    waitForLog(pattern, waitMs) {
      const seen = logs.map((line) => line.match(pattern)).find((m): m is RegExpMatchArray => m !== null);
      if (seen) return Promise.resolve(seen);
      if (exited) return Promise.reject(new Error(`SIPP_LOG_TIMEOUT: sipp has exited without logging ${pattern}`));
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern, resolve, reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(new Error(`SIPP_LOG_TIMEOUT: no sipp log line matched ${pattern} within ${waitMs} ms; logs so far: ${logs.join(' | ')}`));
          }, waitMs),
        };
        waiters.add(waiter);
      });
    },
    async ready(waitMs = 5000) {
      const deadline = Date.now() + waitMs;
      const localIp = options.localIp ?? '127.0.0.1';
      while (!(await udpPortInUse(port, localIp))) {
        if (exited) throw new Error(`SIPP_NOT_READY: sipp exited before binding port ${port}; stdout: ${stdout.text().slice(0, 500)}`);
        if (Date.now() > deadline) throw new Error(`SIPP_NOT_READY: sipp did not bind UDP ${localIp}:${port} within ${waitMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 1000).unref();
    },
  };
}

function keyArgs(keys: Readonly<Record<string, string | number>>): string[] {
  const merged: Record<string, string> = { ...DEFAULT_KEYS };
  for (const [name, value] of Object.entries(keys)) merged[name] = String(value);
  if (!('rtcp_port' in keys)) merged.rtcp_port = String(Number(merged.rtp_port) + 1);
  return Object.entries(merged).flatMap(([name, value]) => ['-key', name, value]);
}

/** The last row of the -trace_stat CSV: cumulative successful and failed calls. */
export function parseStats(csv: string): SippStats | undefined {
  const rows = csv.split('\n').map((row) => row.trim()).filter(Boolean);
  if (rows.length < 2) return undefined;
  const header = rows[0]!.split(';');
  const last = rows[rows.length - 1]!.split(';');
  const successful = Number(last[header.indexOf('SuccessfulCall(C)')]);
  const failed = Number(last[header.indexOf('FailedCall(C)')]);
  if (!Number.isFinite(successful) || !Number.isFinite(failed)) return undefined;
  return { successful, failed };
}

/** Fallback: the final statistics screen sipp prints (`Successful call | 0 | 1`). */
export function parseScreenStats(screen: string): SippStats | undefined {
  const cumulative = (label: string) => {
    const rows = [...screen.matchAll(new RegExp(`${label}\\s*\\|\\s*\\d+\\s*\\|\\s*(\\d+)`, 'g'))];
    return rows.length ? Number(rows[rows.length - 1]![1]) : undefined;
  };
  const successful = cumulative('Successful call');
  const failed = cumulative('Failed call');
  return successful === undefined || failed === undefined ? undefined : { successful, failed };
}

/** The peer's media address from the scenarios' `answer …`/`offer …` log lines (first call). */
export function parseRemoteMedia(logs: readonly string[]): { address: string; port: number } | undefined {
  let port: number | undefined;
  let address: string | undefined;
  for (const line of logs) {
    const m = line.match(/^(?:answer|offer) m=audio (\d+)/);
    if (m && port === undefined) port = Number(m[1]);
    const c = line.match(/^(?:answer|offer) c=IN IP4 ([0-9.]+)/);
    if (c && address === undefined) address = c[1]!;
  }
  return port !== undefined && address !== undefined ? { address, port } : undefined;
}

/** Keeps the last 1 MiB: sipp repaints its statistics screen on stdout for the whole run. */
function boundedText(limit = 1 << 20) {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    push(chunk: Buffer) {
      chunks.push(chunk);
      size += chunk.length;
      while (size > limit && chunks.length > 1) size -= chunks.shift()!.length;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}
