import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/contracts/errors';
import { StoreError } from '../../shared/store/errors';
import { createProjectStore, normaliseOriginPattern, originAllowed, type ProjectStore } from '../../shared/store/projects';
import type { SqlClient } from '../../shared/store/sql';
import { sha256Hex } from '../../shared/store/tokens';
import { sqlBackends } from './backends';
import { sleep } from './fixtures';

describe.each(sqlBackends())('projects and keys on $name', (backend) => {
  let db: SqlClient;
  let store: ProjectStore;

  beforeAll(async () => {
    db = await backend.open();
    store = createProjectStore(db, { lastUsedResolutionMs: 0 });
  });
  afterAll(async () => {
    await db?.close();
  });

  /** Every api_keys column as text, to prove a plain key is stored nowhere. */
  const apiKeyRowsText = async () => JSON.stringify(await db.query('SELECT * FROM api_keys'));

  it('creates, gets and lists projects', async () => {
    const p = await store.createProject('Acme');
    expect(p.name).toBe('Acme');
    expect(await store.getProject(p.id)).toEqual(p);
    expect((await store.listProjects()).map((x) => x.id)).toContain(p.id);
    expect(await store.getProject('nope')).toBeUndefined();
  });

  it('an API key is shown once, stored only as its SHA-256, and authenticates its project', async () => {
    const p = await store.createProject('Acme');
    const { key, info } = await store.createApiKey(p.id, 'server');
    expect(key).toMatch(/^vr_sk_[A-Za-z0-9_-]{43}$/);
    expect(info).toMatchObject({ kind: 'project', projectId: p.id, name: 'server', prefix: key.slice(0, 10) });
    expect(info.lastUsedAt).toBeUndefined();

    const [row] = await db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys WHERE id = $1::uuid', [info.id]);
    expect(row?.key_hash).toBe(await sha256Hex(key));
    expect(await apiKeyRowsText()).not.toContain(key);
    expect(await apiKeyRowsText()).not.toContain(key.slice(10));
    expect(JSON.stringify(await store.listApiKeys(p.id))).not.toContain(row!.key_hash);

    expect(await store.authenticate(key)).toEqual({ kind: 'project', projectId: p.id, keyId: info.id });
    const [listed] = await store.listApiKeys(p.id);
    expect(listed?.lastUsedAt).toBeInstanceOf(Date);
  });

  it('unknown, altered, empty and revoked keys are refused', async () => {
    const p = await store.createProject('Acme');
    const { key, info } = await store.createApiKey(p.id, 'ci');
    expect(await store.authenticate(`${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();
    expect(await store.authenticate('')).toBeUndefined();
    expect(await store.authenticate('x'.repeat(10_000))).toBeUndefined();
    const other = await store.createProject('Other');
    expect(await store.revokeApiKey(other.id, info.id)).toBe(false); // not that project's key
    expect(await store.authenticate(key)).toBeDefined();
    expect(await store.revokeApiKey(p.id, info.id)).toBe(true);
    expect(await store.revokeApiKey(p.id, info.id)).toBe(false);
    expect(await store.authenticate(key)).toBeUndefined();
    expect((await store.listApiKeys(p.id))[0]?.revokedAt).toBeInstanceOf(Date);
  });

  it('last_used_at is written at most once per resolution period', async () => {
    const coarse = createProjectStore(db, { lastUsedResolutionMs: 60_000 });
    const p = await coarse.createProject('Acme');
    const { key } = await coarse.createApiKey(p.id, 'k');
    await coarse.authenticate(key);
    const first = (await coarse.listApiKeys(p.id))[0]?.lastUsedAt;
    await sleep(20);
    await coarse.authenticate(key);
    expect((await coarse.listApiKeys(p.id))[0]?.lastUsedAt).toEqual(first);
  });

  it('a key for an unknown project is refused with PROJECT_UNKNOWN', async () => {
    const error = await store.createApiKey(crypto.randomUUID(), 'k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('PROJECT_UNKNOWN');
  });

  it('publishable keys start sessions only from their allowed origins', async () => {
    const p = await store.createProject('Acme');
    const pk = await store.createPublishableKey(p.id, ['https://App.Example.com/', 'https://*.acme.test', 'http://localhost:5173']);
    expect(pk.key).toMatch(/^vr_pk_[A-Za-z0-9_-]{43}$/);
    expect(pk.allowedOrigins).toEqual(['https://app.example.com', 'https://*.acme.test', 'http://localhost:5173']);
    const ok = { ok: true, projectId: p.id, keyId: pk.id };
    expect(await store.checkOrigin(pk.key, 'https://app.example.com')).toEqual(ok);
    expect(await store.checkOrigin(pk.key, 'https://widget.eu.acme.test')).toEqual(ok);
    expect(await store.checkOrigin(pk.key, 'http://localhost:5173')).toEqual(ok);
    for (const origin of ['https://acme.test', 'http://app.example.com', 'https://app.example.com.evil.test', 'https://evilacme.test', 'http://localhost:3000', 'null', '', undefined, null]) {
      expect(await store.checkOrigin(pk.key, origin), String(origin)).toEqual({ ok: false, reason: 'origin-not-allowed' });
    }
    expect(await store.checkOrigin('vr_pk_unknown', 'https://app.example.com')).toEqual({ ok: false, reason: 'unknown-key' });

    const updated = await store.setAllowedOrigins(p.id, pk.id, ['*']);
    expect(updated?.allowedOrigins).toEqual(['*']);
    expect((await store.checkOrigin(pk.key, 'https://anything.example.org')).ok).toBe(true);
    expect((await store.checkOrigin(pk.key, 'null')).ok).toBe(false);

    expect(await store.revokePublishableKey(p.id, pk.id)).toBe(true);
    expect(await store.checkOrigin(pk.key, 'https://anything.example.org')).toEqual({ ok: false, reason: 'revoked' });
    expect((await store.listPublishableKeys(p.id)).map((k) => k.id)).toEqual([pk.id]);
  });

  it('invalid allowed origins are a ConfigError naming each', async () => {
    const p = await store.createProject('Acme');
    const error = await store.createPublishableKey(p.id, ['https://ok.example.com', 'https://example.com/path', 'ftp://x.test', 'example.com']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('PUBLISHABLE_KEY_ORIGIN_INVALID');
    expect((error as ConfigError).issues).toEqual(['"https://example.com/path" is not an origin', '"ftp://x.test" is not an origin', '"example.com" is not an origin']);
    expect(await store.listPublishableKeys(p.id)).toEqual([]);
  });

  it('origin patterns and matching (pure)', () => {
    expect(normaliseOriginPattern('https://*.Example.com:8443')).toBe('https://*.example.com:8443');
    expect(normaliseOriginPattern('https://user:pw@example.com')).toBeUndefined();
    expect(originAllowed(['https://*.example.com:8443'], 'https://a.example.com:8443')).toBe(true);
    expect(originAllowed(['https://*.example.com:8443'], 'https://a.example.com')).toBe(false);
  });

  describe('the admin key', () => {
    let fresh: SqlClient;
    let admin: ProjectStore;
    beforeAll(async () => {
      fresh = await backend.open();
      admin = createProjectStore(fresh);
    });
    afterAll(async () => {
      await fresh?.close();
    });

    it('is generated once at first start (even by several nodes at once), stored hashed, then rotated by ADMIN_API_KEY', async () => {
      const results = await Promise.all(Array.from({ length: 5 }, () => admin.ensureAdminKey()));
      const generated = results.filter((r) => r.source === 'generated');
      expect(generated).toHaveLength(1);
      expect(results.filter((r) => r.source === 'existing')).toHaveLength(4);
      const key = generated[0]?.source === 'generated' ? generated[0].key : '';
      expect(key).toMatch(/^vr_ak_[A-Za-z0-9_-]{43}$/);
      expect(await admin.ensureAdminKey()).toEqual({ source: 'existing' });
      expect(await admin.authenticate(key)).toMatchObject({ kind: 'admin' });
      const rows = JSON.stringify(await fresh.query('SELECT * FROM api_keys'));
      expect(rows).not.toContain(key);
      expect(rows).toContain(await sha256Hex(key));

      // ADMIN_API_KEY configured: it becomes the admin key and the generated one stops working.
      const configured = 'operator-chosen-admin-secret-1';
      expect(await admin.ensureAdminKey(configured)).toEqual({ source: 'configured' });
      expect(await admin.ensureAdminKey(configured)).toEqual({ source: 'configured' });
      expect(await admin.authenticate(configured)).toMatchObject({ kind: 'admin' });
      expect(await admin.authenticate(key)).toBeUndefined();
      const stored = JSON.stringify(await fresh.query('SELECT * FROM api_keys'));
      expect(stored).not.toContain('operator-chosen');

      // Rotating the variable retires the previous value; switching back re-activates it.
      expect(await admin.ensureAdminKey('operator-chosen-admin-secret-2')).toEqual({ source: 'configured' });
      expect(await admin.authenticate(configured)).toBeUndefined();
      expect(await admin.authenticate('operator-chosen-admin-secret-2')).toMatchObject({ kind: 'admin' });
      await admin.ensureAdminKey(configured);
      expect(await admin.authenticate(configured)).toMatchObject({ kind: 'admin' });
      expect(await admin.authenticate('operator-chosen-admin-secret-2')).toBeUndefined();
      const [active] = await fresh.query<{ n: unknown }>(`SELECT count(*) AS n FROM api_keys WHERE kind = 'admin' AND revoked_at IS NULL`);
      expect(Number(active?.n)).toBe(1);
      // With a configured key active, no key is generated when the variable is removed.
      expect(await admin.ensureAdminKey()).toEqual({ source: 'existing' });
    });

    it('refuses a too short ADMIN_API_KEY', async () => {
      await expect(admin.ensureAdminKey('short')).rejects.toThrow(/ADMIN_API_KEY_INVALID/);
      // An empty variable is "not configured": the active key stays.
      expect(await admin.ensureAdminKey('  ')).toEqual({ source: 'existing' });
    });
  });
});
