/**
 * The media node of the Twilio load benchmark, in its own process (forked by twilio-load.ts with tsx) so the
 * simulated carriers' CPU is not charged to it. A real node (PGlite in a temp DATA_DIR, in-memory cache) on
 * 127.0.0.1 and a free port, with zero-latency fakes: the energy-based scripted STT, an LLM without delays and
 * a TTS that speaks μ-law 8 kHz (Twilio's format, so audio passes straight through). It measures itself:
 * CPU, memory and the lateness of the engine's timers (outbound frame jitter), on request over IPC.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { MULAW_8K } from '../../shared/audio/format';
import { systemClock, type Clock, type TimerHandle } from '../../shared/contracts/clock';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { createFakeLlm } from '../fakes/llm';
import { createFakeTts } from '../fakes/tts';
import { percentile } from './harness';
import { createScriptedStt } from './scripted-stt';

const BENCH_ACCOUNT_SID = `AC${'b'.repeat(32)}`;
const BENCH_AUTH_TOKEN = 'twilio-bench-auth-token';
const BENCH_SCRIPT = 'what is the weather today';
const BENCH_REPLY = 'it is sunny and warm today thanks';

/** Parent → child. */
export type NodeRequest = { type: 'mark' } | { type: 'sample' } | { type: 'memory' } | { type: 'probe'; ms: number } | { type: 'counters' } | { type: 'stop' };
/** Child → parent. */
export type NodeReply =
  | { type: 'ready'; url: string; publicBaseUrl: string; apiKey: string; assistantId: string; accountSid: string; authToken: string }
  | { type: 'marked' }
  | { type: 'sample'; elapsedMs: number; cpuUserMs: number; cpuSystemMs: number; timers: number; jitterP50Ms: number; jitterP99Ms: number; jitterMaxMs: number; gcMs: number; gcMaxPauseMs: number; activeCalls: number }
  | { type: 'memory'; rss: number; heapUsed: number; external: number }
  | { type: 'probe'; timers: number; p99Ms: number; maxMs: number; cpuPercent: number }
  | { type: 'counters'; ttsStreams: number; activeCalls: number }
  | { type: 'error'; message: string };

/** The engine's clock, recording how late each of its timers fires (as test/bench/capacity.ts does). */
function latenessClock(samples: { values: number[]; on: boolean }): Clock {
  return {
    now: systemClock.now,
    setTimeout(fn, ms) {
      const due = systemClock.now() + ms;
      return systemClock.setTimeout(() => {
        if (samples.on) samples.values.push(Math.max(0, systemClock.now() - due));
        fn();
      }, ms) as TimerHandle;
    },
    clearTimeout: systemClock.clearTimeout,
  };
}

const send = (reply: NodeReply) => process.send?.(reply);

async function main(): Promise<void> {
  if (!process.send) throw new Error('twilio-node-process runs as a forked child (see twilio-load.ts)');
  const dir = await mkdtemp(join(tmpdir(), 'bench-twilio-node-'));
  let node: NodeRuntime | undefined;
  let server: MediaServer | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    // Bounded: a stuck close must not keep the child alive (the parent kills it anyway).
    const bounded = (p: Promise<unknown> | undefined) => Promise.race([p?.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    await bounded(server?.close());
    await bounded(node?.close());
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    process.exit(code);
  };
  process.on('disconnect', () => void stop(0));

  try {
    const env = parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', CAPACITY: '100000', LOG_LEVEL: 'silent' });
    node = await startNode(env);
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    // The providers are not the runtime: they run on the plain clock, so only the engine's timers are sampled.
    registry.stt.register(createScriptedStt(systemClock, BENCH_SCRIPT));
    registry.llm.register(createFakeLlm({ clock: systemClock, firstTokenDelayMs: 0, tokenDelayMs: 0, reply: () => BENCH_REPLY }).llm);
    const tts = createFakeTts({ clock: systemClock, formats: [MULAW_8K] });
    registry.tts.register(tts.tts);
    const lateness = { values: [] as number[], on: false };
    // Warnings and errors of the node go to stderr (a failing call must not pass for a light load).
    const log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => {
      if (level === 'warn' || level === 'error') console.error(`bench node ${level}: ${message} ${fields ? JSON.stringify(fields) : ''}`);
    };
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers, clock: latenessClock(lateness), log });

    const api = async (path: string, key: string, body: unknown, method = 'POST') => {
      const response = await fetch(`${server!.url}${path}`, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
      if (response.status >= 300) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
      return response.json() as Promise<Record<string, unknown>>;
    };
    const project = await api('/v1/projects', node.generatedAdminKey!, { name: 'Bench' });
    const apiKey = (project.apiKey as { key: string }).key;
    await api('/v1/credentials/twilio-main', apiKey, { provider: 'twilio', accountSid: BENCH_ACCOUNT_SID, authToken: BENCH_AUTH_TOKEN }, 'PUT');
    const assistant = await api('/v1/assistants', apiKey, {
      name: 'Bench bot',
      prompt: 'bench',
      greeting: 'hello welcome',
      stt: { provider: 'fake-stt' },
      llm: { provider: 'fake-llm' },
      tts: { provider: 'fake-tts' },
      vad: { provider: 'webrtc', webrtcMode: 1 },
      idle: { timeoutMs: 0 },
    });

    // Garbage-collection pauses during the measurement: one source of late timers.
    const gc = { totalMs: 0, maxMs: 0 };
    new PerformanceObserver((list) => {
      if (!lateness.on) return;
      for (const entry of list.getEntries()) {
        gc.totalMs += entry.duration;
        gc.maxMs = Math.max(gc.maxMs, entry.duration);
      }
    }).observe({ entryTypes: ['gc'] });
    let cpuFrom = process.cpuUsage();
    let markedAt = performance.now();
    process.on('message', (request: NodeRequest) => {
      switch (request.type) {
        case 'mark':
          lateness.values = [];
          lateness.on = true;
          gc.totalMs = 0;
          gc.maxMs = 0;
          cpuFrom = process.cpuUsage();
          markedAt = performance.now();
          send({ type: 'marked' });
          return;
        case 'sample': {
          const cpu = process.cpuUsage(cpuFrom);
          const elapsedMs = performance.now() - markedAt;
          lateness.on = false;
          const sorted = lateness.values.sort((a, b) => a - b);
          send({
            type: 'sample',
            elapsedMs,
            cpuUserMs: cpu.user / 1000,
            cpuSystemMs: cpu.system / 1000,
            timers: sorted.length,
            jitterP50Ms: percentile(sorted, 50),
            jitterP99Ms: percentile(sorted, 99),
            jitterMaxMs: sorted.at(-1) ?? NaN,
            gcMs: gc.totalMs,
            gcMaxPauseMs: gc.maxMs,
            activeCalls: server!.activeCalls,
          });
          lateness.values = [];
          return;
        }
        case 'memory': {
          // A full collection first (the child runs with --expose-gc) so the numbers are live memory, not garbage.
          const gc = (globalThis as { gc?: () => void }).gc;
          gc?.();
          gc?.();
          const memory = process.memoryUsage();
          send({ type: 'memory', rss: memory.rss, heapUsed: memory.heapUsed, external: memory.external });
          return;
        }
        case 'probe': {
          // The noise floor: lateness of a 20 ms timer chain in this process while it has nothing to do.
          const late: number[] = [];
          const cpuAtStart = process.cpuUsage();
          const startedAt = performance.now();
          const until = startedAt + request.ms;
          const tick = (due: number) => {
            late.push(Math.max(0, performance.now() - due));
            if (performance.now() >= until) {
              late.sort((a, b) => a - b);
              const cpu = process.cpuUsage(cpuAtStart);
              const cpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - startedAt)) * 100;
              send({ type: 'probe', timers: late.length, p99Ms: percentile(late, 99), maxMs: late.at(-1) ?? NaN, cpuPercent });
              return;
            }
            const next = performance.now() + 20;
            setTimeout(() => tick(next), 20);
          };
          const first = performance.now() + 20;
          setTimeout(() => tick(first), 20);
          return;
        }
        case 'counters':
          // TTS streams opened so far: one before the media stream connects means the node pre-warms.
          send({ type: 'counters', ttsStreams: tts.stats.streams, activeCalls: server!.activeCalls });
          return;
        case 'stop':
          void stop(0);
          return;
      }
    });
    send({ type: 'ready', url: server.url, publicBaseUrl: server.publicBaseUrl(), apiKey, assistantId: String(assistant.id), accountSid: BENCH_ACCOUNT_SID, authToken: BENCH_AUTH_TOKEN });
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    await stop(1);
  }
}

void main();
