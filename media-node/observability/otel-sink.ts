import { context, type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { CallEvent, CallObserver, TurnMetrics } from '../../shared/contracts/observer';

/** The engine's clock is monotonic ms; spans want wall time. */
export type ToEpochMs = (clockMs: number) => number;

const STAGES: [name: string, from: keyof TurnMetrics, to: keyof TurnMetrics][] = [
  ['stt.final', 'userSpeechEnd', 'sttFinal'],
  ['llm.first_token', 'llmRequest', 'llmFirstToken'],
  ['tts.first_audio', 'ttsRequest', 'ttsFirstAudio'],
];

/**
 * OpenTelemetry spans through `@opentelemetry/api` (a no-op until the process installs an SDK): one span
 * per call, one per assistant turn with child spans per provider stage, provider errors as span events.
 */
export function createOtelObserver(tracer: Tracer, toEpochMs: ToEpochMs = (ms) => performance.timeOrigin + ms): CallObserver {
  let call: Span | undefined;
  return {
    onEvent(event: CallEvent) {
      switch (event.type) {
        case 'callStarted':
          call = tracer.startSpan('voice.call', { startTime: toEpochMs(event.atMs), attributes: { 'call.id': event.callId } });
          return;
        case 'turnMetrics':
          recordTurn(tracer, call, event.metrics, toEpochMs);
          return;
        case 'providerError':
          call?.addEvent('provider.error', {
            stage: event.stage,
            provider: event.provider,
            code: event.error.code,
            retryable: event.error.retryable,
            action: event.action,
          });
          return;
        case 'interruption':
          call?.addEvent(`interruption.${event.phase}`, { 'turn.id': event.turnId }, toEpochMs(event.atMs));
          return;
        case 'callEnded':
          call?.setAttribute('call.end_reason', event.reason);
          call?.end(toEpochMs(event.atMs));
          call = undefined;
          return;
        default:
          return;
      }
    },
  };
}

function recordTurn(tracer: Tracer, call: Span | undefined, m: TurnMetrics, toEpochMs: ToEpochMs): void {
  const start = m.userSpeechEnd ?? m.llmRequest ?? m.ttsRequest;
  const end = m.firstAudioOut ?? m.ttsFirstAudio ?? m.llmFirstToken ?? start;
  if (start === undefined || end === undefined) return;
  const parent = call ? tracerContext(call) : undefined;
  const turn = tracer.startSpan(
    'voice.turn',
    {
      startTime: toEpochMs(start),
      attributes: {
        'turn.id': m.turnId,
        'turn.kind': m.kind,
        'turn.interrupted': m.interrupted,
        ...(m.voiceToVoiceMs !== undefined ? { 'turn.voice_to_voice_ms': m.voiceToVoiceMs } : {}),
        ...(m.providers.stt ? { 'provider.stt': m.providers.stt } : {}),
        ...(m.providers.llm ? { 'provider.llm': m.providers.llm } : {}),
        ...(m.providers.tts ? { 'provider.tts': m.providers.tts } : {}),
        'llm.input_tokens': m.inputTokens,
        'llm.output_tokens': m.outputTokens,
      },
    },
    parent,
  );
  const turnContext = tracerContext(turn);
  for (const [name, from, to] of STAGES) {
    const a = m[from];
    const b = m[to];
    if (typeof a === 'number' && typeof b === 'number') tracer.startSpan(name, { startTime: toEpochMs(a) }, turnContext).end(toEpochMs(b));
  }
  if (m.interrupted) turn.setStatus({ code: SpanStatusCode.UNSET, message: 'interrupted by the caller' });
  turn.end(toEpochMs(end));
}

function tracerContext(span: Span) {
  return trace.setSpan(context.active(), span);
}
