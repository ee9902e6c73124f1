import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallEvent, TurnMetrics } from '../../shared/contracts/observer';
import {
  applyConversationOps,
  ConversationOpError,
  createCallRecorder,
  createConversationOpsApplier,
  type ConversationOp,
  type ConversationOpStore,
} from '../../shared/store/call-recorder';
import { createConversationStore } from '../../shared/store/conversations';
import { DatabaseUnavailableError, type SqlClient } from '../../shared/store/sql';
import { createBatchedWriter, isRetryableWriteError, type FlushResult, type WriterErrorEvent } from '../../shared/store/writer';
import { startCall } from '../fakes/call';
import { createFakeClock, type FakeClock } from '../fakes/clock';
import { lastUserText } from '../fakes/llm';
import { sqlBackends } from './backends';
import { seed } from './fixtures';

const WALL_AT_START = Date.UTC(2026, 0, 2, 3, 4, 5);
const CONVERSATION = '7d1b5f0e-3c55-4a5e-9f0e-8f4f1d2a9b10';

function sink() {
  const ops: ConversationOp[] = [];
  let flushes = 0;
  return {
    ops,
    get flushes() {
      return flushes;
    },
    enqueue: (op: ConversationOp) => (ops.push(op), true),
    requestFlush: () => void flushes++,
  };
}

const metricsOf = (turnId: number, marks: Partial<TurnMetrics> = {}): TurnMetrics => ({
  callId: 'call-1',
  turnId,
  kind: 'reply',
  interrupted: false,
  inputTokens: 10,
  outputTokens: 5,
  providers: { stt: 'deepgram', llm: 'openai', tts: 'cartesia' },
  ...marks,
});

describe('call recorder: events → ops', () => {
  it('turns a call into ordered, keyed, JSON-only ops', () => {
    const writer = sink();
    let wall = WALL_AT_START;
    const recorder = createCallRecorder({ conversationId: CONVERSATION, writer, wallClock: () => wall });
    const events: CallEvent[] = [
      { type: 'callStarted', callId: 'call-1', atMs: 1_000 },
      { type: 'userSpeechStarted', atMs: 1_500 },
      { type: 'userSpeechEnded', atMs: 1_900 },
      { type: 'userMessage', text: 'book a table', atMs: 2_000, source: 'speech' },
      { type: 'toolCall', id: 'call-tool-1', name: 'book', arguments: '{"people":2}', result: '{"ok":true}', atMs: 2_100 },
      { type: 'assistantMessage', turnId: 1, text: 'done, a table for', generatedText: 'done, a table for two at eight', interrupted: true, atMs: 3_000 },
      { type: 'turnMetrics', metrics: metricsOf(1, { userSpeechEnd: 1_900, llmRequest: 2_000, firstAudioOut: 2_400, voiceToVoiceMs: 500, interrupted: true }) },
      { type: 'callEnded', callId: 'call-1', reason: 'caller-hangup', atMs: 5_000 },
    ];
    recorder.onEvent(events[0]!);
    wall += 60_000; // the wall clock is read once, at callStarted: later times come from the events
    for (const e of events.slice(1)) recorder.onEvent(e);

    const at = (ms: number) => WALL_AT_START + ms - 1_000;
    expect(writer.ops).toEqual([
      { kind: 'conversation.started', key: `conversation:${CONVERSATION}:started`, payload: { conversationId: CONVERSATION, at: WALL_AT_START } },
      {
        kind: 'message',
        key: `conversation:${CONVERSATION}:message:0`,
        payload: { conversationId: CONVERSATION, message: { seq: 0, role: 'user', text: 'book a table', interrupted: false, startedAt: at(1_500), endedAt: at(2_000) } },
      },
      {
        kind: 'message',
        key: `conversation:${CONVERSATION}:message:1`,
        payload: {
          conversationId: CONVERSATION,
          message: { seq: 1, role: 'assistant', text: '', interrupted: false, toolCalls: [{ id: 'call-tool-1', name: 'book', arguments: '{"people":2}' }], endedAt: at(2_100) },
        },
      },
      {
        kind: 'message',
        key: `conversation:${CONVERSATION}:message:2`,
        payload: { conversationId: CONVERSATION, message: { seq: 2, role: 'tool', text: '{"ok":true}', interrupted: false, toolCallId: 'call-tool-1', endedAt: at(2_100) } },
      },
      {
        kind: 'message',
        key: `conversation:${CONVERSATION}:message:3`,
        payload: {
          conversationId: CONVERSATION,
          message: { seq: 3, role: 'assistant', text: 'done, a table for two at eight', turnId: 1, heardText: 'done, a table for', interrupted: true, endedAt: at(3_000) },
        },
      },
      {
        kind: 'turnMetrics',
        key: `conversation:${CONVERSATION}:metrics:1`,
        // Marks rebased to ms since the call started; durations unchanged.
        payload: { conversationId: CONVERSATION, metrics: metricsOf(1, { userSpeechEnd: 900, llmRequest: 1_000, firstAudioOut: 1_400, voiceToVoiceMs: 500, interrupted: true }) },
      },
      {
        kind: 'conversation.ended',
        key: `conversation:${CONVERSATION}:ended`,
        payload: { conversationId: CONVERSATION, status: 'completed', endedAt: at(5_000), durationMs: 4_000, disconnectReason: 'caller-hangup' },
      },
    ]);
    expect(JSON.parse(JSON.stringify(writer.ops))).toEqual(writer.ops);
    expect(recorder.nextSeq).toBe(4);
  });

  it('asks the writer to write at once when the call ends, and ignores anything after the end', () => {
    const writer = sink();
    const recorder = createCallRecorder({ conversationId: CONVERSATION, writer, wallClock: () => WALL_AT_START });
    recorder.onEvent({ type: 'callStarted', callId: 'c', atMs: 0 });
    expect(writer.flushes).toBe(0);
    recorder.onEvent({ type: 'callEnded', callId: 'c', reason: 'idle-timeout', atMs: 10 });
    expect(writer.flushes).toBe(1);
    expect(recorder.ended).toBe(true);
    recorder.onEvent({ type: 'assistantMessage', turnId: 9, text: 'late', generatedText: 'late', interrupted: false, atMs: 20 });
    recorder.onEvent({ type: 'callEnded', callId: 'c', reason: 'again', atMs: 30 });
    expect(writer.ops.map((o) => o.kind)).toEqual(['conversation.started', 'conversation.ended']);
  });

  it('continues the numbering from firstSeq and maps the end reason through endStatus', () => {
    const writer = sink();
    const recorder = createCallRecorder({
      conversationId: CONVERSATION,
      writer,
      wallClock: () => WALL_AT_START,
      firstSeq: 12,
      endStatus: (reason) => (reason === 'tts-unavailable' ? 'failed' : 'completed'),
    });
    recorder.onEvent({ type: 'callStarted', callId: 'c', atMs: 0 });
    recorder.onEvent({ type: 'userMessage', text: '1 2', atMs: 5, source: 'dtmf' });
    recorder.onEvent({ type: 'callEnded', callId: 'c', reason: 'tts-unavailable', atMs: 10 });
    expect(writer.ops[1]).toMatchObject({ key: `conversation:${CONVERSATION}:message:12`, payload: { message: { seq: 12, role: 'user', text: '1 2' } } });
    expect(writer.ops[1]!.payload).not.toHaveProperty('message.startedAt');
    expect(writer.ops[2]).toMatchObject({ payload: { status: 'failed', disconnectReason: 'tts-unavailable' } });
  });

  it('snapshots the metrics: the engine mutating its object later changes nothing queued', () => {
    const writer = sink();
    const recorder = createCallRecorder({ conversationId: CONVERSATION, writer, wallClock: () => 0 });
    recorder.onEvent({ type: 'callStarted', callId: 'c', atMs: 100 });
    const live = metricsOf(1, { userSpeechEnd: 150, overheadMs: { endOfTurnToLlm: 1, tokenToTts: 2, audioToChannel: 3 } });
    recorder.onEvent({ type: 'turnMetrics', metrics: live });
    live.userSpeechEnd = 999;
    live.providers.llm = 'changed';
    live.overheadMs!.tokenToTts = 99;
    expect(writer.ops[1]).toMatchObject({ payload: { metrics: { userSpeechEnd: 50, providers: { llm: 'openai' }, overheadMs: { tokenToTts: 2 } } } });
  });

  it('never throws into the engine, even when the writer does', () => {
    const recorder = createCallRecorder({
      conversationId: CONVERSATION,
      writer: {
        enqueue: () => {
          throw new Error('broken writer');
        },
        requestFlush: () => {
          throw new Error('broken writer');
        },
      },
    });
    expect(() => recorder.onEvent({ type: 'callStarted', callId: 'c', atMs: 0 })).not.toThrow();
    expect(() => recorder.onEvent({ type: 'callEnded', callId: 'c', reason: 'x', atMs: 1 })).not.toThrow();
  });
});

describe('applyConversationOps', () => {
  function fakeStore() {
    const calls: unknown[][] = [];
    const store: ConversationOpStore = {
      appendMessages: async (id, messages) => (calls.push(['appendMessages', id, messages.map((m) => m.seq)]), messages.map((m) => m.seq)),
      recordTurnMetrics: async (id, metrics) => void calls.push(['recordTurnMetrics', id, metrics.map((m) => m.turnId)]),
      updateStatus: async (id, update) => (calls.push(['updateStatus', id, update.status]), undefined),
      end: async (id, end) => (calls.push(['end', id, end?.status]), undefined),
    };
    return { store, calls };
  }
  const msg = (conversationId: string, seq: number): ConversationOp => ({
    kind: 'message',
    key: `m${seq}`,
    payload: { conversationId, message: { seq, role: 'user', text: `m${seq}`, interrupted: false, endedAt: 0 } },
  });
  const met = (conversationId: string, turnId: number): ConversationOp => ({ kind: 'turnMetrics', key: `t${turnId}`, payload: { conversationId, metrics: metricsOf(turnId) } });

  it('keeps the order and hands consecutive messages or metrics of one conversation to the store together', async () => {
    const { store, calls } = fakeStore();
    await applyConversationOps(store, [
      { kind: 'conversation.started', key: 's', payload: { conversationId: 'a', at: 0 } },
      msg('a', 0),
      msg('a', 1),
      msg('b', 0),
      met('b', 1),
      met('b', 2),
      msg('a', 2),
      { kind: 'conversation.ended', key: 'e', payload: { conversationId: 'a', status: 'completed', endedAt: 1, durationMs: 1, disconnectReason: 'bye' } },
    ]);
    expect(calls).toEqual([
      ['updateStatus', 'a', 'in-progress'],
      ['appendMessages', 'a', [0, 1]],
      ['appendMessages', 'b', [0]],
      ['recordTurnMetrics', 'b', [1, 2]],
      ['appendMessages', 'a', [2]],
      ['end', 'a', 'completed'],
    ]);
  });

  it('refuses an unknown op kind with a non-retryable error (so the writer isolates it)', async () => {
    const { store } = fakeStore();
    const unknown = { kind: 'summary', key: 'x', payload: {} } as unknown as ConversationOp;
    const error = await applyConversationOps(store, [unknown]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversationOpError);
    expect(isRetryableWriteError(error)).toBe(false);
  });
});

/**
 * Flush while moving the writer's fake time on: backoff timers need virtual time, and a real database needs
 * a little real time for its I/O (a few ms per step, never a long wait).
 */
async function flushOnFakeTime(writer: { flush(): Promise<FlushResult> }, clock: FakeClock): Promise<FlushResult> {
  let result: FlushResult | undefined;
  void writer.flush().then((r) => (result = r));
  for (let step = 0; step < 500 && !result; step++) {
    await clock.advance(500);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return result ?? { status: 'timeout', pending: -1 };
}

/** A SQL client that can be taken down, or made to lose the reply of a transaction that did commit. */
function flakyClient(db: SqlClient) {
  const state = { down: false, loseCommitReplies: 0, transactions: 0 };
  const unavailable = () => new DatabaseUnavailableError('connect ECONNREFUSED 127.0.0.1:5432');
  const client: SqlClient = {
    query: (text, params) => (state.down ? Promise.reject(unavailable()) : db.query(text, params)),
    async transaction(fn) {
      state.transactions++;
      if (state.down) throw unavailable();
      const result = await db.transaction(fn);
      if (state.loseCommitReplies > 0) {
        state.loseCommitReplies--;
        throw new DatabaseUnavailableError('connection lost after COMMIT was sent');
      }
      return result;
    },
    exec: (text) => db.exec(text),
    close: () => db.close(),
  };
  return { client, state };
}

for (const backend of sqlBackends()) {
  describe(`call recorder → writer → ConversationStore (${backend.name})`, () => {
    let db: SqlClient;
    beforeAll(async () => {
      db = await backend.open();
    });
    afterAll(async () => {
      await db?.close();
    });

    it('an outage mid-call loses nothing: every message and metric lands once, in order, after recovery', async () => {
      const { conversationId } = await seed(db);
      const { client, state } = flakyClient(db);
      const clock = createFakeClock();
      const writer = createBatchedWriter<ConversationOp>({ apply: createConversationOpsApplier(client), clock, random: () => 0, maxBatchSize: 4 });
      const recorder = createCallRecorder({ conversationId, writer, wallClock: () => WALL_AT_START });

      recorder.onEvent({ type: 'callStarted', callId: 'c', atMs: 0 });
      recorder.onEvent({ type: 'assistantMessage', turnId: 0, text: 'hello', generatedText: 'hello', interrupted: false, atMs: 500 });
      recorder.onEvent({ type: 'turnMetrics', metrics: metricsOf(0, { kind: 'greeting', firstAudioOut: 100 }) });
      expect(await writer.flush()).toEqual({ status: 'flushed' });
      state.down = true;
      for (let turn = 1; turn <= 5; turn++) {
        recorder.onEvent({ type: 'userMessage', text: `question ${turn}`, atMs: turn * 1_000, source: 'speech' });
        recorder.onEvent({ type: 'assistantMessage', turnId: turn, text: `answer ${turn}`, generatedText: `answer ${turn}`, interrupted: turn === 3, atMs: turn * 1_000 + 500 });
        recorder.onEvent({ type: 'turnMetrics', metrics: metricsOf(turn, { userSpeechEnd: turn * 1_000, firstAudioOut: turn * 1_000 + 400 }) });
        await clock.advance(1_000);
      }
      recorder.onEvent({ type: 'callEnded', callId: 'c', reason: 'caller-hangup', atMs: 6_000 });
      await clock.advance(3_000);
      expect(writer.stats().retries).toBeGreaterThan(0);
      const store = createConversationStore(db);
      expect(await store.messages(conversationId)).toHaveLength(1); // only the greeting made it before the outage

      state.down = false;
      state.loseCommitReplies = 1; // the first batch after recovery commits but its reply is lost: it is applied again
      expect(await flushOnFakeTime(writer, clock)).toEqual({ status: 'flushed' });
      expect(state.transactions).toBeGreaterThan(3);

      const messages = await store.messages(conversationId);
      expect(messages.map((m) => [m.seq, m.role, m.text])).toEqual([
        [0, 'assistant', 'hello'],
        ...[1, 2, 3, 4, 5].flatMap((turn) => [
          [turn * 2 - 1, 'user', `question ${turn}`],
          [turn * 2, 'assistant', `answer ${turn}`],
        ]),
      ]);
      expect(messages.find((m) => m.text === 'answer 3')).toMatchObject({ interrupted: true, heardText: 'answer 3', turnId: 3 });
      expect(messages[1]!.endedAt?.getTime()).toBe(WALL_AT_START + 1_000);
      const metrics = await store.turnMetrics(conversationId);
      expect(metrics.map((m) => [m.turnId, m.userSpeechEnd])).toEqual([[0, undefined], [1, 1_000], [2, 2_000], [3, 3_000], [4, 4_000], [5, 5_000]]);
      expect(await store.get(conversationId)).toMatchObject({ status: 'completed', durationMs: 6_000, disconnectReason: 'caller-hangup', endedAt: new Date(WALL_AT_START + 6_000) });
      expect((await store.get(conversationId))?.startedAt?.getTime()).toBe(WALL_AT_START);
      await writer.close();
    });

    it('a batch with a message for an unknown conversation rejects that op alone; the others land', async () => {
      const { conversationId } = await seed(db);
      const events: WriterErrorEvent<ConversationOp>[] = [];
      const writer = createBatchedWriter<ConversationOp>({ apply: createConversationOpsApplier(db), clock: createFakeClock(), onError: (e) => events.push(e) });
      const good = createCallRecorder({ conversationId, writer, wallClock: () => WALL_AT_START });
      const orphan = createCallRecorder({ conversationId: crypto.randomUUID(), writer, wallClock: () => WALL_AT_START });
      good.onEvent({ type: 'userMessage', text: 'first', atMs: 1, source: 'speech' });
      orphan.onEvent({ type: 'userMessage', text: 'nobody owns me', atMs: 2, source: 'speech' });
      good.onEvent({ type: 'userMessage', text: 'second', atMs: 3, source: 'speech' });
      expect(await writer.flush()).toEqual({ status: 'flushed' });
      expect((await createConversationStore(db).messages(conversationId)).map((m) => m.text)).toEqual(['first', 'second']);
      expect(events.filter((e) => e.type === 'rejected')).toHaveLength(1);
      expect(events.find((e) => e.type === 'rejected')).toMatchObject({ op: { payload: { message: { text: 'nobody owns me' } } } });
      await writer.close();
    });

    it('records a real engine call (question, barge-in, next turn) with what the caller heard', async () => {
      const { conversationId } = await seed(db);
      const writerClock = createFakeClock();
      const writer = createBatchedWriter<ConversationOp>({ apply: createConversationOpsApplier(db), clock: writerClock });
      const recorder = createCallRecorder({ conversationId, writer, wallClock: () => WALL_AT_START });
      const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';
      const call = await startCall({
        llm: { reply: (m) => (lastUserText(m).startsWith('tell me a story') ? STORY : 'okay sure'), firstTokenDelayMs: 100, tokenDelayMs: 20 },
        observer: recorder,
      });
      call.fake.say('tell me a story');
      await call.runUntil(() => call.fake.played.length > 0);
      await call.run(1_500);
      call.fake.say('okay stop');
      await call.runUntil(() => call.of('assistantMessage').length === 2, 10_000);
      await call.end();
      expect(await writer.flush()).toEqual({ status: 'flushed' });

      const store = createConversationStore(db);
      const rows = await store.messages(conversationId);
      // What the caller heard is the history; the full generated text is kept beside it.
      const stored = rows.map((m) => ({ role: m.role, text: m.heardText ?? m.text, interrupted: m.interrupted }));
      expect(rows[1]!.text.split(' ').length).toBeGreaterThan(rows[1]!.heardText!.split(' ').length);
      const history = call.comm.history.filter((m) => m.role !== 'system').map((m) => ({ role: m.role, text: m.content, interrupted: m.role === 'assistant' && m.interrupted === true }));
      expect(stored).toEqual(history);
      expect(stored.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
      expect(stored[1]).toMatchObject({ role: 'assistant', interrupted: true });
      expect(stored[1]!.text.split(' ').length).toBeLessThan(STORY.split(' ').length);
      expect(stored[3]).toMatchObject({ text: 'okay sure', interrupted: false });
      const turns = await store.turnMetrics(conversationId);
      expect(turns.map((t) => t.turnId)).toEqual(call.metrics().map((m) => m.turnId).sort((a, b) => a - b));
      const conversation = await store.get(conversationId);
      expect(conversation).toMatchObject({ status: 'completed', disconnectReason: 'test-done' });
      const ended = call.of('callEnded')[0]!;
      const started = call.of('callStarted')[0]!;
      expect(conversation?.durationMs).toBe(Math.round(ended.atMs - started.atMs));
      await writer.close();
    }, 60_000);
  });
}
