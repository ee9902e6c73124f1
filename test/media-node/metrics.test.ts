import { describe, expect, it } from 'vitest';
import { createNodeMetrics } from '../../media-node/metrics';
import { startListener } from '../../media-node/listener';
import { ProviderError } from '../../shared/contracts/errors';
import type { CallEvent, TurnMetrics } from '../../shared/contracts/observer';
import { startCall } from '../fakes/call';
import { lastUserText } from '../fakes/llm';

/** The value of one series in Prometheus text exposition, matched on its exact label set. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[pair[1]!] = pair[2]!;
    if (JSON.stringify(Object.entries(found).sort()) === JSON.stringify(Object.entries(labels).sort())) return Number(m[3]);
  }
  return undefined;
}

function turn(metrics: Partial<TurnMetrics> & Pick<TurnMetrics, 'turnId' | 'kind'>): CallEvent {
  return { type: 'turnMetrics', metrics: { callId: 'c1', interrupted: false, inputTokens: 0, outputTokens: 0, providers: {}, ...metrics } };
}

describe('Prometheus metrics of a media node', () => {
  it('turns call events into series: active calls, turns, latency histograms, errors, overflow, malformed frames', async () => {
    const metrics = createNodeMetrics({ processMetrics: false, defaultLabels: { node: 'n1' } });
    const o = metrics.observer;
    const at = { atMs: 0 };
    o.onEvent({ type: 'callStarted', callId: 'c1', ...at });
    o.onEvent({ type: 'callStarted', callId: 'c2', ...at });
    o.onEvent({ type: 'callStarted', callId: 'c2', ...at }); // repeated: counted once
    o.onEvent(turn({ turnId: 0, kind: 'greeting', ttsRequest: 100, ttsFirstAudio: 180, firstAudioOut: 181, providers: { tts: 'cartesia' } }));
    o.onEvent(
      turn({
        turnId: 1,
        kind: 'reply',
        userSpeechEnd: 1_000,
        sttFinal: 1_150,
        llmRequest: 1_151,
        llmFirstToken: 1_451,
        ttsRequest: 1_452,
        ttsFirstAudio: 1_552,
        firstAudioOut: 1_553,
        voiceToVoiceMs: 553,
        overheadMs: { endOfTurnToLlm: 1, tokenToTts: 0.4, audioToChannel: 3 },
        interrupted: true,
        inputTokens: 120,
        outputTokens: 30,
        providers: { stt: 'deepgram', llm: 'openai', tts: 'cartesia' },
      }),
    );
    o.onEvent({ type: 'providerError', stage: 'llm', provider: 'openai', error: new ProviderError('OPENAI_AUTH', 'key rejected (401)', false, 'auth'), action: 'fallback' });
    o.onEvent({ type: 'providerError', stage: 'stt', provider: 'deepgram', error: new ProviderError('DEEPGRAM_DROP', 'socket closed', true), action: 'retry' });
    o.onEvent({ type: 'providerError', stage: 'stt', provider: 'deepgram', error: new ProviderError('DEEPGRAM_DROP', 'socket closed', true), action: 'retry' });
    o.onEvent({ type: 'interruption', phase: 'paused', turnId: 1, ...at });
    o.onEvent({ type: 'interruption', phase: 'confirmed', turnId: 1, ...at });
    o.onEvent({ type: 'inboundOverflow', droppedFrames: 7, ...at });
    o.onEvent({ type: 'userMessage', text: 'not a metric', source: 'speech', ...at }); // ignored
    metrics.malformedFrame('twilio');
    metrics.malformedFrame('twilio');
    o.onEvent({ type: 'callEnded', callId: 'c1', reason: 'caller-hangup', ...at });
    o.onEvent({ type: 'callEnded', callId: 'c1', reason: 'caller-hangup', ...at }); // repeated: the gauge must not drop twice
    o.onEvent({ type: 'callEnded', callId: 'never-started', reason: 'x', ...at });

    const text = await metrics.metricsText();
    const n = { node: 'n1' };
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(text, 'voice_active_calls', n)).toBe(1);
    expect(sample(text, 'voice_calls_started_total', n)).toBe(2);
    expect(sample(text, 'voice_calls_ended_total', { ...n, reason: 'caller-hangup' })).toBe(1);
    expect(sample(text, 'voice_turns_total', { ...n, kind: 'greeting', interrupted: 'false' })).toBe(1);
    expect(sample(text, 'voice_turns_total', { ...n, kind: 'reply', interrupted: 'true' })).toBe(1);
    // Voice-to-voice 553 ms: in the 0.6 s bucket, not in 0.5 s; the greeting (no user speech) is not observed.
    expect(sample(text, 'voice_voice_to_voice_seconds_bucket', { ...n, le: '0.5' })).toBe(0);
    expect(sample(text, 'voice_voice_to_voice_seconds_bucket', { ...n, le: '0.6' })).toBe(1);
    expect(sample(text, 'voice_voice_to_voice_seconds_count', n)).toBe(1);
    expect(sample(text, 'voice_voice_to_voice_seconds_sum', n)).toBeCloseTo(0.553, 6);
    expect(sample(text, 'voice_stage_latency_seconds_sum', { ...n, stage: 'stt_final', provider: 'deepgram' })).toBeCloseTo(0.15, 6);
    expect(sample(text, 'voice_stage_latency_seconds_sum', { ...n, stage: 'llm_first_token', provider: 'openai' })).toBeCloseTo(0.3, 6);
    expect(sample(text, 'voice_stage_latency_seconds_bucket', { ...n, stage: 'llm_first_token', provider: 'openai', le: '0.2' })).toBe(0);
    expect(sample(text, 'voice_stage_latency_seconds_bucket', { ...n, stage: 'llm_first_token', provider: 'openai', le: '0.3' })).toBe(1);
    expect(sample(text, 'voice_stage_latency_seconds_count', { ...n, stage: 'tts_first_audio', provider: 'cartesia' })).toBe(2); // greeting 80 ms + reply 100 ms
    expect(sample(text, 'voice_stage_latency_seconds_sum', { ...n, stage: 'tts_first_audio', provider: 'cartesia' })).toBeCloseTo(0.18, 6);
    expect(sample(text, 'voice_runtime_overhead_seconds_bucket', { ...n, segment: 'token_to_tts', le: '0.0005' })).toBe(1);
    expect(sample(text, 'voice_runtime_overhead_seconds_bucket', { ...n, segment: 'audio_to_channel', le: '0.0025' })).toBe(0);
    expect(sample(text, 'voice_runtime_overhead_seconds_bucket', { ...n, segment: 'audio_to_channel', le: '0.005' })).toBe(1);
    expect(sample(text, 'voice_llm_tokens_total', { ...n, direction: 'input' })).toBe(120);
    expect(sample(text, 'voice_llm_tokens_total', { ...n, direction: 'output' })).toBe(30);
    expect(sample(text, 'voice_provider_errors_total', { ...n, stage: 'llm', provider: 'openai', kind: 'auth', action: 'fallback' })).toBe(1);
    expect(sample(text, 'voice_provider_errors_total', { ...n, stage: 'stt', provider: 'deepgram', kind: 'unavailable', action: 'retry' })).toBe(2);
    expect(sample(text, 'voice_interruptions_total', { ...n, phase: 'confirmed' })).toBe(1);
    expect(sample(text, 'voice_inbound_dropped_frames_total', n)).toBe(7);
    expect(sample(text, 'voice_malformed_frames_total', { ...n, channel: 'twilio' })).toBe(2);
    expect(text).not.toContain('process_cpu'); // process metrics were switched off
  });

  it('records streaming provider connections: connect time, first result, reconnects and socket errors', async () => {
    const metrics = createNodeMetrics({ processMetrics: false });
    metrics.providers.connected('deepgram', 'stt', 180);
    metrics.providers.firstResult('deepgram', 'stt', 'interim', 240);
    metrics.providers.firstResult('cartesia', 'tts', 'audio', 90);
    metrics.providers.reconnected('deepgram', 'stt', 'close 1011');
    metrics.providers.reconnected('deepgram', 'stt', 'close 1006');
    metrics.providers.error('elevenlabs', 'tts', 'auth');
    const text = await metrics.metricsText();
    expect(sample(text, 'voice_provider_connect_seconds_sum', { stage: 'stt', provider: 'deepgram' })).toBeCloseTo(0.18);
    expect(sample(text, 'voice_provider_connect_seconds_bucket', { stage: 'stt', provider: 'deepgram', le: '0.2' })).toBe(1);
    expect(sample(text, 'voice_provider_connect_seconds_bucket', { stage: 'stt', provider: 'deepgram', le: '0.15' })).toBe(0);
    expect(sample(text, 'voice_provider_first_result_seconds_count', { stage: 'stt', provider: 'deepgram', kind: 'interim' })).toBe(1);
    expect(sample(text, 'voice_provider_first_result_seconds_sum', { stage: 'tts', provider: 'cartesia', kind: 'audio' })).toBeCloseTo(0.09);
    expect(sample(text, 'voice_provider_reconnects_total', { stage: 'stt', provider: 'deepgram' })).toBe(2);
    expect(sample(text, 'voice_provider_socket_errors_total', { stage: 'tts', provider: 'elevenlabs', kind: 'auth' })).toBe(1);
  });

  it('keeps end-reason labels bounded: free text and the 33rd distinct reason count as "other"', async () => {
    const metrics = createNodeMetrics({ processMetrics: false });
    for (let i = 0; i < 40; i++) {
      metrics.observer.onEvent({ type: 'callStarted', callId: `c${i}`, atMs: 0 });
      metrics.observer.onEvent({ type: 'callEnded', callId: `c${i}`, reason: i === 0 ? 'the line dropped: "EPIPE"\n' : `reason-${i}`, atMs: 0 });
    }
    const text = await metrics.metricsText();
    expect(sample(text, 'voice_calls_ended_total', { reason: 'other' })).toBe(1 + 7); // the free-text one, then reason-33 .. reason-39 (32 slots are taken by reason-1 .. reason-32)
    expect(sample(text, 'voice_calls_ended_total', { reason: 'reason-32' })).toBe(1);
    expect(sample(text, 'voice_calls_ended_total', { reason: 'reason-33' })).toBeUndefined();
    expect(sample(text, 'voice_active_calls')).toBe(0);
  });

  it('counts the events of a real engine call (fake providers, fake clock)', async () => {
    const metrics = createNodeMetrics({ processMetrics: false });
    const call = await startCall({
      config: { greeting: 'hello' },
      llm: { reply: () => new ProviderError('LLM_AUTH', 'key rejected (401)', false, 'auth') },
      llmFallbacks: [{ reply: (m) => (lastUserText(m) === 'hello' ? 'hi' : 'no'), firstTokenDelayMs: 200 }],
      observer: metrics.observer,
    });
    await call.run(1000);
    expect(sample(await metrics.metricsText(), 'voice_active_calls')).toBe(1);
    call.fake.say('hello');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
    await call.end();
    const text = await metrics.metricsText();
    expect(sample(text, 'voice_active_calls')).toBe(0);
    expect(sample(text, 'voice_calls_ended_total', { reason: 'test-done' })).toBe(1);
    expect(sample(text, 'voice_turns_total', { kind: 'greeting', interrupted: 'false' })).toBe(1);
    expect(sample(text, 'voice_turns_total', { kind: 'reply', interrupted: 'false' })).toBe(1);
    expect(sample(text, 'voice_provider_errors_total', { stage: 'llm', provider: 'fake-llm-0', kind: 'auth', action: 'fallback' })).toBe(1);
    // The fallback LLM answers its first token after exactly 200 ms of fake time.
    expect(sample(text, 'voice_stage_latency_seconds_sum', { stage: 'llm_first_token', provider: 'fake-llm-1' })).toBeCloseTo(0.2, 6);
    const reply = call.metrics().find((m) => m.kind === 'reply')!;
    expect(sample(text, 'voice_voice_to_voice_seconds_sum')).toBeCloseTo(reply.voiceToVoiceMs! / 1000, 6);
  });

  it('is served as GET /metrics on the one-port listener, with Node process metrics by default', async () => {
    const metrics = createNodeMetrics();
    const listener = await startListener({
      port: 0,
      host: '127.0.0.1',
      fetch: async (request) =>
        new URL(request.url).pathname === '/metrics' ? new Response(await metrics.metricsText(), { headers: { 'content-type': metrics.contentType } }) : new Response('', { status: 404 }),
    });
    try {
      metrics.malformedFrame('asterisk-ws');
      const response = await fetch(`${listener.url}/metrics`);
      expect(response.headers.get('content-type')).toBe(metrics.contentType);
      const text = await response.text();
      expect(sample(text, 'voice_malformed_frames_total', { channel: 'asterisk-ws' })).toBe(1);
      expect(text).toContain('# TYPE voice_voice_to_voice_seconds histogram');
      expect(text).toContain('nodejs_eventloop_lag_seconds');
      // Its own registry: a second node in the same process does not see these series.
      expect(await createNodeMetrics({ processMetrics: false }).metricsText()).not.toContain('asterisk-ws');
    } finally {
      await listener.close();
    }
  });
});
