import type { Hono } from 'hono';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type AppEnv, type AppStores } from '../../edge/app';
import { DEFAULT_WEB_SESSION_TTL_MS, webSessionRoutes } from '../../edge/routes/web-session';
import { checkReadiness } from '../../shared/health/readiness';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from '../store/backends';

// POST /v1/talk/web/session through the whole app (createApp + extraRoutes), on real stores per SQL backend.

const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
const SECRET_KEY = 'test-secret-key-0123456789abcdef';
const ACME_ORIGIN = 'https://app.acme.test';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const CONFIG = {
  name: 'Widget helper',
  prompt: 'You help visitors of {{company}}.',
  greeting: 'Hi {{name}}!',
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

describe.each(sqlBackends())('POST /v1/talk/web/session on $name', (backend) => {
  let db: SqlClient;
  let stores: AppStores;
  let app: Hono<AppEnv>;
  let acme: { id: string; key: string; publishable: string; assistantId: string };
  let globex: { id: string; key: string; publishable: string; assistantId: string };
  let revokedPublishable: string;
  /** What the host hooks answer; each test starts from "callable, admitted". */
  let notCallableReason: string | undefined;
  let admit: boolean;
  const admitted: string[] = [];

  async function send(method: string, options: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined = options.raw;
    if (body === undefined && options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await app.request('/v1/talk/web/session', { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  const fromAcmePage = (body: unknown, extra: Record<string, string> = {}) => send('POST', { key: acme.publishable, body, headers: { origin: ACME_ORIGIN, ...extra } });

  const expectError = (reply: Reply, status: number, code: string) => {
    expect(reply.status, reply.text).toBe(status);
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
    async function tenant(name: string, origins: string[]) {
      const project = await projects.createProject(name);
      const { key } = await projects.createApiKey(project.id, 'server');
      const publishable = await projects.createPublishableKey(project.id, origins);
      const assistant = await stores.assistants.create({ projectId: project.id, config: CONFIG });
      return { id: project.id, key, publishable: publishable.key, assistantId: assistant.id };
    }
    acme = await tenant('Acme', [ACME_ORIGIN, 'https://*.acme-preview.test']);
    globex = await tenant('Globex', ['https://globex.test']);
    const revoked = await projects.createPublishableKey(acme.id, [ACME_ORIGIN]);
    await projects.revokePublishableKey(acme.id, revoked.id);
    revokedPublishable = revoked.key;

    app = createApp(
      { stores, readiness: () => checkReadiness({}), publicBaseUrl: 'https://voice.example.com' },
      {
        extraRoutes: [
          {
            path: '/v1/talk/web',
            routes: webSessionRoutes({
              stores,
              webSocketBaseUrl: () => 'wss://voice.example.com/',
              checkCallable: async () => notCallableReason,
              admitCall: async (projectId) => {
                admitted.push(projectId);
                return admit;
              },
            }),
          },
        ],
      },
    );
  });

  afterAll(async () => {
    await db?.close();
  });

  beforeEach(() => {
    notCallableReason = undefined;
    admit = true;
    admitted.length = 0;
  });

  it('starts a session with a secret project key: 201 with the context, its wss URL and expiry; no CORS grant', async () => {
    const before = Date.now();
    const reply = await send('POST', { key: acme.key, body: { assistantId: acme.assistantId }, headers: { origin: ACME_ORIGIN } });
    expect(reply.status, reply.text).toBe(201);
    expect(Object.keys(reply.json).sort()).toEqual(['contextId', 'conversationId', 'expiresAt', 'url']);
    expect(reply.json.contextId).toMatch(UUID);
    expect(reply.json.conversationId).toMatch(UUID);
    expect(reply.json.url).toBe(`wss://voice.example.com/v1/talk/web/ctx/${reply.json.contextId}`);
    const expiresInMs = Date.parse(reply.json.expiresAt) - before;
    expect(expiresInMs).toBeGreaterThan(DEFAULT_WEB_SESSION_TTL_MS - 5_000);
    expect(expiresInMs).toBeLessThan(DEFAULT_WEB_SESSION_TTL_MS + 5_000);
    expect(new Date(reply.json.expiresAt).toISOString()).toBe(reply.json.expiresAt);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    expect(reply.headers.get('vary')).toMatch(/Origin/);
    expect(reply.headers.get('access-control-allow-origin')).toBeNull(); // secret keys belong on servers
    expect(admitted).toEqual([acme.id]);
  });

  it('accepts the admin key acting in a project named by X-Project-Id, and asks for the project without it', async () => {
    const ok = await send('POST', { key: ADMIN_KEY, body: { assistantId: acme.assistantId }, headers: { 'x-project-id': acme.id } });
    expect(ok.status, ok.text).toBe(201);
    expectError(await send('POST', { key: ADMIN_KEY, body: { assistantId: acme.assistantId } }), 400, 'PROJECT_REQUIRED');
    // A secret key of another project is treated like any caller without the assistant.
    expectError(await send('POST', { key: globex.key, body: { assistantId: acme.assistantId } }), 404, 'ASSISTANT_NOT_FOUND');
  });

  it('starts a session with a publishable key from an allowed origin and grants that origin (exact and wildcard)', async () => {
    const reply = await fromAcmePage({ assistantId: acme.assistantId });
    expect(reply.status, reply.text).toBe(201);
    expect(reply.headers.get('access-control-allow-origin')).toBe(ACME_ORIGIN);
    expect(reply.headers.get('vary')).toMatch(/Origin/);
    expect(reply.json.url).toBe(`wss://voice.example.com/v1/talk/web/ctx/${reply.json.contextId}`);

    const preview = 'https://pr-17.acme-preview.test';
    const fromPreview = await send('POST', { key: acme.publishable, body: { assistantId: acme.assistantId }, headers: { origin: preview } });
    expect(fromPreview.status, fromPreview.text).toBe(201);
    expect(fromPreview.headers.get('access-control-allow-origin')).toBe(preview);
  });

  it('refuses a publishable key from another origin or without an Origin (403 ORIGIN_NOT_ALLOWED, no CORS grant)', async () => {
    const elsewhere = await fromAcmePage({ assistantId: acme.assistantId }, { origin: 'https://evil.test' });
    expectError(elsewhere, 403, 'ORIGIN_NOT_ALLOWED');
    expect(elsewhere.json.error.message).toContain('https://evil.test');
    expect(elsewhere.headers.get('access-control-allow-origin')).toBeNull();
    expect(elsewhere.headers.get('vary')).toMatch(/Origin/);

    const noOrigin = await send('POST', { key: acme.publishable, body: { assistantId: acme.assistantId } });
    expectError(noOrigin, 403, 'ORIGIN_NOT_ALLOWED');
    expect(noOrigin.json.error.message).toMatch(/no http\(s\) Origin/);
    expect(noOrigin.headers.get('access-control-allow-origin')).toBeNull();

    // The wildcard covers subdomains only, and the scheme must match.
    expectError(await fromAcmePage({ assistantId: acme.assistantId }, { origin: 'https://acme-preview.test' }), 403, 'ORIGIN_NOT_ALLOWED');
    expectError(await fromAcmePage({ assistantId: acme.assistantId }, { origin: 'http://app.acme.test' }), 403, 'ORIGIN_NOT_ALLOWED');
  });

  it("answers 404 for another project's assistant, an unknown one, a missing version and a deleted one", async () => {
    const foreign = await fromAcmePage({ assistantId: globex.assistantId });
    expectError(foreign, 404, 'ASSISTANT_NOT_FOUND');
    expect(foreign.headers.get('access-control-allow-origin')).toBe(ACME_ORIGIN); // the page may read why
    expectError(await fromAcmePage({ assistantId: '00000000-0000-4000-8000-000000000000' }), 404, 'ASSISTANT_NOT_FOUND');
    expectError(await fromAcmePage({ assistantId: 'not-a-uuid' }), 404, 'ASSISTANT_NOT_FOUND');
    expectError(await fromAcmePage({ assistantId: acme.assistantId, assistantVersion: 99 }), 404, 'ASSISTANT_NOT_FOUND');

    const doomed = await stores.assistants.create({ projectId: acme.id, config: CONFIG });
    expect((await fromAcmePage({ assistantId: doomed.id, assistantVersion: 1 })).status).toBe(201);
    await stores.assistants.delete(doomed.id);
    expectError(await fromAcmePage({ assistantId: doomed.id }), 404, 'ASSISTANT_NOT_FOUND');
    expectError(await fromAcmePage({ assistantId: doomed.id, assistantVersion: 1 }), 404, 'ASSISTANT_NOT_FOUND');
  });

  it('answers 401 for unknown and revoked keys and a missing or malformed Authorization header', async () => {
    const body = { assistantId: acme.assistantId };
    for (const key of ['vr_pk_unknownunknownunknown', 'vr_sk_unknownunknownunknown', revokedPublishable]) {
      const reply = await send('POST', { key, body, headers: { origin: ACME_ORIGIN } });
      expectError(reply, 401, 'UNAUTHENTICATED');
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(reply.headers.get('access-control-allow-origin')).toBeNull();
    }
    expectError(await send('POST', { body, headers: { origin: ACME_ORIGIN } }), 401, 'UNAUTHENTICATED');
    expectError(await send('POST', { body, headers: { origin: ACME_ORIGIN, authorization: `Basic ${acme.publishable}` } }), 401, 'UNAUTHENTICATED');
  });

  it('answers 400 naming the field for a malformed body (with the CORS grant, so the page can read it)', async () => {
    const wrongType = await fromAcmePage({ assistantId: 42 });
    expectError(wrongType, 400, 'VALIDATION_FAILED');
    expect(wrongType.json.error.issues).toEqual([expect.objectContaining({ path: 'assistantId' })]);
    expect(wrongType.headers.get('access-control-allow-origin')).toBe(ACME_ORIGIN);

    const notString = await fromAcmePage({ assistantId: acme.assistantId, variables: { name: 7 } });
    expectError(notString, 400, 'VALIDATION_FAILED');
    expect(notString.json.error.issues).toEqual([expect.objectContaining({ path: 'variables.name' })]);
    const badName = await fromAcmePage({ assistantId: acme.assistantId, variables: { 'bad name': 'x' } });
    expect(badName.json.error.issues).toEqual([expect.objectContaining({ path: 'variables.bad name', message: expect.stringMatching(/letters, digits/) })]);

    const tooMany = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`v${i}`, 'x']));
    expect((await fromAcmePage({ assistantId: acme.assistantId, variables: tooMany })).json.error.issues).toEqual([
      expect.objectContaining({ path: 'variables', message: expect.stringMatching(/at most 64 variables/) }),
    ]);
    const tooLong = await fromAcmePage({ assistantId: acme.assistantId, variables: { name: 'x'.repeat(4001) } });
    expect(tooLong.json.error.issues).toEqual([expect.objectContaining({ path: 'variables.name' })]);

    const extra = await fromAcmePage({ assistantId: acme.assistantId, contextId: 'mine' });
    expectError(extra, 400, 'VALIDATION_FAILED');
    expect(JSON.stringify(extra.json.error.issues)).toContain('contextId');

    expect((await fromAcmePage({ assistantId: acme.assistantId, assistantVersion: 1.5 })).json.error.issues).toEqual([
      expect.objectContaining({ path: 'assistantVersion' }),
    ]);
    expectError(await send('POST', { key: acme.publishable, raw: '{"assistantId":', headers: { origin: ACME_ORIGIN, 'content-type': 'application/json' } }), 400, 'BAD_JSON');
  });

  it('answers the CORS preflight for any http(s) origin without a key, and nothing for a bogus origin', async () => {
    const preflight = await send('OPTIONS', {
      headers: { origin: 'https://anywhere.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://anywhere.test');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase().split(/\s*,\s*/).sort()).toEqual(['authorization', 'content-type']);
    expect(Number(preflight.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(preflight.headers.get('vary')).toMatch(/Origin/);

    const bogus = await send('OPTIONS', { headers: { origin: 'null', 'access-control-request-method': 'POST' } });
    expect(bogus.status).toBe(204);
    expect(bogus.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('creates a pending web context (inbound, variables, pinned version) and a queued conversation; the context is claimable once', async () => {
    await stores.assistants.update(acme.assistantId, { ...CONFIG, name: 'Widget helper v2' });
    const variables = { name: 'Ada', company: 'Acme' };
    const latest = await fromAcmePage({ assistantId: acme.assistantId, variables });
    const pinned = await fromAcmePage({ assistantId: acme.assistantId, assistantVersion: 1 });
    expect(latest.status, latest.text).toBe(201);
    expect(pinned.status, pinned.text).toBe(201);

    const context = await stores.callContexts.get(latest.json.contextId);
    expect(context).toMatchObject({
      status: 'pending',
      provider: 'web',
      direction: 'inbound',
      callStatus: 'queued',
      projectId: acme.id,
      assistantId: acme.assistantId,
      assistantVersion: 2,
      conversationId: latest.json.conversationId,
      variables,
    });
    expect(context!.expiresAt.toISOString()).toBe(latest.json.expiresAt);
    expect((await stores.callContexts.get(pinned.json.contextId))?.assistantVersion).toBe(1);

    const conversation = await stores.conversations.get(latest.json.conversationId);
    expect(conversation).toMatchObject({
      channel: 'web',
      direction: 'inbound',
      status: 'queued',
      assistantVersion: 2,
      variables,
      metadata: { auth: 'publishable-key', origin: ACME_ORIGIN, keyId: expect.any(String) },
    });

    const first = await stores.callContexts.claim(latest.json.contextId);
    expect(first.outcome).toBe('claimed');
    expect(first.outcome === 'claimed' && first.resumeToken.length).toBeGreaterThan(20);
    expect((await stores.callContexts.claim(latest.json.contextId)).outcome).toBe('already-claimed');
  });

  it('refuses an assistant that cannot take calls (422) and a call the host does not admit (503), storing nothing', async () => {
    const countBefore = (await stores.conversations.listByProject(acme.id, { limit: 500 })).length;
    notCallableReason = 'the deepgram credential is missing';
    const refused = await fromAcmePage({ assistantId: acme.assistantId });
    expectError(refused, 422, 'ASSISTANT_NOT_CALLABLE');
    expect(refused.json.error.message).toContain('the deepgram credential is missing');

    notCallableReason = undefined;
    admit = false;
    const busy = await fromAcmePage({ assistantId: acme.assistantId });
    expectError(busy, 503, 'AT_CAPACITY');
    expect(busy.headers.get('retry-after')).toBe('5');
    expect(admitted).toEqual([acme.id]);
    expect((await stores.conversations.listByProject(acme.id, { limit: 500 })).length).toBe(countBefore);
  });
});
