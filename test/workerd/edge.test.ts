import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bundleWorker } from './bundle';
import { parseEdgeEnv } from '../../edge/env';
import { connectRedisCache, type RedisCache } from '../../media-node/cache/redis';
import { loadMigrations } from '../../media-node/db/migrations';
import { createPostgresClient } from '../../media-node/db/postgres-client';
import { NodeRegistry, type NodeInfo } from '../../shared/cache/node-registry';
import { PREWARM_PATH, INTERNAL_SIGNATURE_HEADER, INTERNAL_TIMESTAMP_HEADER, verifyInternalRequest } from '../../shared/cluster/internal-auth';
import { createCallContextStore } from '../../shared/store/call-contexts';
import { createCredentialStore } from '../../shared/store/credentials';
import { migrate } from '../../shared/store/migrate';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import type { SqlClient } from '../../shared/store/sql';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { startUpstashShim, type UpstashShim } from '../fakes/upstash-shim';

/**
 * The edge Worker (edge/worker.ts, bundled with esbuild like wrangler does) inside real workerd (Miniflare 4):
 * PostgreSQL through a local Hyperdrive binding onto a fresh migrated schema of TEST_DATABASE_URL, the node
 * registry through @upstash/redis onto the Upstash-REST shim over the real Redis of TEST_REDIS_URL (in a
 * database of its own, so other suites' nodes never show up), and fake media nodes on 127.0.0.1 that record
 * the signed pre-warms. Nodes register through the media node's own client (ioredis NodeRegistry).
 */

const DATABASE_URL = process.env.TEST_DATABASE_URL?.trim() || undefined;
const REDIS_URL = process.env.TEST_REDIS_URL?.trim() || undefined;
if ((!DATABASE_URL || !REDIS_URL) && process.env.CI === 'true') {
  throw new Error('TEST_DATABASE_URL and TEST_REDIS_URL must be set: under CI=true the edge Worker suite must run (.ci/run sets them)');
}
if (!DATABASE_URL || !REDIS_URL) console.warn('TEST_DATABASE_URL or TEST_REDIS_URL not set: the edge Worker suite (workerd + PostgreSQL + Redis) is skipped');

const PUBLIC_BASE_URL = 'https://edge.voice.test';
const ADMIN_KEY = 'edge-test-admin-key-0123456789abcdef';
const SECRET_KEY = 'edge-test-secret-key-0123456789abcdef-xyz';
const INTERNAL_SECRET = 'edge-test-internal-secret-0123456789abcdef';
const ACCOUNT_SID = `AC${'1'.repeat(32)}`;
const AUTH_TOKEN = 'edge_test_twilio_auth_token_0123456789';
const ASSISTANT = {
  name: 'Edge receptionist',
  prompt: 'You answer the phone for {{company}}.',
  greeting: 'Hello, {{company}} here.',
  stt: { provider: 'deepgram', model: 'nova-3' },
  llm: { provider: 'openai', model: 'gpt-4o-mini' },
  tts: { provider: 'cartesia', voice: 'v1' },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake media node: records what reaches `POST /internal/prewarm`, answers 202. */
interface FakeNode {
  readonly url: string;
  readonly prewarms: Array<{ path: string; headers: IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

async function startFakeNode(): Promise<FakeNode> {
  const prewarms: FakeNode['prewarms'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      prewarms.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    prewarms,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** Another database number of the same Redis, so this suite owns `voice:nodes` there. */
function registryDatabaseUrl(url: string): string {
  const parsed = new URL(url);
  const current = Number(parsed.pathname.replace(/^\//, '') || '0');
  parsed.pathname = `/${current === 11 ? 12 : 11}`;
  return parsed.toString();
}

async function bundle(outDir: string): Promise<void> {
  await bundleWorker({ worker: join(import.meta.dirname, '../../edge/worker.ts'), probe: join(import.meta.dirname, 'edge-probe-worker.ts') }, outDir);
}

describe.runIf(DATABASE_URL && REDIS_URL)('the edge Worker in workerd', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let outDir: string;
  let mf: Miniflare;
  let db: SqlClient;
  let shim: UpstashShim;
  let nodeCache: RedisCache;
  let nodes: FakeNode[];
  let workerOptions: ConstructorParameters<typeof Miniflare>[0];
  let projectKey = '';
  let assistantId = '';

  const edge = (path: string, init: RequestInit & { cf?: Record<string, unknown> } = {}) => mf.dispatchFetch(`${PUBLIC_BASE_URL}${path}`, init as never);
  const authed = (key: string, init: RequestInit = {}) => ({ ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });

  async function twilioWebhook(options: { cf?: Record<string, unknown>; token?: string } = {}) {
    const path = `/v1/talk/twilio/call/${assistantId}`;
    const params = { AccountSid: ACCOUNT_SID, CallSid: `CA${crypto.randomUUID().replace(/-/g, '')}`, From: '+15550101', To: '+15550199', CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01' };
    const signature = await signTwilioRequest({ authToken: options.token ?? AUTH_TOKEN, url: `${PUBLIC_BASE_URL}${path}`, params });
    const response = await edge(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
      body: new URLSearchParams(params).toString(),
      ...(options.cf ? { cf: options.cf } : {}),
    });
    const text = await response.text();
    const streamUrl = /<Stream url="([^"]+)"/.exec(text)?.[1];
    return { status: response.status, text, streamUrl, contextId: streamUrl?.split('/').pop() };
  }

  const info = (id: string, node: FakeNode | string, overrides: Partial<NodeInfo> = {}): NodeInfo => ({
    id,
    url: typeof node === 'string' ? node : node.url,
    region: 'us-test',
    capacity: 10,
    active: 0,
    version: '1.0.0',
    ...overrides,
  });
  const register = (node: NodeInfo, options: ConstructorParameters<typeof NodeRegistry>[1] = {}) => new NodeRegistry(nodeCache, options).register(node);

  async function clearRegistry(): Promise<void> {
    const keys = await shim.redis.keys('voice:*');
    if (keys.length > 0) await shim.redis.del(...keys);
    for (const node of nodes) node.prewarms.length = 0;
  }

  async function waitForPrewarm(node: FakeNode, timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (node.prewarms.length === 0 && Date.now() < deadline) await sleep(25);
    return node.prewarms.length > 0;
  }

  beforeAll(async () => {
    // Database: a fresh schema, migrated from Node (the edge never migrates), with the admin key in it.
    const schema = `t_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const admin = createPostgresClient(DATABASE_URL!, { max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    });
    db = createPostgresClient(DATABASE_URL!, { schema, max: 4 });
    cleanups.push(() => db.close());
    await migrate(db, await loadMigrations());
    await createProjectStore(db).ensureAdminKey(ADMIN_KEY);

    // Registry: ioredis (the nodes' client) and the Upstash shim (the edge's view) on one Redis database.
    const registryUrl = registryDatabaseUrl(REDIS_URL!);
    shim = await startUpstashShim({ redisUrl: registryUrl });
    cleanups.push(() => shim.close());
    nodeCache = await connectRedisCache({ url: registryUrl });
    cleanups.push(() => nodeCache.close());
    nodes = await Promise.all(Array.from({ length: 4 }, startFakeNode));
    cleanups.push(() => Promise.all(nodes.map((n) => n.close())));

    outDir = await mkdtemp(join(tmpdir(), 'workerd-edge-'));
    cleanups.push(() => rm(outDir, { recursive: true, force: true }));
    await bundle(outDir);
    // Hyperdrive's local connection string must carry a password, even with trust auth.
    const hyperdrive = new URL(DATABASE_URL!);
    if (!hyperdrive.password) hyperdrive.password = 'dev';
    workerOptions = {
      modules: true,
      scriptPath: join(outDir, 'worker.js'),
      modulesRoot: outDir,
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
      compatibilityDate: '2026-04-20',
      compatibilityFlags: ['nodejs_compat'],
      durableObjects: { TALK_SESSION: { className: 'TalkSession', useSQLite: true } },
      hyperdrives: { HYPERDRIVE: hyperdrive.toString() },
      bindings: {
        DATABASE_SCHEMA: schema,
        UPSTASH_REDIS_REST_URL: shim.url,
        UPSTASH_REDIS_REST_TOKEN: shim.token,
        SECRET_KEY,
        INTERNAL_SECRET,
        PUBLIC_BASE_URL,
        DEFAULT_REGION: 'us-test',
        LOG_LEVEL: 'silent',
      },
      cf: false,
    };
    mf = new Miniflare(workerOptions);
    cleanups.push(() => mf.dispose());
    await mf.ready;
  }, 60_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  describe('REST through the edge', () => {
    it('liveness answers; readiness checks PostgreSQL (Hyperdrive) and the cache (Upstash) from inside workerd', async () => {
      const live = await edge('/healthz/');
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ status: 'ok' });
      const before = shim.requests.length;
      const ready = await edge('/readiness/');
      const report = (await ready.json()) as { ready: boolean; checks: Record<string, { ok: boolean; error?: string }> };
      expect(report.checks.database, JSON.stringify(report)).toMatchObject({ ok: true });
      expect(report.checks.cache, JSON.stringify(report)).toMatchObject({ ok: true });
      expect(ready.status).toBe(200);
      // The PING really crossed the REST shim.
      expect(shim.requests.slice(before).map((r) => `${r.path} ${r.commands.join(',')} ${r.status}`)).toContain('/ PING 200');
    });

    it('no key or an unknown key is 401; the admin key creates a project whose key creates and reads an assistant', async () => {
      const none = await edge('/v1/assistants');
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
      expect((await edge('/v1/assistants', authed('vr_sk_not-a-real-key-0123456789'))).status).toBe(401);

      const created = await edge('/v1/projects', authed(ADMIN_KEY, { method: 'POST', body: JSON.stringify({ name: 'Edge test' }) }));
      expect(created.status).toBe(201);
      const project = (await created.json()) as { project: { id: string }; apiKey: { key: string } };
      projectKey = project.apiKey.key;
      expect(projectKey).toMatch(/^vr_sk_/);
      // A project key is not the admin key.
      expect((await edge('/v1/projects', authed(projectKey))).status).toBe(403);

      const posted = await edge('/v1/assistants', authed(projectKey, { method: 'POST', body: JSON.stringify(ASSISTANT) }));
      expect(posted.status).toBe(201);
      assistantId = ((await posted.json()) as { id: string }).id;
      const read = await edge(`/v1/assistants/${assistantId}`, authed(projectKey));
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ id: assistantId, projectId: project.project.id, version: 1 });
      // It landed in the suite's schema (the Worker's search_path), read back from Node.
      const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM assistants WHERE id = $1::uuid', [assistantId]);
      expect(row?.n).toBe(1);
    });

    it('a credential stored through the edge is sealed with SECRET_KEY: a node with the same key opens it', async () => {
      expect(projectKey).not.toBe('');
      const put = await edge('/v1/credentials/phone', authed(projectKey, { method: 'PUT', body: JSON.stringify({ provider: 'twilio', isDefault: true, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }) }));
      expect(put.status).toBe(201);
      expect(await put.text()).not.toContain(AUTH_TOKEN);
      const [project] = await db.query<{ id: string }>('SELECT id FROM projects');
      const credentials = createCredentialStore(db, await createSecretBox(SECRET_KEY));
      expect(JSON.parse((await credentials.resolve(project!.id, 'twilio'))!)).toMatchObject({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    });
  });

  describe('phone calls placed on media nodes', () => {
    beforeEach(async () => {
      expect(assistantId, 'the REST tests create the assistant and its twilio credential first').not.toBe('');
      await clearRegistry();
    });

    it('the Twilio webhook answers TwiML naming the least loaded live node with room; dead and full nodes are skipped', async () => {
      const [busy, idle, full, dead] = nodes as [FakeNode, FakeNode, FakeNode, FakeNode];
      await register(info('busy', busy, { active: 8 }));
      await register(info('idle', idle, { active: 2 }));
      await register(info('full', full, { capacity: 3, active: 3 }));
      await register(info('draining', full, { capacity: 0 }));
      // Dead, and idle: the best choice if it were alive. Its last heartbeat is 20 s old (TTL 15 s).
      await register(info('stale', dead), { clock: { now: () => Date.now() - 20_000 } });
      // Dead another way: its hash expired while its sorted-set score is still recent.
      await register(info('expired', dead), { ttlMs: 200 });
      await sleep(400);

      const call = await twilioWebhook();
      expect(call.status, call.text).toBe(200);
      expect(call.streamUrl).toBe(`${idle.url.replace(/^http/, 'ws')}/v1/talk/twilio/ctx/${call.contextId}`);
      // The context the URL names exists, for this assistant, waiting for its media stream.
      const context = await createCallContextStore(db).get(call.contextId!);
      expect(context).toMatchObject({ assistantId, provider: 'twilio', status: 'pending', direction: 'inbound' });

      // The chosen node, and only it, is asked to pre-warm that context, with a valid signature.
      expect(await waitForPrewarm(idle)).toBe(true);
      const [prewarm] = idle.prewarms;
      expect(prewarm!.path).toBe(PREWARM_PATH);
      expect(JSON.parse(prewarm!.body)).toEqual({ contextId: call.contextId });
      const verdict = await verifyInternalRequest(
        INTERNAL_SECRET,
        { method: 'POST', path: PREWARM_PATH, body: prewarm!.body },
        { timestamp: prewarm!.headers[INTERNAL_TIMESTAMP_HEADER.toLowerCase()] as string, signature: prewarm!.headers[INTERNAL_SIGNATURE_HEADER.toLowerCase()] as string },
      );
      expect(verdict).toEqual({ ok: true });
      expect(await verifyInternalRequest('x'.repeat(40), { method: 'POST', path: PREWARM_PATH, body: prewarm!.body }, { timestamp: prewarm!.headers[INTERNAL_TIMESTAMP_HEADER.toLowerCase()] as string, signature: prewarm!.headers[INTERNAL_SIGNATURE_HEADER.toLowerCase()] as string })).toEqual({ ok: false, reason: 'bad-signature' });
      await sleep(200);
      expect([busy, full, dead].map((n) => n.prewarms.length)).toEqual([0, 0, 0]);
    });

    it('as load changes (heartbeats), the next call goes to the node that is now least loaded', async () => {
      const [a, b] = nodes as [FakeNode, FakeNode];
      await register(info('a', a, { active: 1 }));
      await register(info('b', b, { active: 5 }));
      expect((await twilioWebhook()).streamUrl).toMatch(new RegExp(`^${a.url.replace(/^http/, 'ws')}/`));
      await register(info('a', a, { active: 9 }));
      expect((await twilioWebhook()).streamUrl).toMatch(new RegExp(`^${b.url.replace(/^http/, 'ws')}/`));
    });

    it("region: the caller's Cloudflare region wins while a node there has room, else DEFAULT_REGION, else any", async () => {
      const [eu, us, ap] = nodes as [FakeNode, FakeNode, FakeNode];
      await register(info('eu', eu, { region: 'eu-test', active: 5 }));
      await register(info('us', us, { region: 'us-test', active: 5 }));
      await register(info('ap', ap, { region: 'ap-test', active: 0 })); // least loaded overall
      const ws = (node: FakeNode) => new RegExp(`^${node.url.replace(/^http/, 'ws')}/`);
      expect((await twilioWebhook({ cf: { region: 'eu-test' } })).streamUrl).toMatch(ws(eu));
      expect((await twilioWebhook({ cf: { region: 'nowhere' } })).streamUrl).toMatch(ws(us)); // DEFAULT_REGION=us-test
      await register(info('us', us, { region: 'us-test', capacity: 5, active: 5 })); // us full
      expect((await twilioWebhook({ cf: { region: 'nowhere' } })).streamUrl).toMatch(ws(ap)); // any: least loaded
    });

    it('no live node with room: the webhook answers 503 busy TwiML and POST /v1/calls 503 NO_MEDIA_NODE; nothing is stored', async () => {
      const [full, dead] = nodes as [FakeNode, FakeNode];
      await register(info('full', full, { capacity: 2, active: 2 }));
      await register(info('stale', dead), { clock: { now: () => Date.now() - 30_000 } });
      const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM call_contexts'))[0]!.n;
      const before = await count();

      const call = await twilioWebhook();
      expect(call.status).toBe(503);
      expect(call.text).toMatch(/<Say>[^<]*all lines are busy/i);
      expect(call.streamUrl).toBeUndefined();

      const outbound = await edge('/v1/calls', authed(projectKey, { method: 'POST', body: JSON.stringify({ assistantId, provider: 'twilio', to: '+14155550123', from: '+14155550100' }) }));
      expect(outbound.status).toBe(503);
      expect(outbound.headers.get('retry-after')).toBe('5');
      expect(((await outbound.json()) as { error: { code: string } }).error.code).toBe('NO_MEDIA_NODE');

      await clearRegistry();
      expect((await twilioWebhook()).status).toBe(503); // an empty registry too
      expect(await count()).toBe(before);
      expect(nodes.every((n) => n.prewarms.length === 0)).toBe(true);
    });

    it('a webhook signed with another auth token is refused before any node is picked', async () => {
      await register(info('idle', nodes[0]!));
      const before = shim.requests.length;
      const call = await twilioWebhook({ token: 'not-the-auth-token' });
      expect(call.status).toBe(403);
      expect(shim.requests.length).toBe(before);
    });
  });

  describe('browser call sockets go to the TalkSession object of their context', () => {
    it('a GET without Upgrade is 426; an id that is no context id is 404', async () => {
      const id = crypto.randomUUID();
      const plain = await edge(`/v1/talk/web/ctx/${id}`);
      expect(plain.status).toBe(426);
      expect(((await plain.json()) as { error: { code: string } }).error.code).toBe('UPGRADE_REQUIRED');
      const bad = await edge('/v1/talk/web/ctx/not-a-context', { headers: { upgrade: 'websocket' } });
      expect(bad.status).toBe(404);
    });

    it('an upgrade reaches the object named by the context id, with the request as it came', async () => {
      const probe = new Miniflare({ ...workerOptions, scriptPath: join(outDir, 'probe.js') } as ConstructorParameters<typeof Miniflare>[0]);
      try {
        await probe.ready;
        const send = async (id: string) => {
          const response = await probe.dispatchFetch(`${PUBLIC_BASE_URL}/v1/talk/web/ctx/${id}`, { headers: { upgrade: 'websocket' } });
          return (await response.json()) as { seen: number; path: string; upgrade: string };
        };
        const one = crypto.randomUUID();
        const other = crypto.randomUUID();
        expect(await send(one)).toEqual({ seen: 1, path: `/v1/talk/web/ctx/${one}`, upgrade: 'websocket' });
        expect((await send(one)).seen).toBe(2);
        expect((await send(other)).seen).toBe(1);
        expect((await send(one.toUpperCase())).seen).toBe(3); // the same context, however its id is cased
      } finally {
        await probe.dispose();
      }
    });
  });

  describe('a misconfigured Worker', () => {
    it('answers 500 WORKER_MISCONFIGURED naming each bad variable, never its value; liveness still answers', async () => {
      const leaked = 'short-secret-value';
      const broken = new Miniflare({
        ...workerOptions,
        bindings: { ...(workerOptions.bindings as Record<string, string>), INTERNAL_SECRET: leaked, UPSTASH_REDIS_REST_URL: 'ftp://cache.example', PUBLIC_BASE_URL: '' },
      } as ConstructorParameters<typeof Miniflare>[0]);
      try {
        await broken.ready;
        expect((await broken.dispatchFetch(`${PUBLIC_BASE_URL}/healthz/`)).status).toBe(200);
        const response = await broken.dispatchFetch(`${PUBLIC_BASE_URL}/v1/assistants`);
        expect(response.status).toBe(500);
        const text = await response.text();
        expect(text).not.toContain(leaked);
        const body = JSON.parse(text) as { error: { code: string; message: string; issues: Array<{ path: string; message: string }> } };
        expect(body.error.code).toBe('WORKER_MISCONFIGURED');
        expect(body.error.issues.map((i) => i.path).sort()).toEqual(['INTERNAL_SECRET', 'PUBLIC_BASE_URL', 'UPSTASH_REDIS_REST_URL']);
        expect(body.error.issues.find((i) => i.path === 'INTERNAL_SECRET')?.message).toMatch(/at least 32 characters/);
      } finally {
        await broken.dispose();
      }
    });

    it('an unreachable registry answers 503 NODE_REGISTRY_UNAVAILABLE to the webhook instead of a 500', async () => {
      const cut = new Miniflare({
        ...workerOptions,
        bindings: { ...(workerOptions.bindings as Record<string, string>), UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1' },
      } as ConstructorParameters<typeof Miniflare>[0]);
      const previous = mf;
      try {
        await cut.ready;
        mf = cut;
        const call = await twilioWebhook();
        expect(call.status).toBe(503);
        expect(JSON.parse(call.text)).toMatchObject({ error: { code: 'NODE_REGISTRY_UNAVAILABLE' } });
      } finally {
        mf = previous;
        await cut.dispose();
      }
    });
  });
});

describe('the Worker environment (edge/env.ts)', () => {
  const good = {
    HYPERDRIVE: { connectionString: 'postgres://u:p@h.hyperdrive.local:5432/db' },
    UPSTASH_REDIS_REST_URL: 'https://eu1-x.upstash.io',
    UPSTASH_REDIS_REST_TOKEN: 'tok',
    SECRET_KEY: 's'.repeat(40),
    INTERNAL_SECRET: 'i'.repeat(40),
    PUBLIC_BASE_URL: 'https://voice.example.com/',
    TALK_SESSION: { getByName: () => ({ fetch: async () => new Response() }) },
  };

  it('a complete environment parses; Hyperdrive wins over DATABASE_URL; PUBLIC_ASSISTANT_HOST is shorthand', () => {
    const parsed = parseEdgeEnv({ ...good, DATABASE_URL: 'postgres://other/db' });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.config.database).toEqual({ connectionString: good.HYPERDRIVE.connectionString, source: 'HYPERDRIVE' });
    expect(parsed.config.publicBaseUrl).toBe('https://voice.example.com');
    expect(parsed.config.logLevel).toBe('info');
    const shorthand = parseEdgeEnv({ ...good, HYPERDRIVE: undefined, DATABASE_URL: 'postgres://u@db/x', PUBLIC_BASE_URL: '', PUBLIC_ASSISTANT_HOST: 'edge.example.com' });
    expect(shorthand.ok && shorthand.config.publicBaseUrl).toBe('https://edge.example.com');
    expect(shorthand.ok && shorthand.config.database.source).toBe('DATABASE_URL');
  });

  it('every problem is named by variable, with what to do, and no value is repeated', () => {
    const parsed = parseEdgeEnv({ SECRET_KEY: 'tiny-secret', DATABASE_URL: 'mysql://root:hunter2@db/x', LOG_LEVEL: 'loud' });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const byName = Object.fromEntries(parsed.issues.map((i) => [i.variable, i.message]));
    expect(Object.keys(byName).sort()).toEqual(['DATABASE_URL', 'INTERNAL_SECRET', 'LOG_LEVEL', 'PUBLIC_BASE_URL', 'SECRET_KEY', 'TALK_SESSION', 'UPSTASH_REDIS_REST_TOKEN', 'UPSTASH_REDIS_REST_URL']);
    expect(byName.SECRET_KEY).toMatch(/at least 32 characters/);
    expect(byName.INTERNAL_SECRET).toMatch(/is not set: `wrangler secret put INTERNAL_SECRET`/);
    expect(byName.DATABASE_URL).toMatch(/postgres:/);
    expect(JSON.stringify(parsed.issues)).not.toMatch(/tiny-secret|hunter2|loud/);
    // Neither database source at all is its own message.
    const none = parseEdgeEnv({ ...good, HYPERDRIVE: undefined });
    expect(!none.ok && none.issues).toEqual([{ variable: 'HYPERDRIVE', message: expect.stringMatching(/neither HYPERDRIVE .* nor DATABASE_URL/) }]);
  });
});
