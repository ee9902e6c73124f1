import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CallEvent, CallObserver, TurnMetrics } from '../shared/contracts/observer';
import type { ProviderMetricsSink } from '../shared/providers/streaming/metrics';

/**
 * Prometheus metrics of one media node, in a registry of its own (never prom-client's global one, so tests
 * and several nodes in one process do not share series). The engine feeds them through `observer` (one
 * instance serves every call: it keeps no per-call state but the set of running call ids); channels count
 * frames they could not parse with `malformedFrame`. `GET /metrics` answers `metricsText()` with `contentType`.
 *
 * Durations are in seconds, as Prometheus expects; the engine's marks are clock ms.
 */
export interface NodeMetrics {
  readonly registry: Registry;
  readonly observer: CallObserver;
  /** `Content-Type` of `metricsText()` (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** Connection-level measurements of streaming providers (connect time, first result, reconnects, errors). */
  readonly providers: ProviderMetricsSink;
  /** A frame a channel could not decode (`channel`: e.g. 'twilio', 'asterisk-ws'). */
  malformedFrame(channel: string): void;
  metricsText(): Promise<string>;
}

export interface NodeMetricsOptions {
  /** Node process metrics (CPU, memory, event-loop lag, GC) in the same registry. Default true. */
  readonly processMetrics?: boolean;
  /** Labels on every series, e.g. `{ node: 'media-1', region: 'eu' }`. */
  readonly defaultLabels?: Record<string, string>;
}

/** Voice-to-voice is hundreds of ms to seconds. */
const VOICE_TO_VOICE_BUCKETS_S = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10];
/** Provider stages: time to first transcript / token / audio. */
const STAGE_BUCKETS_S = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5];
/** The runtime's own share, which we drive towards zero: sub-millisecond to tens of ms. */
const OVERHEAD_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/** Distinct end reasons kept as label values; beyond that they count as 'other' (end reasons are free text). */
const MAX_END_REASONS = 32;

const STAGES = [
  ['stt_final', 'userSpeechEnd', 'sttFinal'],
  ['llm_first_token', 'llmRequest', 'llmFirstToken'],
  ['tts_first_audio', 'ttsRequest', 'ttsFirstAudio'],
] as const satisfies readonly (readonly [string, keyof TurnMetrics, keyof TurnMetrics])[];

const OVERHEAD_SEGMENTS = [
  ['end_of_turn_to_llm', 'endOfTurnToLlm'],
  ['token_to_tts', 'tokenToTts'],
  ['audio_to_channel', 'audioToChannel'],
] as const;

export function createNodeMetrics(options: NodeMetricsOptions = {}): NodeMetrics {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const activeCalls = new Gauge({ name: 'voice_active_calls', help: 'Calls running on this node.', registers });
  const callsStarted = new Counter({ name: 'voice_calls_started_total', help: 'Calls started on this node.', registers });
  const callsEnded = new Counter({ name: 'voice_calls_ended_total', help: 'Calls ended on this node, by end reason.', labelNames: ['reason'], registers });
  const turns = new Counter({
    name: 'voice_turns_total',
    help: 'Assistant turns, by kind (greeting, reply, reprompt, fallback, goodbye) and whether the caller interrupted them.',
    labelNames: ['kind', 'interrupted'],
    registers,
  });
  const voiceToVoice = new Histogram({
    name: 'voice_voice_to_voice_seconds',
    help: 'End of user speech (VAD) to the first assistant audio frame written to the channel.',
    buckets: VOICE_TO_VOICE_BUCKETS_S,
    registers,
  });
  const stageLatency = new Histogram({
    name: 'voice_stage_latency_seconds',
    help: 'Provider stage latency: stt_final (speech end to final transcript), llm_first_token (request to first token), tts_first_audio (request to first audio).',
    labelNames: ['stage', 'provider'],
    buckets: STAGE_BUCKETS_S,
    registers,
  });
  const overhead = new Histogram({
    name: 'voice_runtime_overhead_seconds',
    help: "The runtime's own time in a turn: end_of_turn_to_llm, token_to_tts, audio_to_channel.",
    labelNames: ['segment'],
    buckets: OVERHEAD_BUCKETS_S,
    registers,
  });
  const tokens = new Counter({ name: 'voice_llm_tokens_total', help: 'LLM tokens of assistant turns, by direction.', labelNames: ['direction'], registers });
  const providerErrors = new Counter({
    name: 'voice_provider_errors_total',
    help: 'Provider errors by stage (stt, llm, tts), provider, error kind and what the engine did (retry, fallback, fallbackMessage, ignored).',
    labelNames: ['stage', 'provider', 'kind', 'action'],
    registers,
  });
  const interruptions = new Counter({
    name: 'voice_interruptions_total',
    help: 'Barge-in steps: paused (caller speech paused output), confirmed (words cut the turn), resumed (false interruption).',
    labelNames: ['phase'],
    registers,
  });
  const inboundDropped = new Counter({
    name: 'voice_inbound_dropped_frames_total',
    help: 'Inbound audio frames dropped because the engine fell behind (queue overflow).',
    registers,
  });
  const malformedFrames = new Counter({
    name: 'voice_malformed_frames_total',
    help: 'Frames a channel could not decode (counted and logged, never fatal).',
    labelNames: ['channel'],
    registers,
  });

  const providerConnect = new Histogram({
    name: 'voice_provider_connect_seconds',
    help: 'Streaming provider handshake time (socket open and ready), by stage and provider.',
    labelNames: ['stage', 'provider'],
    buckets: STAGE_BUCKETS_S,
    registers,
  });
  const providerFirstResult = new Histogram({
    name: 'voice_provider_first_result_seconds',
    help: 'Streaming provider first result: STT first interim/final after its first audio, TTS first audio after its first text.',
    labelNames: ['stage', 'provider', 'kind'],
    buckets: STAGE_BUCKETS_S,
    registers,
  });
  const providerReconnects = new Counter({
    name: 'voice_provider_reconnects_total',
    help: 'Streaming provider sockets reopened after an unexpected close or retryable error.',
    labelNames: ['stage', 'provider'],
    registers,
  });
  const providerSocketErrors = new Counter({
    name: 'voice_provider_socket_errors_total',
    help: 'Streaming provider errors seen by the socket layer, by kind (auth, rate-limit, unavailable, protocol, ...).',
    labelNames: ['stage', 'provider', 'kind'],
    registers,
  });
  const providers: ProviderMetricsSink = {
    connected: (provider, stage, ms) => providerConnect.observe({ stage, provider }, ms / 1000),
    firstResult: (provider, stage, kind, ms) => providerFirstResult.observe({ stage, provider, kind }, ms / 1000),
    reconnected: (provider, stage) => providerReconnects.inc({ stage, provider }),
    error: (provider, stage, kind) => providerSocketErrors.inc({ stage, provider, kind }),
  };

  const runningCalls = new Set<string>();
  const endReasons = new Set<string>();

  function endReasonLabel(reason: string): string {
    if (endReasons.has(reason)) return reason;
    if (endReasons.size >= MAX_END_REASONS || !/^[\w.:-]{1,64}$/.test(reason)) return 'other';
    endReasons.add(reason);
    return reason;
  }

  function recordTurn(m: Readonly<TurnMetrics>): void {
    turns.inc({ kind: m.kind, interrupted: String(m.interrupted) });
    if (m.voiceToVoiceMs !== undefined && m.voiceToVoiceMs >= 0) voiceToVoice.observe(m.voiceToVoiceMs / 1000);
    for (const [stage, from, to] of STAGES) {
      const start = m[from];
      const end = m[to];
      if (typeof start !== 'number' || typeof end !== 'number' || end < start) continue;
      const provider = (stage === 'stt_final' ? m.providers.stt : stage === 'llm_first_token' ? m.providers.llm : m.providers.tts) ?? 'unknown';
      stageLatency.observe({ stage, provider }, (end - start) / 1000);
    }
    if (m.overheadMs) {
      for (const [segment, key] of OVERHEAD_SEGMENTS) {
        const ms = m.overheadMs[key];
        if (ms >= 0) overhead.observe({ segment }, ms / 1000);
      }
    }
    if (m.inputTokens > 0) tokens.inc({ direction: 'input' }, m.inputTokens);
    if (m.outputTokens > 0) tokens.inc({ direction: 'output' }, m.outputTokens);
  }

  const observer: CallObserver = {
    onEvent(event: CallEvent) {
      switch (event.type) {
        case 'callStarted':
          if (runningCalls.has(event.callId)) return;
          runningCalls.add(event.callId);
          callsStarted.inc();
          activeCalls.set(runningCalls.size);
          return;
        case 'callEnded':
          // Only calls seen starting count, so a repeated end cannot push the gauge below zero.
          if (!runningCalls.delete(event.callId)) return;
          callsEnded.inc({ reason: endReasonLabel(event.reason) });
          activeCalls.set(runningCalls.size);
          return;
        case 'turnMetrics':
          recordTurn(event.metrics);
          return;
        case 'providerError':
          providerErrors.inc({ stage: event.stage, provider: event.provider, kind: event.error.kind, action: event.action });
          return;
        case 'interruption':
          interruptions.inc({ phase: event.phase });
          return;
        case 'inboundOverflow':
          inboundDropped.inc(event.droppedFrames);
          return;
        default:
          return;
      }
    },
  };

  return {
    registry,
    observer,
    providers,
    contentType: registry.contentType,
    malformedFrame(channel) {
      malformedFrames.inc({ channel });
    },
    metricsText: () => registry.metrics(),
  };
}
