import type { Hono } from 'hono';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApp, type AppEnv, type AppStores } from '../../edge/app';
import { checkReadiness } from '../../shared/health/readiness';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import { createSipRoutingStore } from '../../shared/store/sip-routing';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from '../store/backends';

// /v1/assistants/:id/numbers and /v1/sip/trunks through app.request(), on real stores per backend.

const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
const SECRET_KEY = 'test-secret-key-0123456789abcdef';
const PBX_PASSWORD = 'pbx-digest-password-5e6f7a8b';
const CARRIER_PASSWORD = 'carrier-digest-password-1a2b3c4d';

const CONFIG = {
  name: 'Receptionist',
  prompt: 'You answer the phone.',
  stt: { provider: 'deepgram', model: 'nova-3' },
  llm: { provider: 'openai', model: 'gpt-4o-mini' },
  tts: { provider: 'cartesia', voice: 'v1' },
};

const TRUNK = {
  inbound: { allowedAddresses: ['203.0.113.0/24', '198.51.100.7'], digest: { credential: 'pbx-auth', challenge: 407, realm: 'voice' } },
  outbound: { host: 'sip.carrier.example', port: 5060, credential: 'carrier-auth', fromUser: '+14155550100' },
};

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field
  readonly json: any;
}

describe.each(sqlBackends())('SIP routes on $name', (backend) => {
  let db: SqlClient;
  let app: Hono<AppEnv>;
  let acme: { id: string; key: string };
  let globex: { id: string; key: string };
  /** Every response body of the run, checked for secrets at the end. */
  const bodies: string[] = [];

  async function send(method: string, path: string, options: { key?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    if (options.body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await app.request(path, { method, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) });
    const text = await response.text();
    bodies.push(text);
    return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
  }

  const expectError = (reply: Reply, status: number, code: string) => {
    expect(reply.status, reply.text).toBe(status);
    expect(reply.json.error.code, reply.text).toBe(code);
    expect(reply.json.error.message.length).toBeGreaterThan(10);
  };

  async function makeAssistant(key: string): Promise<string> {
    const reply = await send('POST', '/v1/assistants', { key, body: CONFIG });
    expect(reply.status, reply.text).toBe(201);
    return reply.json.id as string;
  }

  async function putCredential(key: string, name: string, body: Record<string, unknown>): Promise<void> {
    const reply = await send('PUT', `/v1/credentials/${name}`, { key, body });
    expect([200, 201], reply.text).toContain(reply.status);
  }

  beforeAll(async () => {
    db = await backend.open();
    const projects = createProjectStore(db);
    await projects.ensureAdminKey(ADMIN_KEY);
    const stores: AppStores = {
      projects,
      assistants: createAssistantStore(db),
      conversations: createConversationStore(db),
      callContexts: createCallContextStore(db),
      credentials: createCredentialStore(db, await createSecretBox(SECRET_KEY)),
      sip: createSipRoutingStore(db),
    };
    app = createApp({ stores, readiness: () => checkReadiness({}), publicBaseUrl: 'https://voice.example.com' });
    const makeProject = async (name: string) => {
      const reply = await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name } });
      expect(reply.status, reply.text).toBe(201);
      return { id: reply.json.project.id as string, key: reply.json.apiKey.key as string };
    };
    acme = await makeProject('Acme');
    globex = await makeProject('Globex');
    await putCredential(acme.key, 'pbx-auth', { provider: 'sip', username: 'pbx', password: PBX_PASSWORD });
    await putCredential(acme.key, 'carrier-auth', { provider: 'sip', username: 'acme', password: CARRIER_PASSWORD });
    await putCredential(acme.key, 'twilio-main', { provider: 'twilio', accountSid: 'AC123', authToken: 'tw-token-0987654321' });
    await putCredential(acme.key, 'half-sip', { provider: 'sip', username: 'only-a-user' });
  });

  beforeEach(async () => {
    await db.query('DELETE FROM sip_numbers');
    await db.query('DELETE FROM sip_trunks');
  });

  afterAll(async () => {
    // No response of the whole run carried a stored secret.
    const all = bodies.join('\n');
    for (const secret of [PBX_PASSWORD, CARRIER_PASSWORD, 'tw-token-0987654321']) expect(all).not.toContain(secret);
    await db?.close();
  });

  it('every route needs an API key', async () => {
    const id = crypto.randomUUID();
    for (const [method, path] of [
      ['GET', `/v1/assistants/${id}/numbers`],
      ['PUT', `/v1/assistants/${id}/numbers`],
      ['GET', '/v1/sip/trunks'],
      ['GET', '/v1/sip/trunks/pbx'],
      ['PUT', '/v1/sip/trunks/pbx'],
      ['DELETE', '/v1/sip/trunks/pbx'],
    ] as const) {
      const reply = await send(method, path, method === 'PUT' ? { body: {} } : {});
      expectError(reply, 401, 'UNAUTHENTICATED');
    }
  });

  describe('trunks', () => {
    it('PUT creates (201, Location) and replaces (200, same id); GET reads and lists; no secret in any answer', async () => {
      const created = await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: TRUNK });
      expect(created.status, created.text).toBe(201);
      expect(created.headers.get('location')).toBe('https://voice.example.com/v1/sip/trunks/pbx');
      expect(created.json).toMatchObject({
        projectId: acme.id,
        name: 'pbx',
        inbound: { allowedAddresses: ['203.0.113.0/24', '198.51.100.7/32'], digest: { credential: 'pbx-auth', challenge: 407, realm: 'voice' } },
        outbound: { host: 'sip.carrier.example', port: 5060, credential: 'carrier-auth', fromUser: '+14155550100' },
      });
      expect(created.json.created).toBeUndefined();
      expect(created.text).not.toContain('password');

      const read = await send('GET', '/v1/sip/trunks/pbx', { key: acme.key });
      expect(read.json).toEqual(created.json);

      const replaced = await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: { inbound: { allowedAddresses: ['2001:DB8::/32'] } } });
      expect(replaced.status, replaced.text).toBe(200);
      expect(replaced.json.id).toBe(created.json.id);
      expect(replaced.json.inbound).toEqual({ allowedAddresses: ['2001:db8::/32'] });
      expect(replaced.json.outbound).toBeUndefined();

      await send('PUT', '/v1/sip/trunks/carrier', { key: acme.key, body: { inbound: { digest: { credential: 'carrier-auth' } } } });
      const list = await send('GET', '/v1/sip/trunks', { key: acme.key });
      expect(list.json.data.map((t: { name: string }) => t.name)).toEqual(['carrier', 'pbx']);
      expect(list.json.data[0].inbound).toEqual({ allowedAddresses: [], digest: { credential: 'carrier-auth', challenge: 401 } });
    });

    it('validation names each bad field: addresses (host bits), neither addresses nor digest, challenge, host, unknown fields, name', async () => {
      const bad = await send('PUT', '/v1/sip/trunks/pbx', {
        key: acme.key,
        body: { inbound: { allowedAddresses: ['203.0.113.0/24', '203.0.113.5/24', 'nonsense'], digest: { credential: 'pbx-auth', challenge: 402 } }, outbound: { host: 'bad host' } },
      });
      expectError(bad, 400, 'VALIDATION_FAILED');
      const paths = bad.json.error.issues.map((i: { path?: string }) => i.path);
      expect(paths).toEqual(expect.arrayContaining(['inbound.allowedAddresses.1', 'inbound.allowedAddresses.2', 'inbound.digest.challenge', 'outbound.host']));
      expect(bad.json.error.issues.find((i: { path: string }) => i.path === 'inbound.allowedAddresses.1').message).toContain('did you mean "203.0.113.0/24"');

      const neither = await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: { inbound: { allowedAddresses: [] } } });
      expectError(neither, 400, 'VALIDATION_FAILED');
      expect(neither.json.error.issues).toEqual([{ path: 'inbound', message: expect.stringContaining('admit no call') }]);

      const extra = await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: { inbound: { allowedAddresses: ['192.0.2.1'] }, password: 'x' } });
      expectError(extra, 400, 'VALIDATION_FAILED');

      expectError(await send('PUT', '/v1/sip/trunks/bad%20name', { key: acme.key, body: { inbound: { allowedAddresses: ['192.0.2.1'] } } }), 400, 'VALIDATION_FAILED');
      expectError(await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: { inbound: { allowedAddresses: ['192.0.2.1'] } }, headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect((await send('GET', '/v1/sip/trunks', { key: acme.key })).json.data).toEqual([]);
    });

    it('named credentials must exist in this project, be sip credentials and hold username and password', async () => {
      const put = (inbound: unknown, outbound?: unknown) => send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: { inbound, ...(outbound ? { outbound } : {}) } });
      const missing = await put({ digest: { credential: 'nope' } });
      expectError(missing, 400, 'CREDENTIAL_NOT_FOUND');
      expect(missing.json.error.issues).toEqual([{ path: 'inbound.digest.credential', message: 'no such credential' }]);
      const wrong = await put({ allowedAddresses: ['192.0.2.1'] }, { host: 'sip.example', credential: 'twilio-main' });
      expectError(wrong, 400, 'CREDENTIAL_WRONG_PROVIDER');
      expect(wrong.json.error.message).toContain('twilio');
      expectError(await put({ digest: { credential: 'half-sip' } }), 400, 'SIP_CREDENTIAL_INVALID');
      // Another project's credential of the same name does not count.
      expectError(
        await send('PUT', '/v1/sip/trunks/pbx', { key: globex.key, body: { inbound: { digest: { credential: 'pbx-auth' } } } }),
        400,
        'CREDENTIAL_NOT_FOUND',
      );
      expect((await send('GET', '/v1/sip/trunks', { key: acme.key })).json.data).toEqual([]);
    });

    it('projects are isolated: another project neither sees nor deletes a trunk; the admin key acts with X-Project-Id', async () => {
      expect((await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: TRUNK })).status).toBe(201);
      expectError(await send('GET', '/v1/sip/trunks/pbx', { key: globex.key }), 404, 'TRUNK_NOT_FOUND');
      expect((await send('GET', '/v1/sip/trunks', { key: globex.key })).json.data).toEqual([]);
      expectError(await send('DELETE', '/v1/sip/trunks/pbx', { key: globex.key }), 404, 'TRUNK_NOT_FOUND');
      const asAdmin = await send('GET', '/v1/sip/trunks/pbx', { key: ADMIN_KEY, headers: { 'X-Project-Id': acme.id } });
      expect(asAdmin.status).toBe(200);
      expectError(await send('GET', '/v1/sip/trunks', { key: ADMIN_KEY }), 400, 'PROJECT_REQUIRED');
    });
  });

  describe('numbers', () => {
    it('PUT replaces an assistant\'s numbers (normalised, with trunks); GET lists them; assistant routes still work', async () => {
      const assistantId = await makeAssistant(acme.key);
      await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: TRUNK });
      const put = await send('PUT', `/v1/assistants/${assistantId}/numbers`, {
        key: acme.key,
        body: { numbers: ['+1 (415) 555-0123', { number: 'Support', trunk: 'pbx' }] },
      });
      expect(put.status, put.text).toBe(200);
      expect(put.json).toEqual({ assistantId, numbers: [{ number: '+14155550123' }, { number: 'support', trunk: 'pbx' }] });
      expect((await send('GET', `/v1/assistants/${assistantId}/numbers`, { key: acme.key })).json).toEqual(put.json);

      // The assistant routes next to these answer as before.
      const assistant = await send('GET', `/v1/assistants/${assistantId}`, { key: acme.key });
      expect(assistant.status).toBe(200);
      expect(assistant.json.name).toBe('Receptionist');
      const updated = await send('PUT', `/v1/assistants/${assistantId}`, { key: acme.key, body: { ...CONFIG, name: 'Front desk' } });
      expect(updated.json.version).toBe(2);

      const cleared = await send('PUT', `/v1/assistants/${assistantId}/numbers`, { key: acme.key, body: { numbers: [] } });
      expect(cleared.json.numbers).toEqual([]);
    });

    it('bad numbers are 400 naming them by path; an unknown trunk is 400 TRUNK_NOT_FOUND', async () => {
      const assistantId = await makeAssistant(acme.key);
      const bad = await send('PUT', `/v1/assistants/${assistantId}/numbers`, { key: acme.key, body: { numbers: ['+14155550123', 'two words', { number: '+1' }] } });
      expectError(bad, 400, 'SIP_NUMBER_INVALID');
      expect(bad.json.error.message).toContain('"two words"');
      expect(bad.json.error.issues.map((i: { path: string }) => i.path)).toEqual(['numbers.1', 'numbers.2.number']);

      expectError(await send('PUT', `/v1/assistants/${assistantId}/numbers`, { key: acme.key, body: { numbers: '+14155550123' } }), 400, 'VALIDATION_FAILED');
      expectError(await send('PUT', `/v1/assistants/${assistantId}/numbers`, { key: acme.key, body: { numbers: ['+14155550123', '14155550123'] } }), 400, 'SIP_NUMBER_INVALID');
      const trunk = await send('PUT', `/v1/assistants/${assistantId}/numbers`, { key: acme.key, body: { numbers: [{ number: '+14155550123', trunk: 'missing' }] } });
      expectError(trunk, 400, 'TRUNK_NOT_FOUND');
      expect(trunk.json.error.message).toContain('"missing"');
      expect((await send('GET', `/v1/assistants/${assistantId}/numbers`, { key: acme.key })).json.numbers).toEqual([]);
    });

    it('a number held anywhere is 409 NUMBER_TAKEN; another project\'s assistant is 404; a trunk in use is 409 TRUNK_IN_USE', async () => {
      const ours = await makeAssistant(acme.key);
      const theirs = await makeAssistant(globex.key);
      await send('PUT', '/v1/sip/trunks/pbx', { key: acme.key, body: TRUNK });
      expect((await send('PUT', `/v1/assistants/${ours}/numbers`, { key: acme.key, body: { numbers: [{ number: '+14155550123', trunk: 'pbx' }] } })).status).toBe(200);

      const taken = await send('PUT', `/v1/assistants/${theirs}/numbers`, { key: globex.key, body: { numbers: ['14155550123'] } });
      expectError(taken, 409, 'NUMBER_TAKEN');
      expect(taken.json.error.message).toContain('14155550123');
      expect(taken.json.error.message).not.toContain(ours);

      for (const method of ['GET', 'PUT'] as const) {
        const reply = await send(method, `/v1/assistants/${ours}/numbers`, { key: globex.key, ...(method === 'PUT' ? { body: { numbers: [] } } : {}) });
        expectError(reply, 404, 'ASSISTANT_NOT_FOUND');
      }
      expectError(await send('GET', `/v1/assistants/not-a-uuid/numbers`, { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
      // Another project's trunk is no trunk of this one.
      expectError(await send('PUT', `/v1/assistants/${theirs}/numbers`, { key: globex.key, body: { numbers: [{ number: 'x1', trunk: 'pbx' }] } }), 400, 'TRUNK_NOT_FOUND');

      const inUse = await send('DELETE', '/v1/sip/trunks/pbx', { key: acme.key });
      expectError(inUse, 409, 'TRUNK_IN_USE');
      expect(inUse.json.error.message).toContain('+14155550123');
      await send('PUT', `/v1/assistants/${ours}/numbers`, { key: acme.key, body: { numbers: ['+14155550123'] } });
      expect((await send('DELETE', '/v1/sip/trunks/pbx', { key: acme.key })).status).toBe(204);
      expectError(await send('DELETE', '/v1/sip/trunks/pbx', { key: acme.key }), 404, 'TRUNK_NOT_FOUND');

      // A deleted assistant's numbers are released and its number routes gone.
      expect((await send('DELETE', `/v1/assistants/${ours}`, { key: acme.key })).status).toBe(204);
      expectError(await send('GET', `/v1/assistants/${ours}/numbers`, { key: acme.key }), 404, 'ASSISTANT_NOT_FOUND');
      expect((await send('PUT', `/v1/assistants/${theirs}/numbers`, { key: globex.key, body: { numbers: ['14155550123'] } })).status).toBe(200);
    });
  });
});
