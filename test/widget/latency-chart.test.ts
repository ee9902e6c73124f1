import { describe, expect, it } from 'vitest';
import { latencyBars, latencyChartSvg } from '../../web/demo/latency-chart';

describe('demo latency chart', () => {
  it('splits a spoken turn into its stages plus what no stage accounts for', () => {
    const [bar] = latencyBars([{ turn: '#1', values: { voice_to_voice_ms: 900, stt_final_ms: 300, llm_first_token_ms: 250, tts_first_audio_ms: 150, input_tokens: 40 } }]);
    expect(bar).toEqual({
      turn: '#1',
      totalMs: 900,
      spoken: true,
      segments: [
        { key: 'stt_final_ms', ms: 300 },
        { key: 'llm_first_token_ms', ms: 250 },
        { key: 'tts_first_audio_ms', ms: 150 },
        { key: 'rest_ms', ms: 200 },
      ],
    });
  });

  it('shows a typed turn or the greeting (no voice-to-voice time) as the sum of its stages, and escapes labels', () => {
    const [typed] = latencyBars([{ turn: '#2', values: { llm_first_token_ms: 100, tts_first_audio_ms: 50 } }]);
    expect(typed).toMatchObject({ totalMs: 150, spoken: false });
    expect(typed!.segments.map((s) => s.key)).toEqual(['llm_first_token_ms', 'tts_first_audio_ms']);
    const svg = latencyChartSvg([{ turn: '<b>', values: { llm_first_token_ms: 100 } }]);
    expect(svg).toContain('&lt;b&gt;');
    expect(svg).toContain('(not spoken)');
    expect(svg.match(/<rect /g)).toHaveLength(1);
    expect(latencyChartSvg([])).toBe('');
  });

  it('keeps only the last turns', () => {
    const turns = Array.from({ length: 20 }, (_, i) => ({ turn: `#${i + 1}`, values: { voice_to_voice_ms: 500 + i } }));
    const svg = latencyChartSvg(turns, 5);
    expect(svg).toContain('#20');
    expect(svg).toContain('#16');
    expect(svg).not.toContain('#15<');
  });
});
