/**
 * `npm run bench`: the runtime's own costs with zero-latency fakes. Prints tables and writes JSON to
 * test/bench/results/ (git-ignored) so runs can be compared. Not part of `npm test`.
 *   BENCH_TURNS (1000), BENCH_AUDIO_SECONDS (120), BENCH_CAPACITY_SECONDS (8), BENCH_MAX_CALLS (800),
 *   BENCH_TWILIO_MAX_CALLS (400), BENCH_TWILIO_SECONDS (8), BENCH_KB_CHUNKS (10000), BENCH_KB_QUERIES (200),
 *   BENCH_RTP_SECONDS (5)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { benchAudioPath } from './audio-path';
import { benchCapacityStep, type CapacityStep } from './capacity';
import { benchRetrieval } from './retrieval';
import { benchStageOverhead } from './stage-overhead';
import { benchTwilioLoad } from './twilio-load';
import { benchRtpPacing } from './rtp-pacing';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (line: string) => console.log(line);
const fmt = (n: number, digits = 3) => n.toFixed(digits);

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  log('1/6 stage overhead (zero-latency providers)');
  const overhead = await benchStageOverhead(env('BENCH_TURNS', 1000), log);
  log('');
  log(`Stage overhead over ${overhead.turns} turns (ms)`);
  log('stage                          p50      p99      max');
  for (const [name, s] of Object.entries(overhead.stages)) log(`${name.padEnd(28)} ${fmt(s.p50).padStart(7)} ${fmt(s.p99).padStart(8)} ${fmt(s.max).padStart(8)}`);
  log(`target: sum p99 ≤ 5 ms → ${overhead.stages.sum.p99 <= 5 ? 'met' : 'MISSED'}`);

  log('\n2/6 audio path CPU per call (μ-law 8 kHz in and out, TTS at 24 kHz)');
  const seconds = env('BENCH_AUDIO_SECONDS', 120);
  const audio = [
    await benchAudioPath('webrtc', seconds, 1),
    await benchAudioPath('webrtc', Math.ceil(seconds / 8), 32),
    await benchAudioPath('silero', Math.ceil(seconds / 2), 1),
    await benchAudioPath('silero', Math.ceil(seconds / 8), 32),
  ];
  log('vad      calls   cpu ms / audio s   % of one core   calls per core');
  for (const a of audio) {
    log(`${a.vad.padEnd(8)} ${String(a.concurrentCalls).padStart(5)} ${fmt(a.cpuMsPerAudioSecond).padStart(18)} ${fmt(a.percentOfCore).padStart(15)} ${String(a.callsPerCore).padStart(16)}`);
  }
  const loaded = (vad: string) => audio.find((a) => a.vad === vad && a.concurrentCalls > 1)!;
  log(`target: ≤ 0.5 % of a core per call on a loaded node → webrtc ${loaded('webrtc').percentOfCore <= 0.5 ? 'met' : 'MISSED'}, silero ${loaded('silero').percentOfCore <= 0.5 ? 'met' : 'MISSED'}`);

  log('\n3/6 concurrent calls on one core, real time (p99 outbound timer jitter ≤ 5 ms)');
  const steps: CapacityStep[] = [];
  const capacitySeconds = env('BENCH_CAPACITY_SECONDS', 8);
  const maxCalls = env('BENCH_MAX_CALLS', 800);
  log('calls   frames out   jitter p50   jitter p99   cpu %');
  const within = (s: CapacityStep) => s.jitterP99Ms <= 5 && s.cpuPercent <= 95;
  const measure = async (calls: number) => {
    const step = await benchCapacityStep(calls, capacitySeconds);
    steps.push(step);
    log(`${String(calls).padStart(5)} ${String(step.framesOut).padStart(12)} ${fmt(step.jitterP50Ms, 2).padStart(12)} ${fmt(step.jitterP99Ms, 2).padStart(12)} ${fmt(step.cpuPercent, 1).padStart(7)}`);
    return within(step);
  };
  // Double until a step misses, then bisect once between the last good and the first bad count.
  let good = 0;
  let bad = 0;
  for (let calls = 25; calls <= maxCalls; calls *= 2) {
    if (await measure(calls)) good = calls;
    else {
      bad = calls;
      break;
    }
  }
  if (bad > 0 && good > 0 && bad - good > 25) {
    const middle = Math.round((good + bad) / 2 / 25) * 25;
    if (await measure(middle)) good = middle;
  }
  const capacity = good;
  log(`highest tested load within bounds: ${capacity} concurrent calls on one core`);

  log('\n4/6 simulated Twilio calls against one media node in its own process (loopback WebSockets, zero-latency fakes)');
  const twilio = await benchTwilioLoad({ maxCalls: env('BENCH_TWILIO_MAX_CALLS', 400), seconds: env('BENCH_TWILIO_SECONDS', 8), log });

  log('\n5/6 knowledge retrieval latency on the embedded index (PGlite; PostgreSQL with TEST_DATABASE_URL)');
  const retrieval = await benchRetrieval(log, env('BENCH_KB_CHUNKS', 10_000), env('BENCH_KB_QUERIES', 200));

  log('\n6/6 SIP RTP pacing: links sending 20 ms packets (speech and silence) and taking 20 ms packets in, one process');
  log('calls   packets out   |Δt−20| p50   p99     max    missing %   cpu %');
  const rtp = [];
  for (const calls of [50, 100, 200]) {
    const step = await benchRtpPacing(calls, env('BENCH_RTP_SECONDS', 5));
    rtp.push(step);
    log(`${String(calls).padStart(5)} ${String(step.packetsOut).padStart(13)} ${fmt(step.spacingErrorP50Ms, 2).padStart(12)} ${fmt(step.spacingErrorP99Ms, 2).padStart(6)} ${fmt(step.spacingErrorMaxMs, 1).padStart(7)} ${fmt(step.missingPercent, 2).padStart(11)} ${fmt(step.cpuPercent, 1).padStart(7)}`);
  }

  const result = { startedAt, node: process.version, overhead, audio, capacity: { steps, callsWithinBounds: capacity }, twilio, retrieval, rtp };
  const dir = new URL('./results/', import.meta.url);
  await mkdir(dir, { recursive: true });
  const file = new URL(`bench-${startedAt.replace(/[:.]/g, '-')}.json`, dir);
  await writeFile(file, JSON.stringify(result, null, 2));
  log(`\nresults: ${file.pathname}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
