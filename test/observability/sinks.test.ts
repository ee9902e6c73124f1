import { Writable } from 'node:stream';
import type { Attributes, Context, Span, SpanOptions, TimeInput, Tracer } from '@opentelemetry/api';
import { trace } from '@opentelemetry/api';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createOtelObserver } from '../../media-node/observability/otel-sink';
import { createPinoObserver } from '../../media-node/observability/pino-sink';
import { ProviderError } from '../../shared/contracts/errors';
import type { CallEvent } from '../../shared/contracts/observer';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';

/** Events of a real (fake-clock) call: a greeting, a failing LLM replaced by its fallback, one reply. */
async function recordCall(): Promise<CallEvent[]> {
  const call = await startCall({
    config: { greeting: 'hello' },
    llm: { reply: () => new ProviderError('LLM_AUTH', 'key rejected (401)', false, 'auth') },
    llmFallbacks: [{ reply: (m) => (lastUserText(m) === 'hello' ? 'hi' : 'no'), firstTokenDelayMs: 200 }],
  });
  await call.run(1000);
  call.fake.say('hello');
  await call.runUntil(() => call.of('assistantMessage').length === 2, 5000);
  await call.end();
  return call.events;
}

describe('observer sinks', () => {
  it('pino: one info line per turn with its latency, a warning per provider fallback', async () => {
    const events = await recordCall();
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const observer = createPinoObserver(pino({ level: 'info' }, stream));
    for (const e of events) observer.onEvent(e);
    await new Promise((r) => setImmediate(r));
    const turns = lines.filter((l) => l.event === 'turn');
    expect(turns.map((t) => t.kind)).toEqual(['greeting', 'reply']);
    expect(turns[1]!.voiceToVoiceMs).toEqual(expect.any(Number));
    expect(turns[1]!.providers).toMatchObject({ llm: 'fake-llm-1' });
    const warn = lines.find((l) => l.event === 'providerError')!;
    expect(warn).toMatchObject({ level: 40, provider: 'fake-llm-0', code: 'LLM_AUTH', action: 'fallback' });
    expect(lines.map((l) => l.event)).toContain('callEnded');
    // Transcripts stay out of info-level logs.
    expect(JSON.stringify(lines)).not.toContain('"text":"hello"');
  });

  it('OpenTelemetry: a call span, a turn span per turn with stage children, provider errors as events', async () => {
    const events = await recordCall();
    const spans: RecordedSpan[] = [];
    const observer = createOtelObserver(recordingTracer(spans), (ms) => ms);
    for (const e of events) observer.onEvent(e);
    const call = spans.find((s) => s.name === 'voice.call')!;
    expect(call.ended).toBe(true);
    expect(call.attributes['call.end_reason']).toBe('test-done');
    expect(call.events.map((e) => e.name)).toContain('provider.error');
    const turns = spans.filter((s) => s.name === 'voice.turn');
    expect(turns.map((t) => t.attributes['turn.kind'])).toEqual(['greeting', 'reply']);
    const reply = turns[1]!;
    expect(reply.parent).toBe(call);
    const llm = spans.find((s) => s.name === 'llm.first_token')!;
    expect(llm.parent).toBe(reply);
    expect(Number(llm.endTime) - Number(llm.startTime)).toBe(200);
    expect(reply.attributes['turn.voice_to_voice_ms']).toBe(Number(reply.endTime) - Number(reply.startTime));
  });
});

interface RecordedSpan {
  name: string;
  startTime: TimeInput | undefined;
  endTime?: TimeInput;
  ended: boolean;
  attributes: Attributes;
  events: { name: string; attributes?: Attributes }[];
  parent: RecordedSpan | undefined;
}

/** A minimal Tracer over the OpenTelemetry API that records spans and their parents. */
function recordingTracer(out: RecordedSpan[]): Tracer {
  const byApiSpan = new Map<Span, RecordedSpan>();
  return {
    startSpan(name: string, options?: SpanOptions, ctx?: Context): Span {
      const parentApi = ctx ? trace.getSpan(ctx) : undefined;
      const rec: RecordedSpan = {
        name,
        startTime: options?.startTime,
        ended: false,
        attributes: { ...options?.attributes },
        events: [],
        parent: parentApi ? byApiSpan.get(parentApi) : undefined,
      };
      out.push(rec);
      const span: Span = {
        spanContext: () => ({ traceId: '0'.repeat(32), spanId: String(out.length).padStart(16, '0'), traceFlags: 1 }),
        setAttribute: (k, v) => ((rec.attributes[k] = v), span),
        setAttributes: (a) => (Object.assign(rec.attributes, a), span),
        addEvent: (n, a) => (rec.events.push({ name: n, attributes: a as Attributes }), span),
        addLink: () => span,
        addLinks: () => span,
        setStatus: () => span,
        updateName: (n) => ((rec.name = n), span),
        end: (t) => {
          rec.ended = true;
          rec.endTime = t;
        },
        isRecording: () => !rec.ended,
        recordException: () => undefined,
      };
      byApiSpan.set(span, rec);
      return span;
    },
    startActiveSpan: (() => {
      throw new Error('not used');
    }) as Tracer['startActiveSpan'],
  };
}
