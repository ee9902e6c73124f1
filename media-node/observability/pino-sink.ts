import type { Logger } from 'pino';
import type { CallEvent, CallObserver } from '../../shared/contracts/observer';

/**
 * Call events as structured pino logs: turn metrics and call start/end at info, provider trouble at
 * warn/error, the chatty rest at debug. Events carry no secrets; transcripts are logged only at debug.
 */
export function createPinoObserver(logger: Logger): CallObserver {
  return {
    onEvent(event: CallEvent) {
      switch (event.type) {
        case 'callStarted':
        case 'callEnded':
          logger.info({ event: event.type, callId: event.callId, reason: 'reason' in event ? event.reason : undefined }, event.type);
          return;
        case 'turnMetrics': {
          const m = event.metrics;
          logger.info(
            {
              event: 'turn',
              callId: m.callId,
              turnId: m.turnId,
              kind: m.kind,
              voiceToVoiceMs: m.voiceToVoiceMs,
              overheadMs: m.overheadMs,
              interrupted: m.interrupted,
              preemptive: m.preemptive,
              providers: m.providers,
              tokens: { input: m.inputTokens, output: m.outputTokens },
            },
            'turn metrics',
          );
          return;
        }
        case 'providerError':
          logger[event.action === 'fallbackMessage' ? 'error' : 'warn'](
            { event: 'providerError', stage: event.stage, provider: event.provider, code: event.error.code, retryable: event.error.retryable, action: event.action },
            event.error.message,
          );
          return;
        case 'inboundOverflow':
          logger.warn({ event: event.type, droppedFrames: event.droppedFrames }, 'inbound audio queue overflowed; oldest frames dropped');
          return;
        default:
          logger.debug({ event: event.type, ...event }, event.type);
      }
    },
  };
}
