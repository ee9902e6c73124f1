import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { loadMigrations } from '../../media-node/db/migrations';
import type { CallEvent, TurnMetrics } from '../../shared/contracts/observer';
import { createCallRecorder, createConversationOpsApplier, type ConversationOp } from '../../shared/store/call-recorder';
import { createConversationStore } from '../../shared/store/conversations';
import { migrate } from '../../shared/store/migrate';
import type { SqlClient } from '../../shared/store/sql';
import { createBatchedWriter } from '../../shared/store/writer';
import { seed, sleep } from './fixtures';
import { startTcpProxy } from './tcp-proxy';

const url = process.env.TEST_DATABASE_URL;
if (!url && process.env.CI === 'true') throw new Error('TEST_DATABASE_URL is not set: under CI=true the PostgreSQL outage test must run');
if (!url) console.warn('TEST_DATABASE_URL not set: skipping the PostgreSQL outage test');

const TURNS = 40;

describe.runIf(url)('a PostgreSQL outage in the middle of a call', () => {
  const schema = `t_outage_${crypto.randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let admin: SqlClient;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;

  beforeAll(async () => {
    admin = createPostgresClient(url!, { max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const direct = createPostgresClient(url!, { schema, max: 1 });
    await migrate(direct, await loadMigrations());
    await direct.close();
    const target = new URL(url!);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  });

  afterAll(async () => {
    await proxy?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin?.close();
  });

  it('loses no message or metric: everything lands after reconnect, in order, none twice', async () => {
    const through = new URL(url!);
    through.hostname = '127.0.0.1';
    through.port = String(proxy.port);
    const db = createPostgresClient(through.toString(), { schema, max: 4, connectTimeoutSeconds: 1 });
    const { conversationId } = await seed(db);
    const applyOps = createConversationOpsApplier(db);
    const landedAt: number[] = [];
    const errors: unknown[] = [];
    const writer = createBatchedWriter<ConversationOp>({
      // Records when each batch landed, to show the outage really held the writes back.
      apply: async (ops) => {
        await applyOps(ops);
        landedAt.push(Date.now());
      },
      maxBatchDelayMs: 20,
      retry: { initialDelayMs: 50, maxDelayMs: 400 },
      onError: (e) => errors.push(e),
    });
    const recorder = createCallRecorder({ conversationId, writer });
    const metrics = (turnId: number): TurnMetrics => ({
      callId: 'outage',
      turnId,
      kind: 'reply',
      userSpeechEnd: turnId * 100,
      firstAudioOut: turnId * 100 + 80,
      voiceToVoiceMs: 80,
      interrupted: false,
      inputTokens: turnId,
      outputTokens: 1,
      providers: {},
    });
    const emit = (e: CallEvent) => recorder.onEvent(e);

    emit({ type: 'callStarted', callId: 'outage', atMs: 0 });
    for (let turn = 1; turn <= TURNS; turn++) {
      // Mid-call, every connection is cut and new ones refused for 2.5 s.
      if (turn === 10) proxy.cut(2_500);
      emit({ type: 'userMessage', text: `question ${turn}`, atMs: turn * 100, source: 'speech' });
      emit({ type: 'assistantMessage', turnId: turn, text: `answer ${turn}`, generatedText: `answer ${turn}`, interrupted: false, atMs: turn * 100 + 50 });
      emit({ type: 'turnMetrics', metrics: metrics(turn) });
      await sleep(60);
    }
    emit({ type: 'callEnded', callId: 'outage', reason: 'caller-hangup', atMs: TURNS * 100 + 500 });
    expect(await writer.flush({ timeoutMs: 30_000 })).toEqual({ status: 'flushed' });
    const stats = writer.stats();
    // The outage really hit: connections were re-made after the cut and no batch landed for ≥ 2 s.
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
    const longestGapMs = Math.max(...landedAt.slice(1).map((t, i) => t - landedAt[i]!));
    expect(longestGapMs).toBeGreaterThanOrEqual(2_000);
    expect(stats.rejected).toBe(0);
    expect(stats.dropped).toBe(0);
    await writer.close();

    const store = createConversationStore(db);
    const messages = await store.messages(conversationId);
    const expected = Array.from({ length: TURNS }, (_, i) => [`question ${i + 1}`, `answer ${i + 1}`]).flat();
    expect(messages.map((m) => m.text)).toEqual(expected);
    expect(messages.map((m) => m.seq)).toEqual(expected.map((_, i) => i));
    const turns = await store.turnMetrics(conversationId);
    expect(turns.map((t) => t.turnId)).toEqual(Array.from({ length: TURNS }, (_, i) => i + 1));
    expect(await store.get(conversationId)).toMatchObject({ status: 'completed', disconnectReason: 'caller-hangup' });
    expect(errors.every((e) => (e as { retryable?: boolean }).retryable !== false)).toBe(true);
    await db.close();
  }, 60_000);
});
