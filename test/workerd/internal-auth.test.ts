import { describe, expect, it } from 'vitest';
import { createApp, type AppStores } from '../../edge/app';
import { internalRoutes } from '../../media-node/internal-routes';
import {
  createReplayGuard,
  INTERNAL_SIGNATURE_HEADER,
  INTERNAL_TIMESTAMP_HEADER,
  PREWARM_PATH,
  signInternalRequest,
  verifyInternalRequest,
} from '../../shared/cluster/internal-auth';
import { checkReadiness } from '../../shared/health/readiness';

// Node-to-node signatures (shared/cluster/internal-auth.ts) and the node's `POST /internal/prewarm` route
// (media-node/internal-routes.ts), mounted in the real app the way media-node/server.ts mounts it.

const SECRET = 'internal-secret-0123456789abcdef-0123456789';
const OTHER_SECRET = 'another-secret-0123456789abcdef-0123456789';
const CONTEXT_ID = '6f1c2a9e-3b7d-4c1e-9a2f-0d8e7c6b5a41';
const NOW = 1_780_000_000_000;

describe('internal request signatures', () => {
  const parts = { method: 'POST', path: PREWARM_PATH, body: JSON.stringify({ contextId: CONTEXT_ID }) };

  it('a signature verifies for exactly what was signed: method, path, timestamp and body', async () => {
    const headers = await signInternalRequest(SECRET, parts, NOW);
    expect(headers[INTERNAL_TIMESTAMP_HEADER]).toBe(String(NOW));
    expect(headers[INTERNAL_SIGNATURE_HEADER]).toMatch(/^v1=[0-9a-f]{64}$/);
    const verify = (p: typeof parts, overrides: { timestamp?: string; secret?: string; nowMs?: number } = {}) =>
      verifyInternalRequest(overrides.secret ?? SECRET, p, { timestamp: overrides.timestamp ?? headers[INTERNAL_TIMESTAMP_HEADER], signature: headers[INTERNAL_SIGNATURE_HEADER], nowMs: overrides.nowMs ?? NOW + 1_000 });
    expect(await verify(parts)).toEqual({ ok: true });
    expect(await verify({ ...parts, method: 'post' })).toEqual({ ok: true }); // method case does not matter
    expect(await verify({ ...parts, method: 'PUT' })).toEqual({ ok: false, reason: 'bad-signature' });
    expect(await verify({ ...parts, path: '/internal/other' })).toEqual({ ok: false, reason: 'bad-signature' });
    expect(await verify({ ...parts, body: parts.body.replace('41"', '42"') })).toEqual({ ok: false, reason: 'bad-signature' });
    expect(await verify(parts, { timestamp: String(NOW + 1) })).toEqual({ ok: false, reason: 'bad-signature' });
    expect(await verify(parts, { secret: OTHER_SECRET })).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('the timestamp must be within 60 s either way of the receiver clock', async () => {
    const headers = await signInternalRequest(SECRET, parts, NOW);
    const at = (nowMs: number) =>
      verifyInternalRequest(SECRET, parts, { timestamp: headers[INTERNAL_TIMESTAMP_HEADER], signature: headers[INTERNAL_SIGNATURE_HEADER], nowMs });
    expect(await at(NOW + 60_000)).toEqual({ ok: true });
    expect(await at(NOW - 60_000)).toEqual({ ok: true });
    expect(await at(NOW + 60_001)).toEqual({ ok: false, reason: 'stale' });
    expect(await at(NOW - 60_001)).toEqual({ ok: false, reason: 'stale' });
  });

  it('missing or malformed headers are refused before any MAC work', async () => {
    const verify = (timestamp: string | undefined, signature: string | undefined) => verifyInternalRequest(SECRET, parts, { timestamp, signature, nowMs: NOW });
    expect(await verify(undefined, 'v1=' + 'a'.repeat(64))).toEqual({ ok: false, reason: 'missing' });
    expect(await verify(String(NOW), undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(await verify('yesterday', 'v1=' + 'a'.repeat(64))).toEqual({ ok: false, reason: 'malformed' });
    expect(await verify(String(NOW), 'a'.repeat(64))).toEqual({ ok: false, reason: 'malformed' });
    expect(await verify(String(NOW), 'v1=' + 'g'.repeat(64))).toEqual({ ok: false, reason: 'malformed' });
    expect(await verify(String(NOW), 'v1=' + 'a'.repeat(63))).toEqual({ ok: false, reason: 'malformed' });
  });

  it('a replay guard refuses the same valid signature twice within the window, and forgets it after', async () => {
    const guard = createReplayGuard({ maxEntries: 3 });
    const headers = await signInternalRequest(SECRET, parts, NOW);
    const once = (nowMs: number) =>
      verifyInternalRequest(SECRET, parts, { timestamp: headers[INTERNAL_TIMESTAMP_HEADER], signature: headers[INTERNAL_SIGNATURE_HEADER], nowMs, replayGuard: guard });
    expect(await once(NOW)).toEqual({ ok: true });
    expect(await once(NOW + 10)).toEqual({ ok: false, reason: 'replayed' });
    // A wrong signature is never remembered (garbage cannot fill the guard).
    await verifyInternalRequest(SECRET, parts, { timestamp: String(NOW), signature: 'v1=' + '0'.repeat(64), nowMs: NOW, replayGuard: guard });
    expect(guard.size).toBe(1);
    // Bounded: past maxEntries the oldest is dropped.
    for (let i = 1; i <= 3; i++) {
      const h = await signInternalRequest(SECRET, parts, NOW + i);
      await verifyInternalRequest(SECRET, parts, { timestamp: h[INTERNAL_TIMESTAMP_HEADER], signature: h[INTERNAL_SIGNATURE_HEADER], nowMs: NOW + i, replayGuard: guard });
    }
    expect(guard.size).toBe(3);
  });

  it('refuses to sign with a secret shorter than 32 characters', async () => {
    await expect(signInternalRequest('short', parts)).rejects.toThrow(/at least 32 characters/);
  });
});

describe('POST /internal/prewarm on the media node', () => {
  function nodeApp(clockMs = () => Date.now()) {
    const prewarmed: string[] = [];
    const warnings: Array<Readonly<Record<string, unknown>> | undefined> = [];
    const log = { info() {}, warn: (_m: string, f?: Readonly<Record<string, unknown>>) => warnings.push(f), error() {} };
    const app = createApp(
      { stores: {} as AppStores, readiness: () => checkReadiness({}), publicBaseUrl: 'https://node-1.voice.test' },
      { extraRoutes: [{ path: '/internal', routes: internalRoutes({ internalSecret: SECRET, prewarm: (id) => prewarmed.push(id), log, clock: { now: clockMs } }) }] },
    );
    const post = async (body: string, headers: Record<string, string>) => {
      const response = await app.request(`https://node-1.voice.test${PREWARM_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      return { status: response.status, json: (await response.json()) as { accepted?: boolean; error?: { code: string; message: string; reason?: string } } };
    };
    return { prewarmed, warnings, post };
  }
  const body = JSON.stringify({ contextId: CONTEXT_ID });

  it('a correctly signed request calls prewarm with the context id and answers 202', async () => {
    const node = nodeApp();
    const reply = await node.post(body, await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body }));
    expect(reply).toEqual({ status: 202, json: { accepted: true } });
    expect(node.prewarmed).toEqual([CONTEXT_ID]);
  });

  it('no signature, a wrong secret, a tampered body, a stale timestamp or a replay: 401 and no pre-warm', async () => {
    const node = nodeApp();
    const signed = await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body });
    const cases: Array<[string, Promise<{ status: number; json: { error?: { code: string; reason?: string } } }>, string]> = [
      ['none', node.post(body, {}), 'missing'],
      ['wrong secret', node.post(body, await signInternalRequest(OTHER_SECRET, { method: 'POST', path: PREWARM_PATH, body })), 'bad-signature'],
      ['tampered', node.post(JSON.stringify({ contextId: '00000000-0000-4000-8000-000000000000' }), signed), 'bad-signature'],
      ['stale', node.post(body, await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body }, Date.now() - 120_000)), 'stale'],
    ];
    for (const [name, pending, reason] of cases) {
      const reply = await pending;
      expect(reply.status, name).toBe(401);
      expect(reply.json.error, name).toMatchObject({ code: 'INTERNAL_AUTH_FAILED', reason });
    }
    expect(node.prewarmed).toEqual([]);
    // The valid one goes through once; the same bytes again are a replay.
    expect((await node.post(body, signed)).status).toBe(202);
    const replay = await node.post(body, signed);
    expect(replay.status).toBe(401);
    expect(replay.json.error?.reason).toBe('replayed');
    expect(node.prewarmed).toEqual([CONTEXT_ID]);
    // The node's log says why, never the signature.
    expect(node.warnings.map((w) => w?.reason).sort()).toEqual(['bad-signature', 'bad-signature', 'missing', 'replayed', 'stale']);
    expect(JSON.stringify(node.warnings)).not.toContain(signed[INTERNAL_SIGNATURE_HEADER]!.slice(3));
  });

  it('a signed body that is not { contextId: uuid } is 400 naming the field, after the signature check', async () => {
    const node = nodeApp();
    for (const bad of [JSON.stringify({ contextId: 'nope' }), JSON.stringify({ contextId: CONTEXT_ID, extra: 1 }), 'not json']) {
      const reply = await node.post(bad, await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body: bad }));
      expect(reply.status, bad).toBe(400);
    }
    const invalid = await node.post(JSON.stringify({ contextId: 'nope' }), await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body: JSON.stringify({ contextId: 'nope' }) }));
    expect(invalid.json).toMatchObject({ error: { code: 'VALIDATION_FAILED', issues: [{ path: 'contextId' }] } });
    expect(node.prewarmed).toEqual([]);
  });

  it('a body over 4 KB is refused with 413 before it is verified', async () => {
    const node = nodeApp();
    const huge = JSON.stringify({ contextId: CONTEXT_ID, pad: 'x'.repeat(5_000) });
    const reply = await node.post(huge, await signInternalRequest(SECRET, { method: 'POST', path: PREWARM_PATH, body: huge }));
    expect(reply.status).toBe(413);
    expect(node.prewarmed).toEqual([]);
  });
});
