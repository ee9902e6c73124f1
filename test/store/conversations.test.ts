import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TurnMetrics } from '../../shared/contracts/observer';
import { createConversationStore, type ConversationStore, type MessageInput } from '../../shared/store/conversations';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from './backends';
import { seed, sleep, type Seed } from './fixtures';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');

const BATCH: MessageInput[] = [
  { seq: 0, turnId: 0, role: 'assistant', text: 'Hello, how can I help?', heardText: 'Hello, how can I help?', startedAt: T0, endedAt: T0 + 1800 },
  { seq: 1, turnId: 1, role: 'user', text: 'What are your opening hours?', startedAt: new Date(T0 + 2500), endedAt: new Date(T0 + 4000) },
  {
    seq: 2,
    turnId: 1,
    role: 'assistant',
    text: '',
    toolCalls: [{ id: 'call_1', name: 'hours', arguments: '{"day":"today"}' }],
  },
  { seq: 3, turnId: 1, role: 'tool', text: '{"open":"9-17"}', toolCallId: 'call_1' },
  { seq: 4, turnId: 1, role: 'assistant', text: 'We are open from nine to five, every day of the week.', heardText: 'We are open from nine to five,', interrupted: true },
];

function metrics(turnId: number, extra: Partial<TurnMetrics> = {}): TurnMetrics {
  return {
    callId: 'call-1',
    turnId,
    kind: turnId === 0 ? 'greeting' : 'reply',
    userSpeechEnd: turnId === 0 ? undefined : 1000.5,
    sttFinal: 1120,
    llmRequest: 1121,
    llmFirstToken: 1400.25,
    ttsRequest: 1401,
    ttsFirstAudio: 1600,
    firstAudioOut: 1602,
    voiceToVoiceMs: 601.5,
    overheadMs: { endOfTurnToLlm: 1, tokenToTts: 0.75, audioToChannel: 2 },
    preemptive: false,
    interrupted: false,
    inputTokens: 120,
    outputTokens: 30,
    providers: { stt: 'deepgram', llm: 'openai', tts: 'cartesia' },
    ...extra,
  };
}

describe.each(sqlBackends())('conversations on $name', (backend) => {
  let db: SqlClient;
  let store: ConversationStore;
  let s: Seed;

  beforeAll(async () => {
    db = await backend.open();
    store = createConversationStore(db);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    s = await seed(db);
  });

  const newConversation = (extra: Partial<Parameters<ConversationStore['create']>[0]> = {}) =>
    store.create({ projectId: s.projectId, assistantId: s.assistantId, assistantVersion: 1, channel: 'twilio', direction: 'inbound', ...extra });

  it('creates a conversation (idempotently when given an id) and reads it back', async () => {
    const id = crypto.randomUUID();
    const first = await newConversation({ id, metadata: { from: '+1555' }, variables: { company: 'Acme' } });
    expect(first).toMatchObject({ id, status: 'queued', metadata: { from: '+1555' }, variables: { company: 'Acme' } });
    const retried = await newConversation({ id, metadata: { from: 'other' } });
    expect(retried).toEqual(first);
    expect(await store.get(id)).toEqual(first);
    const [typed] = await db.query<{ m: string; v: string }>('SELECT jsonb_typeof(metadata) AS m, jsonb_typeof(variables) AS v FROM conversations WHERE id = $1::uuid', [id]);
    expect(typed).toEqual({ m: 'object', v: 'object' });
  });

  it('status moves forward, in-progress stamps the start, end stamps once and computes the duration', async () => {
    const c = await newConversation();
    expect((await store.updateStatus(c.id, { status: 'ringing' }))?.status).toBe('ringing');
    const started = await store.updateStatus(c.id, { status: 'in-progress', at: T0 });
    expect(started?.startedAt).toEqual(new Date(T0));
    // A second in-progress does not move the start.
    expect((await store.updateStatus(c.id, { status: 'in-progress', at: T0 + 5000 }))?.startedAt).toEqual(new Date(T0));

    const ended = await store.end(c.id, { endedAt: T0 + 65_432, disconnectReason: 'caller-hangup' });
    expect(ended).toMatchObject({ status: 'completed', durationMs: 65_432, disconnectReason: 'caller-hangup' });
    expect(ended?.endedAt).toEqual(new Date(T0 + 65_432));

    // A retried or late end changes nothing; a terminal status is never left.
    const again = await store.end(c.id, { status: 'failed', endedAt: T0 + 99_000, disconnectReason: 'other' });
    expect(again).toEqual(ended);
    expect((await store.updateStatus(c.id, { status: 'ringing' }))?.status).toBe('completed');
    expect(await store.end(crypto.randomUUID())).toBeUndefined();
  });

  it('a terminal status through updateStatus ends the conversation (no-answer: no start, no duration)', async () => {
    const c = await newConversation({ direction: 'outbound' });
    const ended = await store.updateStatus(c.id, { status: 'no-answer', at: T0 });
    expect(ended).toMatchObject({ status: 'no-answer', endedAt: new Date(T0) });
    expect(ended?.durationMs).toBeUndefined();
    expect((await store.end(c.id, { status: 'completed' }))?.status).toBe('no-answer');
  });

  it('appends messages in seq order with every field; a retried batch inserts only what is missing', async () => {
    const c = await newConversation();
    expect(await store.appendMessages(c.id, BATCH.slice(0, 3))).toEqual([0, 1, 2]);
    // The writer retries the whole batch after an outage, with two more messages queued behind it.
    expect(await store.appendMessages(c.id, [...BATCH].reverse())).toEqual([3, 4]);
    expect(await store.appendMessages(c.id, BATCH)).toEqual([]);

    const stored = await store.messages(c.id);
    expect(stored.map((m) => m.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(stored[0]).toMatchObject({ role: 'assistant', turnId: 0, heardText: 'Hello, how can I help?', interrupted: false, startedAt: new Date(T0), endedAt: new Date(T0 + 1800) });
    expect(stored[1]).toMatchObject({ role: 'user', text: 'What are your opening hours?', startedAt: new Date(T0 + 2500) });
    expect(stored[1]?.heardText).toBeUndefined();
    expect(stored[2]?.toolCalls).toEqual([{ id: 'call_1', name: 'hours', arguments: '{"day":"today"}' }]);
    expect(stored[3]).toMatchObject({ role: 'tool', toolCallId: 'call_1', text: '{"open":"9-17"}' });
    expect(stored[4]).toMatchObject({ interrupted: true, heardText: 'We are open from nine to five,' });
    expect(stored.every((m) => m.conversationId === c.id && m.createdAt instanceof Date)).toBe(true);
  });

  it('the same batch written concurrently lands once', async () => {
    const c = await newConversation();
    const results = await Promise.all(Array.from({ length: 10 }, () => store.appendMessages(c.id, BATCH)));
    expect(results.flat().sort()).toEqual([0, 1, 2, 3, 4]);
    expect(await store.messages(c.id)).toHaveLength(5);
  });

  it('records turn metrics idempotently; a later record of a turn replaces it', async () => {
    const c = await newConversation();
    await store.recordTurnMetrics(c.id, [metrics(0), metrics(1)]);
    await store.recordTurnMetrics(c.id, [metrics(0), metrics(1)]); // retry
    const [greeting, reply] = await store.turnMetrics(c.id);
    expect(await store.turnMetrics(c.id)).toHaveLength(2);
    const { callId: _callId, ...rest } = metrics(1);
    expect(reply).toEqual({ ...rest, conversationId: c.id, createdAt: expect.any(Date) });
    expect(greeting).not.toHaveProperty('userSpeechEnd');
    expect(greeting?.kind).toBe('greeting');

    await store.recordTurnMetrics(c.id, [metrics(1, { interrupted: true, outputTokens: 44 }), metrics(1, { interrupted: true, outputTokens: 45 })]);
    expect((await store.turnMetrics(c.id))[1]).toMatchObject({ turnId: 1, interrupted: true, outputTokens: 45 });
    expect(await store.turnMetrics(c.id)).toHaveLength(2);
  });

  it('keeps the retrieval metrics of a turn (latency, hits, a blown budget)', async () => {
    const c = await newConversation();
    await store.recordTurnMetrics(c.id, [metrics(1, { retrievalMs: 23.5, retrievalHits: 3 }), metrics(2, { retrievalMs: 150, retrievalHits: 0, retrievalTimedOut: true })]);
    const [first, second] = await store.turnMetrics(c.id);
    expect(first).toMatchObject({ retrievalMs: 23.5, retrievalHits: 3 });
    expect(first).not.toHaveProperty('retrievalTimedOut');
    expect(second).toMatchObject({ retrievalMs: 150, retrievalHits: 0, retrievalTimedOut: true });
  });

  it('turn metrics are queryable in SQL (voice-to-voice per turn)', async () => {
    const c = await newConversation();
    await store.recordTurnMetrics(c.id, [metrics(1), metrics(2, { voiceToVoiceMs: 700 })]);
    const [row] = await db.query<{ avg: unknown }>('SELECT avg(voice_to_voice_ms) AS avg FROM turn_metrics WHERE conversation_id = $1::uuid', [c.id]);
    expect(Number(row?.avg)).toBeCloseTo(650.75, 5);
  });

  it('call events are deduplicated by (provider, provider event id): a duplicate changes nothing', async () => {
    const c = await newConversation();
    const event = { provider: 'twilio', providerEventId: `CA1:ringing:${c.id}`, status: 'ringing' as const, raw: { CallStatus: 'ringing', n: 1 }, conversationId: c.id, occurredAt: T0 };
    expect(await store.recordCallEvent(event)).toBe('recorded');
    expect(await store.recordCallEvent({ ...event, raw: { CallStatus: 'ringing', n: 2 }, status: 'in-progress' })).toBe('duplicate');
    // Same event id from another provider is another event.
    expect(await store.recordCallEvent({ ...event, provider: 'vonage' })).toBe('recorded');
    const events = await store.callEvents({ conversationId: c.id });
    expect(events).toHaveLength(2);
    expect(events.find((e) => e.provider === 'twilio')).toMatchObject({ status: 'ringing', raw: { CallStatus: 'ringing', n: 1 }, occurredAt: new Date(T0) });
  });

  it('concurrent deliveries of one carrier callback record it exactly once', async () => {
    const c = await newConversation();
    const event = { provider: 'twilio', providerEventId: `CA2:completed:${c.id}`, status: 'completed' as const, raw: 'CallStatus=completed', conversationId: c.id };
    const results = await Promise.all(Array.from({ length: 20 }, () => store.recordCallEvent(event)));
    expect(results.filter((r) => r === 'recorded')).toHaveLength(1);
    const events = await store.callEvents({ conversationId: c.id });
    expect(events).toHaveLength(1);
    expect(events[0]?.raw).toBe('CallStatus=completed');
  });

  it('webhook deliveries: pending when due, out of the queue once delivered or given up', async () => {
    const due = await store.enqueueWebhook({ projectId: s.projectId, event: 'call.ended', url: 'https://hooks.example.com/a', payload: { id: 1 } });
    const later = await store.enqueueWebhook({ projectId: s.projectId, event: 'call.ended', url: 'https://hooks.example.com/b', payload: { id: 2 }, notBefore: Date.now() + 3_600_000 });
    const pendingIds = (await store.pendingWebhooks()).map((w) => w.id);
    expect(pendingIds).toContain(due.id);
    expect(pendingIds).not.toContain(later.id);
    expect(due).toMatchObject({ status: 'pending', attempts: 0, payload: { id: 1 } });

    const retry = await store.recordWebhookAttempt(due.id, { delivered: false, error: '502 Bad Gateway', retryAt: Date.now() + 60_000 });
    expect(retry).toMatchObject({ status: 'pending', attempts: 1, lastError: '502 Bad Gateway' });
    expect((await store.pendingWebhooks()).map((w) => w.id)).not.toContain(due.id);
    const delivered = await store.recordWebhookAttempt(due.id, { delivered: true });
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(delivered?.deliveredAt).toBeInstanceOf(Date);
    // Recording again on a finished delivery changes nothing.
    expect(await store.recordWebhookAttempt(due.id, { delivered: false, error: 'late' })).toMatchObject({ status: 'delivered', attempts: 2 });
    expect((await store.recordWebhookAttempt(later.id, { delivered: false, error: 'gone' }))?.status).toBe('failed');
  });

  it('lists the conversations of a project newest first, paged by the last one seen', async () => {
    const made = [];
    for (let i = 0; i < 3; i++) {
      // Apart in time from each other and from the seed's conversation (an equal created_at orders by id).
      await sleep(2);
      made.push(await newConversation());
    }
    const other = await seed(db, 'Other');
    await store.create({ projectId: other.projectId, assistantId: other.assistantId, assistantVersion: 1, channel: 'web', direction: 'inbound' });
    const all = await store.listByProject(s.projectId);
    // The seed's own conversation is the oldest.
    expect(all.map((c) => c.id)).toEqual([...made.map((c) => c.id).reverse(), s.conversationId]);
    const page = await store.listByProject(s.projectId, { limit: 2 });
    expect(page.map((c) => c.id)).toEqual([made[2]!.id, made[1]!.id]);
    const next = await store.listByProject(s.projectId, { limit: 2, beforeId: page[1]!.id });
    expect(next.map((c) => c.id)).toEqual([made[0]!.id, s.conversationId]);
    expect(await store.listByProject(s.projectId, { beforeId: s.conversationId })).toEqual([]);
  });

  it('lists only one assistant\'s conversations when asked', async () => {
    const secondAssistant = crypto.randomUUID();
    await db.query('INSERT INTO assistants (id, project_id, name) VALUES ($1::uuid, $2::uuid, $3::text)', [secondAssistant, s.projectId, 'Second']);
    await db.query(`INSERT INTO assistant_versions (assistant_id, version, config) VALUES ($1::uuid, 1, '{}'::jsonb)`, [secondAssistant]);
    await sleep(2);
    const first = await newConversation();
    await sleep(2);
    const second = await store.create({ projectId: s.projectId, assistantId: secondAssistant, assistantVersion: 1, channel: 'web', direction: 'inbound' });
    expect((await store.listByProject(s.projectId, { assistantId: secondAssistant })).map((c) => c.id)).toEqual([second.id]);
    expect((await store.listByProject(s.projectId, { assistantId: s.assistantId })).map((c) => c.id)).toEqual([first.id, s.conversationId]);
    expect(await store.listByProject(s.projectId, { assistantId: 'not-a-uuid' })).toEqual([]);
  });
});
