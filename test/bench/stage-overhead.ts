import type { TurnMetrics } from '../../shared/contracts/observer';
import { benchCall, percentile } from './harness';
import { createFakeClock } from '../fakes/clock';

export interface StageOverheadResult {
  turns: number;
  stages: Record<'endOfTurnToLlm' | 'tokenToTts' | 'audioToChannel' | 'sum', { p50: number; p99: number; max: number }>;
}

/**
 * The runtime's own latency per stage, with zero-latency fake providers: end of turn → LLM request,
 * first speakable text → TTS request, first TTS audio → channel write. Runs `turns` full turns (caller
 * speech through VAD and STT, reply through TTS and playout) on a clock that skips idle time.
 */
export async function benchStageOverhead(turns: number, log: (line: string) => void): Promise<StageOverheadResult> {
  const clock = createFakeClock(0, { realTime: true });
  const samples: NonNullable<TurnMetrics['overheadMs']>[] = [];
  let completed = 0;
  const { comm, fake } = await benchCall({
    engineClock: clock,
    onEvent(e) {
      if (e.type !== 'turnMetrics' || e.metrics.kind !== 'reply') return;
      completed++;
      if (e.metrics.overheadMs) samples.push(e.metrics.overheadMs);
    },
  });
  for (let i = 0; i < turns; i++) {
    fake.say('hello');
    for (let t = 0; t < 10_000 && completed <= i; t += 20) await clock.advance(20);
    if (completed <= i) throw new Error(`turn ${i} did not complete`);
    if ((i + 1) % 250 === 0) log(`  stage overhead: ${i + 1}/${turns} turns`);
  }
  await comm.end('bench-done');
  fake.stop();
  const stat = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
  };
  return {
    turns: samples.length,
    stages: {
      endOfTurnToLlm: stat(samples.map((s) => s.endOfTurnToLlm)),
      tokenToTts: stat(samples.map((s) => s.tokenToTts)),
      audioToChannel: stat(samples.map((s) => s.audioToChannel)),
      sum: stat(samples.map((s) => s.endOfTurnToLlm + s.tokenToTts + s.audioToChannel)),
    },
  };
}
