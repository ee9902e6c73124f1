import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, normalisePublicBaseUrl, type AppDeps, type AppEnv, type AppStores } from '../../edge/app';
import { principalOf, projectOf } from '../../edge/auth';
import { MemoryCache } from '../../shared/cache/memory';
import { ConfigError } from '../../shared/contracts/errors';
import type { TurnMetrics } from '../../shared/contracts/observer';
import { cacheCheck, checkReadiness, databaseCheck, searchCheck } from '../../shared/health/readiness';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import { DatabaseUnavailableError, type SqlClient } from '../../shared/store/sql';
import { sqlBackends } from '../store/backends';

// The HTTP app through app.request(), on real stores over a fresh migrated database per backend.

const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
const SECRET_KEY = 'test-secret-key-0123456789abcdef';
const AUTH_TOKEN = 'twilio_auth_token_9f8e7d6c5b4a3f2e1d0c';
const DEEPGRAM_KEY = 'dg_live_3f9a8b7c6d5e4f3a2b1c0d9e';

const CONFIG = {
  name: 'Receptionist',
  prompt: 'You answer the phone for {{company}}.',
  greeting: 'Hello, {{company}} here.',
  stt: { provider: 'deepgram', model: 'nova-3' },
  llm: { provider: 'openai', model: 'gpt-4o-mini' },
  tts: { provider: 'cartesia', voice: 'v1' },
};

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field
  readonly json: any;
}

interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

describe('createApp configuration', () => {
  const stores = {} as AppStores; // not touched while building the app
  const readiness = () => checkReadiness({});

  it('refuses a public base URL that is not an http(s) origin, and drops a trailing slash', async () => {
    for (const bad of ['voice.example.com', 'ftp://voice.example.com', 'https://voice.example.com/?x=1', 'https://user:pw@voice.example.com']) {
      expect(() => createApp({ stores, readiness, publicBaseUrl: bad }), bad).toThrow(ConfigError);
    }
    expect(() => createApp({ stores, readiness, publicBaseUrl: 'http://127.0.0.1:9007/' })).not.toThrow();
    expect(normalisePublicBaseUrl('https://voice.example.com/')).toBe('https://voice.example.com');
    expect(normalisePublicBaseUrl('https://example.com/voice/')).toBe('https://example.com/voice');
  });
});

describe.each(sqlBackends())('HTTP app on $name', (backend) => {
  let db: SqlClient;
  let stores: AppStores;
  let app: Hono<AppEnv>;
  const logs: LogLine[] = [];
  let readinessCalls = 0;
  /** Tests swap what readiness answers. */
  let readiness: AppDeps['readiness'];

  // Two tenants, made through the API itself in beforeAll.
  let acme: { id: string; key: string };
  let globex: { id: string; key: string };

  async function send(method: string, path: string, options: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await app.request(path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  const expectError = (reply: Reply, status: number, code: string) => {
    expect(reply.status, reply.text).toBe(status);
    expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
    expect(reply.json).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
    expect(reply.json.error.message.length).toBeGreaterThan(10);
  };

  beforeAll(async () => {
    db = await backend.open();
    const projects = createProjectStore(db);
    await projects.ensureAdminKey(ADMIN_KEY);
    stores = {
      projects,
      assistants: createAssistantStore(db),
      conversations: createConversationStore(db),
      callContexts: createCallContextStore(db),
      credentials: createCredentialStore(db, await createSecretBox(SECRET_KEY)),
    };
    readiness = () => checkReadiness({ database: databaseCheck(db), cache: cacheCheck(new MemoryCache()), search: searchCheck() });

    // Host modules, as the lead's call and webhook routes will be mounted.
    const calls = new Hono<AppEnv>();
    calls.post('/', async (c) => c.json({ projectId: await projectOf(c, stores.projects), principal: principalOf(c).kind }, 201));
    calls.get('/boom', () => {
      throw new Error('wire protocol exploded at byte 7');
    });
    calls.get('/db-down', () => {
      throw new DatabaseUnavailableError('connection refused');
    });
    const talk = new Hono<AppEnv>();
    talk.post('/twilio/call/:assistantId', (c) => c.text(`<Response/> for ${c.req.param('assistantId')}`, 200, { 'content-type': 'text/xml' }));

    app = createApp(
      {
        stores,
        readiness: () => {
          readinessCalls++;
          return readiness();
        },
        publicBaseUrl: 'https://voice.example.com/',
        log: {
          info: (message, fields) => logs.push({ level: 'info', message, fields }),
          warn: (message, fields) => logs.push({ level: 'warn', message, fields }),
          error: (message, fields) => logs.push({ level: 'error', message, fields }),
        },
      },
      {
        extraRoutes: [
          { path: '/v1/calls', routes: calls },
          { path: '/v1/talk', routes: talk },
        ],
      },
    );

    const makeProject = async (name: string) => {
      const reply = await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name } });
      expect(reply.status, reply.text).toBe(201);
      return { id: reply.json.project.id as string, key: reply.json.apiKey.key as string };
    };
    acme = await makeProject('Acme');
    globex = await makeProject('Globex');
  });

  afterAll(async () => {
    await db?.close();
  });

  describe('probes', () => {
    it('GET /healthz/ and /healthz answer 200 {status:"ok"} without a key', async () => {
      for (const path of ['/healthz/', '/healthz']) {
        const reply = await send('GET', path);
        expect(reply.status).toBe(200);
        expect(reply.json).toEqual({ status: 'ok' });
        expect(reply.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      }
    });

    it('GET /readiness/ is 200 with the report while every dependency answers', async () => {
      const before = readinessCalls;
      for (const path of ['/readiness/', '/readiness']) {
        const reply = await send('GET', path);
        expect(reply.status, reply.text).toBe(200);
        expect(reply.json).toMatchObject({ ready: true, failing: [], checks: { database: { ok: true }, cache: { ok: true }, search: { ok: true } } });
      }
      expect(readinessCalls).toBe(before + 2);
    });

    it('GET /readiness/ is 503 naming the failing part (credentials in its error masked)', async () => {
      const saved = readiness;
      readiness = () =>
        checkReadiness({
          database: databaseCheck(db),
          cache: async () => {
            throw new Error('connect ECONNREFUSED redis://default:hunter2@10.0.0.9:6379');
          },
          search: searchCheck(),
        });
      try {
        const reply = await send('GET', '/readiness/');
        expect(reply.status).toBe(503);
        expect(reply.json).toMatchObject({ ready: false, failing: ['cache'], checks: { database: { ok: true }, cache: { ok: false } } });
        expect(reply.json.checks.cache.error).toContain('ECONNREFUSED');
        expect(reply.text).not.toContain('hunter2');
      } finally {
        readiness = saved;
      }
    });

    it('a readiness function that throws is 503 too, not 500', async () => {
      const saved = readiness;
      readiness = () => Promise.reject(new Error('probe wiring broken'));
      try {
        const reply = await send('GET', '/readiness/');
        expect(reply.status).toBe(503);
        expect(reply.json).toMatchObject({ ready: false, failing: ['readiness'] });
      } finally {
        readiness = saved;
      }
    });
  });

  describe('authentication', () => {
    it('401 UNAUTHENTICATED without a key, with a malformed header, an unknown key or a publishable key', async () => {
      const noKey = await send('GET', '/v1/assistants');
      expectError(noKey, 401, 'UNAUTHENTICATED');
      expect(noKey.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expectError(await send('GET', '/v1/assistants', { headers: { authorization: `Basic ${btoa('a:b')}` } }), 401, 'UNAUTHENTICATED');
      expectError(await send('GET', '/v1/assistants', { headers: { authorization: 'Bearer' } }), 401, 'UNAUTHENTICATED');
      expectError(await send('GET', '/v1/assistants', { key: 'vr_sk_notarealkeyatallnotarealkeyatallnotarealk' }), 401, 'UNAUTHENTICATED');
      expectError(await send('GET', '/v1/assistants', { key: `${acme.key}x` }), 401, 'UNAUTHENTICATED');

      const publishable = await send('POST', `/v1/projects/${acme.id}/publishable-keys`, { key: ADMIN_KEY, body: { allowedOrigins: ['https://app.acme.test'] } });
      expect(publishable.status, publishable.text).toBe(201);
      const asBearer = await send('GET', '/v1/assistants', { key: publishable.json.key });
      expectError(asBearer, 401, 'UNAUTHENTICATED');
      expect(asBearer.json.error.message).toMatch(/publishable/);
    });

    it('a revoked key stops working at once', async () => {
      const created = await send('POST', `/v1/projects/${acme.id}/keys`, { key: ADMIN_KEY, body: { name: 'short-lived' } });
      expect((await send('GET', '/v1/assistants', { key: created.json.key })).status).toBe(200);
      expect(await stores.projects.revokeApiKey(acme.id, created.json.id)).toBe(true);
      expectError(await send('GET', '/v1/assistants', { key: created.json.key }), 401, 'UNAUTHENTICATED');
    });

    it('unknown /v1 routes ask for a key first, then answer 404 in the error shape; other unknown paths are 404', async () => {
      expectError(await send('GET', '/v1/nothing-here'), 401, 'UNAUTHENTICATED');
      const unknown = await send('GET', '/v1/nothing-here', { key: acme.key });
      expectError(unknown, 404, 'NOT_FOUND');
      expect(unknown.json.error.message).toBe('no route for GET /v1/nothing-here');
      expectError(await send('GET', '/nope'), 404, 'NOT_FOUND');
      expectError(await send('PATCH', '/v1/assistants', { key: acme.key }), 404, 'NOT_FOUND');
    });

    it('extra route modules: /v1/calls needs a key like every /v1 route, /v1/talk/* carries none', async () => {
      expectError(await send('POST', '/v1/calls', { body: {} }), 401, 'UNAUTHENTICATED');
      const call = await send('POST', '/v1/calls', { key: acme.key, body: {} });
      expect(call.status).toBe(201);
      expect(call.json).toEqual({ projectId: acme.id, principal: 'project' });
      const webhook = await send('POST', '/v1/talk/twilio/call/a1', { raw: 'CallSid=CA1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(webhook.status).toBe(200);
      expect(webhook.text).toBe('<Response/> for a1');
    });
  });

  describe('projects (admin key only)', () => {
    it('POST /v1/projects returns the project and its first key, shown once; that key works and is stored only hashed', async () => {
      const reply = await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name: '  Initech  ' } });
      expect(reply.status).toBe(201);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      expect(reply.json.project).toEqual({ id: expect.any(String), name: 'Initech', createdAt: expect.any(String) });
      const key: string = reply.json.apiKey.key;
      expect(key).toMatch(/^vr_sk_[A-Za-z0-9_-]{43}$/);
      expect(reply.json.apiKey).toMatchObject({ projectId: reply.json.project.id, name: 'default', prefix: key.slice(0, 10) });

      expect((await send('GET', '/v1/assistants', { key })).json).toEqual({ data: [] });

      // Listings show the prefix, never the key or its hash.
      const listed = await send('GET', `/v1/projects/${reply.json.project.id}/keys`, { key: ADMIN_KEY });
      expect(listed.status).toBe(200);
      expect(listed.json.data).toHaveLength(1);
      expect(listed.json.data[0]).toMatchObject({ id: reply.json.apiKey.id, prefix: key.slice(0, 10), lastUsedAt: expect.any(String) });
      const [row] = await db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys WHERE id = $1::uuid', [reply.json.apiKey.id]);
      expect(row?.key_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(listed.text).not.toContain(key);
      expect(listed.text).not.toContain(row!.key_hash);
      expect(listed.text).not.toContain('hash');

      const all = await send('GET', '/v1/projects', { key: ADMIN_KEY });
      expect(all.json.data.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(['Acme', 'Globex', 'Initech']));
    });

    it('POST /v1/projects/:id/keys makes another working key; unknown projects are 404', async () => {
      const reply = await send('POST', `/v1/projects/${globex.id}/keys`, { key: ADMIN_KEY, body: { name: 'ci' } });
      expect(reply.status).toBe(201);
      expect(reply.json).toMatchObject({ projectId: globex.id, name: 'ci', key: expect.stringMatching(/^vr_sk_/) });
      expect((await send('GET', '/v1/credentials', { key: reply.json.key })).status).toBe(200);
      expectError(await send('POST', `/v1/projects/${crypto.randomUUID()}/keys`, { key: ADMIN_KEY, body: { name: 'x' } }), 404, 'PROJECT_NOT_FOUND');
      expectError(await send('POST', '/v1/projects/not-a-uuid/keys', { key: ADMIN_KEY, body: { name: 'x' } }), 404, 'PROJECT_NOT_FOUND');
      expectError(await send('POST', `/v1/projects/${globex.id}/keys`, { key: ADMIN_KEY, body: { name: '' } }), 400, 'VALIDATION_FAILED');
    });

    it('POST /v1/projects/:id/publishable-keys keeps normalised origins; a bad origin is the store\'s ConfigError, 400 with issues', async () => {
      const reply = await send('POST', `/v1/projects/${acme.id}/publishable-keys`, {
        key: ADMIN_KEY,
        body: { allowedOrigins: ['https://App.Acme.test/', 'https://*.acme.test'] },
      });
      expect(reply.status).toBe(201);
      expect(reply.json).toMatchObject({ projectId: acme.id, key: expect.stringMatching(/^vr_pk_/), allowedOrigins: ['https://app.acme.test', 'https://*.acme.test'] });

      const bad = await send('POST', `/v1/projects/${acme.id}/publishable-keys`, { key: ADMIN_KEY, body: { allowedOrigins: ['https://ok.test', 'ftp://files.test/x'] } });
      expectError(bad, 400, 'PUBLISHABLE_KEY_ORIGIN_INVALID');
      expect(bad.json.error.issues).toEqual([{ message: '"ftp://files.test/x" is not an origin' }]);
      expect(bad.json.error.message).not.toMatch(/^PUBLISHABLE_KEY_ORIGIN_INVALID/);

      const empty = await send('POST', `/v1/projects/${acme.id}/publishable-keys`, { key: ADMIN_KEY, body: { allowedOrigins: [] } });
      expectError(empty, 400, 'VALIDATION_FAILED');
      expect(empty.json.error.issues).toEqual([{ path: 'allowedOrigins', message: 'name at least one allowed origin' }]);
    });

    it('project keys are refused (403 FORBIDDEN) on every project-management route', async () => {
      expectError(await send('GET', '/v1/projects', { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('GET', '/v1/projects/', { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('POST', '/v1/projects', { key: acme.key, body: { name: 'Mine' } }), 403, 'FORBIDDEN');
      expectError(await send('POST', `/v1/projects/${acme.id}/keys`, { key: acme.key, body: { name: 'self-service' } }), 403, 'FORBIDDEN');
      expectError(await send('GET', `/v1/projects/${acme.id}/keys`, { key: acme.key }), 403, 'FORBIDDEN');
      expectError(
        await send('POST', `/v1/projects/${acme.id}/publishable-keys`, { key: acme.key, body: { allowedOrigins: ['*'] } }),
        403,
        'FORBIDDEN',
      );
      expect((await stores.projects.listProjects()).map((p) => p.name)).not.toContain('Mine');
    });

    it('the admin key acts inside a project only when X-Project-Id names one; a project key cannot name another', async () => {
      const asAdmin = await send('POST', '/v1/assistants', { key: ADMIN_KEY, body: CONFIG, headers: { 'x-project-id': globex.id } });
      expect(asAdmin.status, asAdmin.text).toBe(201);
      expect(asAdmin.json.projectId).toBe(globex.id);
      expect((await send('GET', `/v1/assistants/${asAdmin.json.id}`, { key: globex.key })).status).toBe(200);

      expectError(await send('GET', '/v1/assistants', { key: ADMIN_KEY }), 400, 'PROJECT_REQUIRED');
      expectError(await send('GET', '/v1/assistants', { key: ADMIN_KEY, headers: { 'x-project-id': crypto.randomUUID() } }), 404, 'PROJECT_NOT_FOUND');
      expectError(await send('GET', '/v1/assistants', { key: acme.key, headers: { 'x-project-id': globex.id } }), 403, 'FORBIDDEN');
      expect((await send('GET', '/v1/assistants', { key: acme.key, headers: { 'x-project-id': acme.id } })).status).toBe(200);
    });
  });

  describe('assistants', () => {
    it('create, list, read, update (new version), read a pinned version, conditional update (409), delete', async () => {
      const created = await send('POST', '/v1/assistants', { key: acme.key, body: CONFIG });
      expect(created.status, created.text).toBe(201);
      const id: string = created.json.id;
      expect(created.headers.get('location')).toBe(`https://voice.example.com/v1/assistants/${id}`);
      expect(created.json).toMatchObject({ projectId: acme.id, name: 'Receptionist', version: 1, latestVersion: 1 });
      // Defaults filled in by the schema.
      expect(created.json.config).toMatchObject({ prompt: CONFIG.prompt, stt: { provider: 'deepgram', language: 'en-US' }, turn: { silenceMs: 500 } });

      const listed = await send('GET', '/v1/assistants', { key: acme.key });
      expect(listed.json.data.map((a: { id: string }) => a.id)).toContain(id);
      expect((await send('GET', '/v1/assistants', { key: globex.key })).json.data.map((a: { id: string }) => a.id)).not.toContain(id);

      const updated = await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: { ...CONFIG, name: 'Front desk', prompt: 'Version two.' } });
      expect(updated.status, updated.text).toBe(200);
      expect(updated.json).toMatchObject({ id, name: 'Front desk', version: 2, latestVersion: 2, config: { prompt: 'Version two.' } });

      expect((await send('GET', `/v1/assistants/${id}`, { key: acme.key })).json).toMatchObject({ version: 2, config: { prompt: 'Version two.' } });
      const pinned = await send('GET', `/v1/assistants/${id}?version=1`, { key: acme.key });
      expect(pinned.json).toMatchObject({ version: 1, latestVersion: 2, config: { prompt: CONFIG.prompt } });
      expectError(await send('GET', `/v1/assistants/${id}?version=9`, { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
      const badVersion = await send('GET', `/v1/assistants/${id}?version=first`, { key: acme.key });
      expectError(badVersion, 400, 'VALIDATION_FAILED');
      expect(badVersion.json.error.issues[0].path).toBe('version');

      // expectedVersion: stale → 409 with the latest version; current → the next version.
      const stale = await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: { ...CONFIG, prompt: 'Lost update.', expectedVersion: 1 } });
      expectError(stale, 409, 'VERSION_CONFLICT');
      expect(stale.json.error.latestVersion).toBe(2);
      const current = await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: { ...CONFIG, prompt: 'Version three.', expectedVersion: 2 } });
      expect(current.status, current.text).toBe(200);
      expect(current.json).toMatchObject({ version: 3, config: { prompt: 'Version three.' } });
      expect(current.json.config).not.toHaveProperty('expectedVersion');
      expectError(await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: { ...CONFIG, expectedVersion: 'two' } }), 400, 'VALIDATION_FAILED');

      const versions = await send('GET', `/v1/assistants/${id}/versions`, { key: acme.key });
      expect(versions.json.data.map((v: { version: number }) => v.version)).toEqual([1, 2, 3]);

      expect((await send('DELETE', `/v1/assistants/${id}`, { key: acme.key })).status).toBe(204);
      expectError(await send('GET', `/v1/assistants/${id}`, { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
      expectError(await send('DELETE', `/v1/assistants/${id}`, { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
      expectError(await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: CONFIG }), 404, 'ASSISTANT_NOT_FOUND');
      // A running call may still use a pinned version of a deleted assistant.
      const afterDelete = await send('GET', `/v1/assistants/${id}?version=2`, { key: acme.key });
      expect(afterDelete.json).toMatchObject({ version: 2, deletedAt: expect.any(String) });
      expect((await send('GET', '/v1/assistants', { key: acme.key })).json.data.map((a: { id: string }) => a.id)).not.toContain(id);
      expectError(await send('GET', '/v1/assistants/not-a-uuid', { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
    });

    it('refuses secrets in provider options and lists every schema problem by path (400 VALIDATION_FAILED)', async () => {
      const before = await stores.assistants.list(acme.id);
      const reply = await send('POST', '/v1/assistants', {
        key: acme.key,
        body: { ...CONFIG, prompt: '', stt: { provider: 'deepgram', options: { apiKey: DEEPGRAM_KEY } }, tts: { provider: 'cartesia', options: { auth_token: 'x' } } },
      });
      expectError(reply, 400, 'VALIDATION_FAILED');
      const paths = reply.json.error.issues.map((i: { path: string }) => i.path);
      expect(paths).toEqual(expect.arrayContaining(['prompt', 'stt.options.apiKey', 'tts.options.auth_token']));
      expect(reply.json.error.issues.find((i: { path: string }) => i.path === 'stt.options.apiKey').message).toMatch(/looks like a secret.*credential/);
      expect(reply.text).not.toContain(DEEPGRAM_KEY);
      expect(await stores.assistants.list(acme.id)).toHaveLength(before.length);

      // The same on an update: nothing saved.
      const existing = await send('POST', '/v1/assistants', { key: acme.key, body: CONFIG });
      const put = await send('PUT', `/v1/assistants/${existing.json.id}`, { key: acme.key, body: { ...CONFIG, llm: { provider: 'openai', options: { api_key: 'sk-1' } } } });
      expectError(put, 400, 'VALIDATION_FAILED');
      expect(put.json.error.issues).toEqual([{ path: 'llm.options.api_key', message: expect.stringMatching(/looks like a secret/) }]);
      expect((await stores.assistants.get(existing.json.id))?.version).toBe(1);

      const notAnObject = await send('POST', '/v1/assistants', { key: acme.key, body: [CONFIG] });
      expectError(notAnObject, 400, 'VALIDATION_FAILED');
      expect(notAnObject.json.error.issues[0]).not.toHaveProperty('path');
    });

    it('another project\'s assistant is 403 for read, update and delete, and stays untouched', async () => {
      const theirs = await send('POST', '/v1/assistants', { key: globex.key, body: CONFIG });
      const id = theirs.json.id;
      expectError(await send('GET', `/v1/assistants/${id}`, { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('GET', `/v1/assistants/${id}?version=1`, { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('GET', `/v1/assistants/${id}/versions`, { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('PUT', `/v1/assistants/${id}`, { key: acme.key, body: { ...CONFIG, prompt: 'hijacked' } }), 403, 'FORBIDDEN');
      expectError(await send('DELETE', `/v1/assistants/${id}`, { key: acme.key }), 403, 'FORBIDDEN');
      const still = await stores.assistants.get(id);
      expect(still).toMatchObject({ version: 1, config: { prompt: CONFIG.prompt } });
      expect(still?.deletedAt).toBeUndefined();
    });
  });

  describe('credentials', () => {
    const secretTexts = [AUTH_TOKEN, DEEPGRAM_KEY];
    const expectNoSecret = (reply: Reply) => {
      for (const secret of secretTexts) expect(reply.text).not.toContain(secret);
      expect(reply.text).not.toMatch(/ciphertext|authToken|apiKey|"iv"/);
    };

    it('PUT stores the secret fields sealed, answers metadata only; GET never returns a secret; PUT again replaces the secret', async () => {
      const put = await send('PUT', '/v1/credentials/twilio-main', {
        key: acme.key,
        body: { provider: 'twilio', accountSid: 'AC0123', authToken: AUTH_TOKEN, apiBaseUrl: 'http://127.0.0.1:1' },
      });
      expect(put.status, put.text).toBe(201);
      expect(put.json).toEqual({
        id: expect.any(String),
        projectId: acme.id,
        name: 'twilio-main',
        provider: 'twilio',
        isDefault: true,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      expectNoSecret(put);
      // What a call will get: the secret fields as one JSON object.
      expect(JSON.parse((await stores.credentials.resolve(acme.id, 'twilio'))!)).toEqual({ accountSid: 'AC0123', authToken: AUTH_TOKEN, apiBaseUrl: 'http://127.0.0.1:1' });
      const [row] = await db.query<{ text: string }>('SELECT row_to_json(c)::text AS text FROM credentials c WHERE id = $1::uuid', [put.json.id]);
      expect(row?.text).not.toContain(AUTH_TOKEN);

      const dg = await send('PUT', '/v1/credentials/dg', { key: acme.key, body: { provider: 'deepgram', apiKey: DEEPGRAM_KEY } });
      expect(dg.status).toBe(201);
      expectNoSecret(dg);

      const list = await send('GET', '/v1/credentials', { key: acme.key });
      expect(list.json.data.map((c: { name: string; provider: string }) => `${c.provider}/${c.name}`)).toEqual(['deepgram/dg', 'twilio/twilio-main']);
      expectNoSecret(list);
      const one = await send('GET', '/v1/credentials/dg', { key: acme.key });
      expect(one.json).toMatchObject({ name: 'dg', provider: 'deepgram', isDefault: true });
      expectNoSecret(one);

      const rotated = await send('PUT', '/v1/credentials/dg', { key: acme.key, body: { provider: 'deepgram', apiKey: 'dg_rotated_value_000000' } });
      expect(rotated.status).toBe(200);
      expect(rotated.json.id).toBe(dg.json.id);
      expect(rotated.text).not.toContain('dg_rotated_value_000000');
      expect(JSON.parse((await stores.credentials.resolve(acme.id, 'deepgram', 'dg'))!)).toEqual({ apiKey: 'dg_rotated_value_000000' });

      // Nothing secret reached the log either.
      const logged = JSON.stringify(logs);
      for (const secret of [...secretTexts, 'dg_rotated_value_000000']) expect(logged).not.toContain(secret);
    });

    it('defaults: a second credential of a provider takes the default only when asked; the default cannot be unset directly', async () => {
      await send('PUT', '/v1/credentials/dg-a', { key: globex.key, body: { provider: 'deepgram', apiKey: 'a-0000000000' } });
      const b = await send('PUT', '/v1/credentials/dg-b', { key: globex.key, body: { provider: 'deepgram', apiKey: 'b-0000000000' } });
      expect(b.json.isDefault).toBe(false);
      const promoted = await send('PUT', '/v1/credentials/dg-b', { key: globex.key, body: { provider: 'deepgram', apiKey: 'b-1111111111', isDefault: true } });
      expect(promoted.json.isDefault).toBe(true);
      expect(JSON.parse((await stores.credentials.resolve(globex.id, 'deepgram'))!)).toEqual({ apiKey: 'b-1111111111' });
      expect((await send('GET', '/v1/credentials/dg-a', { key: globex.key })).json.isDefault).toBe(false);
      expectError(await send('PUT', '/v1/credentials/dg-b', { key: globex.key, body: { provider: 'deepgram', apiKey: 'c', isDefault: false } }), 409, 'CREDENTIAL_IS_DEFAULT');
      expectError(await send('PUT', '/v1/credentials/dg-b', { key: globex.key, body: { provider: 'elevenlabs', apiKey: 'c' } }), 409, 'CREDENTIAL_PROVIDER_MISMATCH');
      expect(JSON.parse((await stores.credentials.resolve(globex.id, 'deepgram'))!)).toEqual({ apiKey: 'b-1111111111' });
    });

    it('refuses bodies without provider or secret fields, bad names and empty values, naming fields and never values', async () => {
      const noProvider = await send('PUT', '/v1/credentials/x', { key: acme.key, body: { apiKey: DEEPGRAM_KEY } });
      expectError(noProvider, 400, 'VALIDATION_FAILED');
      expect(noProvider.json.error.issues).toEqual([{ path: 'provider', message: expect.any(String) }]);
      expectNoSecret(noProvider);
      const noSecret = await send('PUT', '/v1/credentials/x', { key: acme.key, body: { provider: 'deepgram' } });
      expectError(noSecret, 400, 'VALIDATION_FAILED');
      expect(noSecret.json.error.issues[0].message).toMatch(/no secret fields/);
      const empty = await send('PUT', '/v1/credentials/x', { key: acme.key, body: { provider: 'deepgram', token: '' } });
      expect(empty.json.error.issues).toEqual([{ path: 'token', message: 'a secret field needs a value' }]);
      const badName = await send('PUT', `/v1/credentials/${encodeURIComponent('../etc')}`, { key: acme.key, body: { provider: 'deepgram', apiKey: 'k' } });
      expectError(badName, 400, 'VALIDATION_FAILED');
      expect(badName.json.error.issues[0].path).toBe('name');
      // Bad JSON around a secret: the parser's excerpt of the body is not echoed.
      const broken = await send('PUT', '/v1/credentials/x', { key: acme.key, raw: `{"provider":"deepgram","apiKey":"${DEEPGRAM_KEY}",}`, headers: { 'content-type': 'application/json' } });
      expectError(broken, 400, 'BAD_JSON');
      expectNoSecret(broken);
      expect(await stores.credentials.get(acme.id, 'x')).toBeUndefined();
    });

    it('DELETE removes a credential of the project; names are per project (another project\'s name is just not found)', async () => {
      await send('PUT', '/v1/credentials/temp', { key: acme.key, body: { provider: 'cartesia', apiKey: 'k-123456' } });
      expectError(await send('DELETE', '/v1/credentials/temp', { key: globex.key }), 404, 'CREDENTIAL_NOT_FOUND');
      expectError(await send('GET', '/v1/credentials/temp', { key: globex.key }), 404, 'CREDENTIAL_NOT_FOUND');
      expect((await send('DELETE', '/v1/credentials/temp', { key: acme.key })).status).toBe(204);
      expectError(await send('DELETE', '/v1/credentials/temp', { key: acme.key }), 404, 'CREDENTIAL_NOT_FOUND');
      expect(await stores.credentials.get(acme.id, 'temp')).toBeUndefined();
    });
  });

  describe('conversations', () => {
    const turn = (turnId: number, extra: Partial<TurnMetrics> = {}): TurnMetrics => ({
      callId: 'ignored',
      turnId,
      kind: turnId === 0 ? 'greeting' : 'reply',
      ...(turnId === 0 ? {} : { userSpeechEnd: 1000 }),
      llmRequest: 1010,
      llmFirstToken: 1200,
      ttsRequest: 1201,
      ttsFirstAudio: 1350,
      firstAudioOut: 1352,
      ...(turnId === 0 ? {} : { voiceToVoiceMs: 352 }),
      interrupted: false,
      inputTokens: 50,
      outputTokens: 12,
      providers: { stt: 'deepgram', llm: 'openai', tts: 'cartesia' },
      ...extra,
    });

    async function seedConversation(projectId: string, assistantId: string) {
      const conversation = await stores.conversations.create({ projectId, assistantId, assistantVersion: 1, channel: 'twilio', direction: 'inbound', variables: { company: 'Acme' } });
      await stores.conversations.updateStatus(conversation.id, { status: 'in-progress' });
      await stores.conversations.appendMessages(conversation.id, [
        { seq: 0, turnId: 0, role: 'assistant', text: 'Hello, Acme here.', heardText: 'Hello, Acme here.' },
        { seq: 1, turnId: 1, role: 'user', text: 'When are you open?' },
        { seq: 2, turnId: 1, role: 'assistant', text: 'We are open from nine to five, every day.', heardText: 'We are open from nine', interrupted: true },
      ]);
      await stores.conversations.recordTurnMetrics(conversation.id, [turn(0), turn(1, { interrupted: true })]);
      await stores.conversations.recordCallEvent({ provider: 'twilio', providerEventId: `CA-${conversation.id}-completed`, status: 'completed', raw: { CallStatus: 'completed' }, conversationId: conversation.id });
      await stores.conversations.end(conversation.id, { status: 'completed', disconnectReason: 'caller-hangup' });
      return conversation;
    }

    it('GET /v1/conversations/:id returns the conversation, its messages (heard text, interruptions), turn metrics and call events', async () => {
      const assistant = await stores.assistants.create({ projectId: acme.id, config: CONFIG });
      const conversation = await seedConversation(acme.id, assistant.id);
      const reply = await send('GET', `/v1/conversations/${conversation.id}`, { key: acme.key });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.json.conversation).toMatchObject({
        id: conversation.id,
        projectId: acme.id,
        assistantId: assistant.id,
        status: 'completed',
        disconnectReason: 'caller-hangup',
        variables: { company: 'Acme' },
        startedAt: expect.any(String),
        endedAt: expect.any(String),
      });
      expect(reply.json.messages).toEqual([
        expect.objectContaining({ seq: 0, role: 'assistant', text: 'Hello, Acme here.', heardText: 'Hello, Acme here.', interrupted: false }),
        expect.objectContaining({ seq: 1, role: 'user', text: 'When are you open?', interrupted: false }),
        expect.objectContaining({ seq: 2, role: 'assistant', text: 'We are open from nine to five, every day.', heardText: 'We are open from nine', interrupted: true }),
      ]);
      expect(reply.json.messages[1]).not.toHaveProperty('heardText');
      expect(reply.json.turnMetrics).toEqual([
        expect.objectContaining({ turnId: 0, kind: 'greeting', firstAudioOut: 1352, interrupted: false, providers: { stt: 'deepgram', llm: 'openai', tts: 'cartesia' } }),
        expect.objectContaining({ turnId: 1, kind: 'reply', userSpeechEnd: 1000, voiceToVoiceMs: 352, interrupted: true, inputTokens: 50, outputTokens: 12 }),
      ]);
      expect(reply.json.turnMetrics[0]).not.toHaveProperty('userSpeechEnd');
      expect(reply.json.events).toEqual([expect.objectContaining({ provider: 'twilio', status: 'completed' })]);

      expectError(await send('GET', `/v1/conversations/${crypto.randomUUID()}`, { key: acme.key }), 404, 'CONVERSATION_NOT_FOUND');
    });

    it('another project\'s conversation, or its assistant as a filter, is 403', async () => {
      const theirs = await stores.assistants.create({ projectId: globex.id, config: CONFIG });
      const conversation = await seedConversation(globex.id, theirs.id);
      expectError(await send('GET', `/v1/conversations/${conversation.id}`, { key: acme.key }), 403, 'FORBIDDEN');
      expectError(await send('GET', `/v1/conversations?assistantId=${theirs.id}`, { key: acme.key }), 403, 'FORBIDDEN');
      const paged = await send('GET', `/v1/conversations?before=${conversation.id}`, { key: acme.key });
      expectError(paged, 400, 'VALIDATION_FAILED');
      expect(paged.json.error.issues[0].path).toBe('before');
      expect((await send('GET', `/v1/conversations/${conversation.id}`, { key: globex.key })).status).toBe(200);
    });

    it('GET /v1/conversations lists newest first, filters by assistant and pages with before/nextBefore', async () => {
      const project = await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name: 'Paging' } });
      const key: string = project.json.apiKey.key;
      const projectId: string = project.json.project.id;
      const first = await stores.assistants.create({ projectId, config: CONFIG });
      const second = await stores.assistants.create({ projectId, config: { ...CONFIG, name: 'Second' } });
      const made = [];
      for (const assistant of [first, second, first, second, first]) {
        made.push(await stores.conversations.create({ projectId, assistantId: assistant.id, assistantVersion: 1, channel: 'web', direction: 'inbound' }));
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      const newestFirst = made.map((c) => c.id).reverse();

      const all = await send('GET', '/v1/conversations', { key });
      expect(all.json.data.map((c: { id: string }) => c.id)).toEqual(newestFirst);
      expect(all.json.nextBefore).toBeNull();

      const page1 = await send('GET', '/v1/conversations?limit=2', { key });
      expect(page1.json.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(0, 2));
      expect(page1.json.nextBefore).toBe(newestFirst[1]);
      const page2 = await send('GET', `/v1/conversations?limit=2&before=${page1.json.nextBefore}`, { key });
      expect(page2.json.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(2, 4));
      const page3 = await send('GET', `/v1/conversations?limit=2&before=${page2.json.nextBefore}`, { key });
      expect(page3.json.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(4));
      expect(page3.json.nextBefore).toBeNull();

      const filtered = await send('GET', `/v1/conversations?assistantId=${second.id}`, { key });
      expect(filtered.json.data.map((c: { id: string }) => c.id)).toEqual([made[3]!.id, made[1]!.id]);
      // A deleted assistant's conversations stay listable.
      await stores.assistants.delete(second.id);
      expect((await send('GET', `/v1/conversations?assistantId=${second.id}`, { key })).json.data).toHaveLength(2);
      expectError(await send('GET', `/v1/conversations?assistantId=${crypto.randomUUID()}`, { key }), 404, 'ASSISTANT_NOT_FOUND');

      for (const query of ['limit=0', 'limit=201', 'limit=ten', 'assistantId=nope', 'before=nope']) {
        const bad = await send('GET', `/v1/conversations?${query}`, { key });
        expectError(bad, 400, 'VALIDATION_FAILED');
        expect(bad.json.error.issues[0].path).toBe(query.split('=')[0]);
      }
    });
  });

  describe('error shapes', () => {
    it('malformed JSON is 400 BAD_JSON; an empty body too; a non-JSON content type is 415', async () => {
      const broken = await send('POST', '/v1/assistants', { key: acme.key, raw: '{"prompt": "hi",', headers: { 'content-type': 'application/json' } });
      expectError(broken, 400, 'BAD_JSON');
      expect(broken.json.error).toEqual({ code: 'BAD_JSON', message: expect.stringMatching(/^the request body is not valid JSON/) });
      expectError(await send('POST', '/v1/projects', { key: ADMIN_KEY, raw: '', headers: { 'content-type': 'application/json' } }), 400, 'BAD_JSON');
      expectError(await send('POST', '/v1/projects', { key: ADMIN_KEY, raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      // fetch() labels a string body text/plain unless told otherwise: refused with what to send.
      const plain = await send('POST', '/v1/projects', { key: ADMIN_KEY, raw: '{"name":"Plain"}' });
      expectError(plain, 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(plain.json.error.message).toMatch(/Content-Type: application\/json/);
      // No content type at all is read as JSON.
      const bytes = new TextEncoder().encode('{"name":"No header"}');
      const unlabelled = await app.request('/v1/projects', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: bytes });
      expect(unlabelled.status).toBe(201);
      expect((await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name: 'Charset' }, headers: { 'content-type': 'application/json; charset=utf-8' } })).status).toBe(201);
    });

    it('bodies over the limit are 413 BODY_TOO_LARGE, whether declared by Content-Length or streamed', async () => {
      const huge = JSON.stringify({ name: 'x'.repeat(70 * 1024) });
      expectError(await send('POST', '/v1/projects', { key: ADMIN_KEY, raw: huge, headers: { 'content-type': 'application/json' } }), 413, 'BODY_TOO_LARGE');
      expectError(
        await send('POST', '/v1/projects', { key: ADMIN_KEY, raw: huge, headers: { 'content-type': 'application/json', 'content-length': String(huge.length) } }),
        413,
        'BODY_TOO_LARGE',
      );
      // Assistant configurations may be larger (long prompts) up to 1 MiB.
      const longPrompt = await send('POST', '/v1/assistants', { key: acme.key, body: { ...CONFIG, prompt: 'p'.repeat(200 * 1024) } });
      expect(longPrompt.status).toBe(201);
      expectError(await send('POST', '/v1/assistants', { key: acme.key, body: { ...CONFIG, prompt: 'p'.repeat(1100 * 1024) } }), 413, 'BODY_TOO_LARGE');
    });

    it('an unexpected error is 500 INTERNAL with a request id, logged with its cause; the database being away is 503', async () => {
      const reply = await send('GET', '/v1/calls/boom', { key: acme.key });
      expectError(reply, 500, 'INTERNAL');
      expect(reply.text).not.toContain('wire protocol');
      const requestId = reply.headers.get('x-request-id');
      expect(reply.json.error.requestId).toBe(requestId);
      expect(logs).toContainEqual({ level: 'error', message: 'unhandled error', fields: expect.objectContaining({ requestId, error: 'Error: wire protocol exploded at byte 7' }) });

      const down = await send('GET', '/v1/calls/db-down', { key: acme.key });
      expectError(down, 503, 'DATABASE_UNAVAILABLE');
      expect(down.headers.get('retry-after')).toBe('5');
    });

    it('requests are logged by method, path and status, never with their query string or body', async () => {
      await send('GET', `/v1/conversations?limit=1&assistantId=${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`, { key: acme.key });
      const line = logs.filter((l) => l.message === 'request').at(-1);
      expect(line?.fields).toMatchObject({ method: 'GET', path: '/v1/conversations', status: 404, durationMs: expect.any(Number) });
      expect(JSON.stringify(logs)).not.toContain(acme.key);
      expect(JSON.stringify(logs)).not.toContain(ADMIN_KEY);
    });
  });
});
