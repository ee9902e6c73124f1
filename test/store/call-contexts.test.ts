import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import {
  createCallContextStore,
  mediaCloseCode,
  type CallContextStore,
  type ClaimResult,
  type CreateCallContextInput,
} from '../../shared/store/call-contexts';
import type { SqlClient } from '../../shared/store/sql';
import { sha256Hex } from '../../shared/store/tokens';
import { sqlBackends } from './backends';
import { seed, sleep, type Seed } from './fixtures';

describe.each(sqlBackends())('call contexts on $name', (backend) => {
  let db: SqlClient;
  let store: CallContextStore;
  let s: Seed;
  let input: CreateCallContextInput;

  // One migrated database per backend; every test seeds its own project, so tests stay independent.
  beforeAll(async () => {
    db = await backend.open();
    store = createCallContextStore(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  beforeEach(async () => {
    s = await seed(db);
    input = {
      projectId: s.projectId,
      assistantId: s.assistantId,
      assistantVersion: 1,
      conversationId: s.conversationId,
      provider: 'twilio',
      direction: 'inbound',
      caller: '+15550001111',
      callee: '+15550002222',
      variables: { name: 'Ada' },
    };
  });

  const storedHash = async (id: string) =>
    (await db.query<{ resume_token_hash: string | null }>('SELECT resume_token_hash FROM call_contexts WHERE id = $1::uuid', [id]))[0]
      ?.resume_token_hash;

  it('creates a pending context with a random UUIDv4 id that expires after 10 minutes by default', async () => {
    const ctx = await store.create(input);
    expect(ctx.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(ctx.status).toBe('pending');
    expect(ctx.callStatus).toBe('queued');
    expect(ctx.expiresAt.getTime() - ctx.createdAt.getTime()).toBe(10 * 60_000);
    expect(ctx.variables).toEqual({ name: 'Ada' });
    // Stored as a jsonb object (not a double-encoded JSON string).
    const [typed] = await db.query<{ t: string }>('SELECT jsonb_typeof(variables) AS t FROM call_contexts WHERE id = $1::uuid', [ctx.id]);
    expect(typed?.t).toBe('object');
    expect(ctx.claimedAt).toBeUndefined();
    expect(await store.get(ctx.id)).toEqual(ctx);
    expect(await store.get(crypto.randomUUID())).toBeUndefined();
    expect(await store.get('not-a-uuid')).toBeUndefined();
  });

  it('100 concurrent claims on one client: exactly one wins, the rest are told already-claimed (4409)', async () => {
    const contexts = await Promise.all(Array.from({ length: 5 }, () => store.create(input)));
    const results = await Promise.all(contexts.flatMap((ctx) => Array.from({ length: 100 }, () => store.claim(ctx.id))));
    for (const ctx of contexts) {
      const mine = results.filter((r): r is Exclude<ClaimResult, { outcome: 'unknown' }> => r.outcome !== 'unknown' && r.context.id === ctx.id);
      expect(mine).toHaveLength(100);
      const winners = mine.filter((r) => r.outcome === 'claimed');
      expect(winners).toHaveLength(1);
      expect(mine.filter((r) => r.outcome === 'already-claimed')).toHaveLength(99);
      expect(mine.filter((r) => r.outcome === 'already-claimed').map(mediaCloseCode)).toEqual(Array(99).fill(4409));
      const winner = winners[0];
      if (winner?.outcome !== 'claimed') throw new Error('no winner');
      // Only the hash of the winner's token is stored.
      expect(await storedHash(ctx.id)).toBe(await sha256Hex(winner.resumeToken));
      expect(await storedHash(ctx.id)).not.toContain(winner.resumeToken);
      expect(winner.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect((await store.get(ctx.id))?.status).toBe('claimed');
    }
  });

  // Separate connection pools exist only on a server (PGlite is one in-process database): registered there only.
  if (backend.name === 'postgres') it('100 concurrent claims through 5 separate clients (connection pools): exactly one wins', async () => {
    const url = process.env.TEST_DATABASE_URL;
    if (!url) throw new Error('TEST_DATABASE_URL is required for the postgres backend');
    const [{ schema } = { schema: '' }] = await db.query<{ schema: string }>('SELECT current_schema() AS schema');
    const clients = Array.from({ length: 5 }, () => createPostgresClient(url, { schema, max: 4 }));
    try {
      const stores = clients.map((c) => createCallContextStore(c));
      const ctx = await store.create(input);
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => stores[i % stores.length]!.claim(ctx.id)));
      expect(results.filter((r) => r.outcome === 'claimed')).toHaveLength(1);
      expect(results.filter((r) => r.outcome === 'already-claimed')).toHaveLength(99);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('an unknown context id is unknown (4404), whether well-formed or not', async () => {
    for (const id of [crypto.randomUUID(), 'nope', "'; DROP TABLE call_contexts; --"]) {
      const result = await store.claim(id);
      expect(result.outcome).toBe('unknown');
      expect(mediaCloseCode(result)).toBe(4404);
    }
  });

  it('an expired context cannot be claimed (4410) and stays pending', async () => {
    const ctx = await store.create({ ...input, ttlMs: 200 });
    await sleep(400);
    const result = await store.claim(ctx.id);
    expect(result.outcome).toBe('expired');
    expect(mediaCloseCode(result)).toBe(4410);
    expect((await store.get(ctx.id))?.status).toBe('pending');
    expect(await storedHash(ctx.id)).toBeNull();
  });

  it('a context ended before any claim (canceled) reports expired, a claimed one already-claimed', async () => {
    const canceled = await store.create(input);
    expect((await store.updateStatus(canceled.id, { status: 'canceled', callStatus: 'no-answer' }, 'pending')).outcome).toBe('updated');
    expect((await store.claim(canceled.id)).outcome).toBe('expired');

    const finished = await store.create(input);
    expect((await store.claim(finished.id)).outcome).toBe('claimed');
    expect((await store.updateStatus(finished.id, { status: 'completed' }, 'claimed')).outcome).toBe('updated');
    expect((await store.claim(finished.id)).outcome).toBe('already-claimed');
  });

  it('resume within the window works twice in one call with successive tokens, never with a used token', async () => {
    const ctx = await store.create(input);
    const claimed = await store.claim(ctx.id);
    if (claimed.outcome !== 'claimed') throw new Error(`claim: ${claimed.outcome}`);
    const token1 = claimed.resumeToken;

    // Still attached: no resume until the session detached.
    const early = await store.resume(ctx.id, token1);
    expect(early).toMatchObject({ outcome: 'refused', reason: 'not-detached' });

    const detached = await store.detach(ctx.id);
    expect(detached.outcome).toBe('detached');
    if (detached.outcome !== 'detached') throw new Error('detach');
    expect(detached.context.resumeExpiresAt!.getTime() - detached.context.detachedAt!.getTime()).toBe(30_000);

    const first = await store.resume(ctx.id, token1);
    if (first.outcome !== 'resumed') throw new Error(`first resume: ${JSON.stringify(first)}`);
    const token2 = first.resumeToken;
    expect(token2).not.toBe(token1);
    expect(first.context.detachedAt).toBeUndefined();
    expect(await storedHash(ctx.id)).toBe(await sha256Hex(token2));

    // The used token is refused, attached or detached.
    expect(await store.resume(ctx.id, token1)).toMatchObject({ outcome: 'refused', reason: 'bad-token' });
    expect((await store.detach(ctx.id)).outcome).toBe('detached');
    const replay = await store.resume(ctx.id, token1);
    expect(replay).toMatchObject({ outcome: 'refused', reason: 'bad-token' });
    expect(mediaCloseCode(replay)).toBe(4401);

    const second = await store.resume(ctx.id, token2);
    if (second.outcome !== 'resumed') throw new Error(`second resume: ${JSON.stringify(second)}`);
    expect(second.resumeToken).not.toBe(token2);
    expect((await store.get(ctx.id))?.status).toBe('claimed');

    // A made-up token and an unknown context.
    expect((await store.detach(ctx.id)).outcome).toBe('detached');
    expect(await store.resume(ctx.id, 'x'.repeat(43))).toMatchObject({ outcome: 'refused', reason: 'bad-token' });
    expect((await store.resume(crypto.randomUUID(), second.resumeToken)).outcome).toBe('unknown');
    // The rejected attempts did not consume the current token.
    expect((await store.resume(ctx.id, second.resumeToken)).outcome).toBe('resumed');
  });

  it('resume after the window closed is refused (4401)', async () => {
    const short = createCallContextStore(db, { resumeWindowMs: 300 });
    const ctx = await short.create(input);
    const claimed = await short.claim(ctx.id);
    if (claimed.outcome !== 'claimed') throw new Error('claim');
    await short.detach(ctx.id);
    await sleep(500);
    const late = await short.resume(ctx.id, claimed.resumeToken);
    expect(late).toMatchObject({ outcome: 'refused', reason: 'window-closed' });
    expect(mediaCloseCode(late)).toBe(4401);
  });

  it('a resume token is consumed once even when presented concurrently', async () => {
    const ctx = await store.create(input);
    const claimed = await store.claim(ctx.id);
    if (claimed.outcome !== 'claimed') throw new Error('claim');
    await store.detach(ctx.id);
    const results = await Promise.all(Array.from({ length: 20 }, () => store.resume(ctx.id, claimed.resumeToken)));
    expect(results.filter((r) => r.outcome === 'resumed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'refused')).toHaveLength(19);
  });

  it('detach needs a claimed context and does not extend a running window', async () => {
    const ctx = await store.create(input);
    expect((await store.detach(ctx.id)).outcome).toBe('not-claimed');
    expect((await store.detach(crypto.randomUUID())).outcome).toBe('unknown');
    await store.claim(ctx.id);
    const first = await store.detach(ctx.id);
    await sleep(20);
    const again = await store.detach(ctx.id);
    if (first.outcome !== 'detached' || again.outcome !== 'detached') throw new Error('detach');
    expect(again.context.resumeExpiresAt).toEqual(first.context.resumeExpiresAt);
    await store.updateStatus(ctx.id, { status: 'completed' }, 'claimed');
    expect((await store.detach(ctx.id)).outcome).toBe('not-claimed');
  });

  it('a terminal context refuses resume even with the current token', async () => {
    const ctx = await store.create(input);
    const claimed = await store.claim(ctx.id);
    if (claimed.outcome !== 'claimed') throw new Error('claim');
    await store.detach(ctx.id);
    await store.updateStatus(ctx.id, { status: 'failed', failureClass: 'media', failureReason: 'socket lost' }, 'claimed');
    expect(await store.resume(ctx.id, claimed.resumeToken)).toMatchObject({ outcome: 'refused', reason: 'ended' });
  });

  it('updateStatus is a compare-and-set on the context status and the call status', async () => {
    const ctx = await store.create(input);
    // Wrong expectation: nothing changes.
    const wrong = await store.updateStatus(ctx.id, { callStatus: 'ringing', channelId: 'CA1' }, 'claimed');
    expect(wrong.outcome).toBe('conflict');
    expect(await store.get(ctx.id)).toMatchObject({ callStatus: 'queued', status: 'pending' });
    expect((await store.get(ctx.id))?.channelId).toBeUndefined();

    const ringing = await store.updateStatus(ctx.id, { callStatus: 'ringing', channelId: 'CA1' }, { callStatus: ['queued'] });
    expect(ringing).toMatchObject({ outcome: 'updated', context: { callStatus: 'ringing', channelId: 'CA1', status: 'pending' } });
    expect((await store.updateStatus(ctx.id, { callStatus: 'in-progress' }, { callStatus: 'queued' })).outcome).toBe('conflict');
    expect((await store.updateStatus(ctx.id, { callStatus: 'in-progress' }, { status: ['pending', 'claimed'], callStatus: ['queued', 'ringing'] })).outcome).toBe('updated');

    await store.claim(ctx.id);
    const done = await store.updateStatus(ctx.id, { status: 'completed', callStatus: 'completed', disconnectReason: 'caller-hangup' }, 'claimed');
    expect(done).toMatchObject({ outcome: 'updated', context: { status: 'completed', callStatus: 'completed', disconnectReason: 'caller-hangup' } });
    expect(done.outcome === 'updated' && done.context.updatedAt >= ctx.updatedAt).toBe(true);

    // Terminal values are never re-opened, whatever the guard says; repeating the same value is idempotent.
    expect((await store.updateStatus(ctx.id, { status: 'failed' }, {})).outcome).toBe('conflict');
    expect((await store.updateStatus(ctx.id, { callStatus: 'in-progress' }, {})).outcome).toBe('conflict');
    expect((await store.updateStatus(ctx.id, { status: 'completed', failureReason: 'late note' }, {})).outcome).toBe('updated');
    expect(await store.get(ctx.id)).toMatchObject({ status: 'completed', callStatus: 'completed', failureReason: 'late note' });

    expect((await store.updateStatus(crypto.randomUUID(), { status: 'failed' }, 'pending')).outcome).toBe('unknown');
  });

  it('concurrent compare-and-set updates: exactly one applies', async () => {
    const ctx = await store.create(input);
    await store.claim(ctx.id);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => store.updateStatus(ctx.id, { status: i % 2 ? 'completed' : 'failed', disconnectReason: `writer-${i}` }, 'claimed')),
    );
    const winners = results.filter((r) => r.outcome === 'updated');
    expect(winners).toHaveLength(1);
    const final = await store.get(ctx.id);
    expect(winners[0]?.outcome === 'updated' && winners[0].context.disconnectReason).toBe(final?.disconnectReason);
  });

  it('getByChannelId finds the newest context of a carrier call id', async () => {
    const older = await store.create({ ...input, channelId: 'CA-same' });
    await sleep(10);
    const newer = await store.create({ ...input, channelId: 'CA-same' });
    await store.create({ ...input, provider: 'vonage', channelId: 'CA-same' });
    expect((await store.getByChannelId('twilio', 'CA-same'))?.id).toBe(newer.id);
    expect(older.id).not.toBe(newer.id);
    expect(await store.getByChannelId('twilio', 'CA-other')).toBeUndefined();
  });
});
