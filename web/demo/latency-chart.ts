/**
 * The per-turn latency chart of the demo page: one horizontal bar per assistant turn, split into the
 * stages of ARCHITECTURE.md's timeline as the turn's metrics name them. Pure: metrics in, SVG text out.
 */

export interface TurnLatency {
  readonly turn: string;
  readonly values: Readonly<Record<string, number>>;
}

export const STAGES = [
  { key: 'stt_final_ms', label: 'speech end → final transcript', colour: '#8250df' },
  { key: 'llm_first_token_ms', label: 'LLM first token', colour: '#1f6feb' },
  { key: 'tts_first_audio_ms', label: 'TTS first audio', colour: '#1a7f37' },
  { key: 'rest_ms', label: 'everything else (runtime, network)', colour: '#bf8700' },
] as const;

export interface Bar {
  readonly turn: string;
  /** voice_to_voice_ms when the turn had one (spoken turns), else the sum of the stages. */
  readonly totalMs: number;
  readonly spoken: boolean;
  readonly segments: readonly { readonly key: string; readonly ms: number }[];
}

/** Stage durations of each turn; the rest of voice-to-voice time is what no stage accounts for. */
export function latencyBars(turns: readonly TurnLatency[]): Bar[] {
  return turns.map(({ turn, values }) => {
    const segments: { key: string; ms: number }[] = STAGES.filter((s) => s.key !== 'rest_ms')
      .map((s) => ({ key: s.key as string, ms: Math.max(0, values[s.key] ?? 0) }))
      .filter((s) => s.ms > 0);
    const staged = segments.reduce((sum, s) => sum + s.ms, 0);
    const v2v = values['voice_to_voice_ms'];
    const spoken = v2v !== undefined && v2v > 0;
    if (spoken && v2v > staged) segments.push({ key: 'rest_ms', ms: v2v - staged });
    return { turn, totalMs: spoken ? Math.max(v2v, staged) : staged, spoken, segments };
  });
}

const ROW = 26;
const LABEL = 44;
const WIDTH = 640;

/** The bars as an SVG document fragment (the last `maxTurns` turns). */
export function latencyChartSvg(turns: readonly TurnLatency[], maxTurns = 12): string {
  const bars = latencyBars(turns.slice(-maxTurns));
  if (bars.length === 0) return '';
  const maxMs = Math.max(500, ...bars.map((b) => b.totalMs));
  const scale = (WIDTH - LABEL - 70) / maxMs;
  const colour = new Map<string, string>(STAGES.map((s) => [s.key, s.colour]));
  const rows = bars.map((bar, i) => {
    const y = i * ROW + 4;
    let x = LABEL;
    const rects = bar.segments.map((s) => {
      const w = Math.max(1, s.ms * scale);
      const rect = `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${ROW - 8}" fill="${colour.get(s.key)}"><title>${s.key}: ${Math.round(s.ms)} ms</title></rect>`;
      x += w;
      return rect;
    });
    const total = `${Math.round(bar.totalMs)}${bar.spoken ? '' : ' (not spoken)'}`;
    return `<text x="0" y="${y + ROW - 12}" font-size="12" fill="#57606a">${escapeXml(bar.turn)}</text>${rects.join('')}<text x="${(x + 6).toFixed(1)}" y="${y + ROW - 12}" font-size="12" fill="#1b1f24">${total}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${bars.length * ROW + 8}" role="img" aria-label="latency per turn">${rows.join('')}</svg>`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
