import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppEnv, type AppStores } from '../../edge/app';
import type { DocumentChunk } from '../../shared/contracts/knowledge';
import { checkReadiness } from '../../shared/health/readiness';
import type { DocumentMeta, KnowledgeWriter } from '../../shared/knowledge/ingest';
import { createAssistantStore } from '../../shared/store/assistants';
import { createCallContextStore } from '../../shared/store/call-contexts';
import { createConversationStore } from '../../shared/store/conversations';
import { createCredentialStore } from '../../shared/store/credentials';
import { createKnowledgeStore } from '../../shared/store/knowledge';
import { createProjectStore } from '../../shared/store/projects';
import { createSecretBox } from '../../shared/store/secret-box';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from '../store/backends';

const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

describe.each(sqlBackends())('knowledge REST routes on $name', (backend) => {
  let db: SqlClient;
  let app: Hono<AppEnv>;
  let stores: AppStores;
  let acme: { id: string; key: string };
  let globex: { id: string; key: string };
  const mirrored: { op: string; kb: string; doc: string; chunks?: number }[] = [];

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field
  async function send(method: string, path: string, options: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: any; text: string; headers: Headers }> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined = options.raw;
    if (body === undefined && options.body !== undefined) {
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
    return { status: response.status, json, text, headers: response.headers };
  }

  beforeAll(async () => {
    db = await backend.open();
    const projects = createProjectStore(db);
    await projects.ensureAdminKey(ADMIN_KEY);
    stores = {
      projects,
      assistants: createAssistantStore(db),
      conversations: createConversationStore(db),
      callContexts: createCallContextStore(db),
      credentials: createCredentialStore(db, await createSecretBox('test-secret-key-0123456789abcdef')),
      knowledge: createKnowledgeStore(db),
    };
    const mirror: KnowledgeWriter = {
      async replaceDocument(kb: string, document: DocumentMeta, chunks: readonly DocumentChunk[]) {
        mirrored.push({ op: 'replace', kb, doc: document.id, chunks: chunks.length });
        return true;
      },
      async deleteDocument(kb: string, doc: string) {
        mirrored.push({ op: 'delete', kb, doc });
        return true;
      },
    };
    app = createApp({ stores, readiness: () => checkReadiness({}), publicBaseUrl: 'https://voice.example.com', knowledgeIndex: mirror });
    const make = async (name: string) => {
      const reply = await send('POST', '/v1/projects', { key: ADMIN_KEY, body: { name } });
      expect(reply.status, reply.text).toBe(201);
      return { id: reply.json.project.id as string, key: reply.json.apiKey.key as string };
    };
    acme = await make('Acme');
    globex = await make('Globex');
  });

  afterAll(async () => {
    await db?.close();
  });

  it('creates and lists knowledge bases per project; ingests, replaces, searches and deletes documents', async () => {
    const created = await send('POST', '/v1/knowledge-bases', { key: acme.key, body: { name: 'FAQ', description: 'shop facts' } });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ projectId: acme.id, name: 'FAQ', description: 'shop facts', language: 'english', documentCount: 0 });
    const id = created.json.id as string;
    expect(created.headers.get('location')).toBe(`https://voice.example.com/v1/knowledge-bases/${id}`);

    const doc = { id: 'guides/hours.md', title: 'Hours', contentType: 'markdown', content: '# Hours\n\nWe open at **nine** on weekdays.' };
    const ingested = await send('POST', `/v1/knowledge-bases/${id}/documents`, { key: acme.key, body: doc });
    expect(ingested.status, ingested.text).toBe(200);
    expect(ingested.json).toEqual({ knowledgeBaseId: id, documentId: 'guides/hours.md', chunks: 1, chars: expect.any(Number) });
    // Again with new content: replaced, still one document.
    const again = await send('POST', `/v1/knowledge-bases/${id}/documents`, { key: acme.key, body: { ...doc, content: 'We open at ten on Saturdays.' } });
    expect(again.status).toBe(200);
    const html = await send('POST', `/v1/knowledge-bases/${id}/documents`, { key: acme.key, body: { contentType: 'html', content: '<p>Parking is free.</p>' } });
    expect(html.json.documentId).toMatch(/^sha256-/);

    const listed = await send('GET', '/v1/knowledge-bases', { key: acme.key });
    expect(listed.json.data).toEqual([expect.objectContaining({ id, documentCount: 2, chunkCount: 2 })]);
    expect((await send('GET', '/v1/knowledge-bases', { key: globex.key })).json.data).toEqual([]);
    const one = await send('GET', `/v1/knowledge-bases/${id}`, { key: acme.key });
    expect(one.json.documents.map((d: { id: string }) => d.id).sort()).toEqual([html.json.documentId, 'guides/hours.md'].sort());

    const found = await stores.knowledge!.search(id, 'when do you open on saturday');
    expect(found[0]).toMatchObject({ text: 'We open at ten on Saturdays.', source: { documentId: 'guides/hours.md', title: 'Hours' } });

    const deleted = await send('DELETE', `/v1/knowledge-bases/${id}/documents/${encodeURIComponent('guides/hours.md')}`, { key: acme.key });
    expect(deleted.status, deleted.text).toBe(204);
    const gone = await send('DELETE', `/v1/knowledge-bases/${id}/documents/${encodeURIComponent('guides/hours.md')}`, { key: acme.key });
    expect(gone.status).toBe(404);
    expect(gone.json.error.code).toBe('DOCUMENT_NOT_FOUND');
    expect(await stores.knowledge!.search(id, 'saturday')).toEqual([]);

    // The mirror index followed every write.
    expect(mirrored).toEqual([
      { op: 'replace', kb: id, doc: 'guides/hours.md', chunks: 1 },
      { op: 'replace', kb: id, doc: 'guides/hours.md', chunks: 1 },
      { op: 'replace', kb: id, doc: html.json.documentId, chunks: 1 },
      { op: 'delete', kb: id, doc: 'guides/hours.md' },
      { op: 'delete', kb: id, doc: 'guides/hours.md' },
    ]);
  });

  it('needs a key; another project gets 403; unknown ids 404; bad bodies 400 with issues', async () => {
    const id = (await send('POST', '/v1/knowledge-bases', { key: acme.key, body: { name: 'Private' } })).json.id as string;
    expect((await send('GET', '/v1/knowledge-bases')).status).toBe(401);
    for (const [method, path, body] of [
      ['GET', `/v1/knowledge-bases/${id}`, undefined],
      ['POST', `/v1/knowledge-bases/${id}/documents`, { content: 'x' }],
      ['DELETE', `/v1/knowledge-bases/${id}/documents/x`, undefined],
    ] as const) {
      const reply = await send(method, path, { key: globex.key, body });
      expect(reply.status, `${method} ${path}`).toBe(403);
      expect(reply.json.error.code).toBe('FORBIDDEN');
    }
    // The admin key acts inside a named project.
    expect((await send('GET', `/v1/knowledge-bases/${id}`, { key: ADMIN_KEY, headers: { 'X-Project-Id': acme.id } })).status).toBe(200);

    for (const unknown of [crypto.randomUUID(), 'not-a-uuid']) {
      const reply = await send('POST', `/v1/knowledge-bases/${unknown}/documents`, { key: acme.key, body: { content: 'x' } });
      expect(reply.status).toBe(404);
      expect(reply.json.error.code).toBe('KNOWLEDGE_BASE_NOT_FOUND');
    }
    const badKb = await send('POST', '/v1/knowledge-bases', { key: acme.key, body: { name: '', language: 'klingon' } });
    expect(badKb.status).toBe(400);
    expect(badKb.json.error.code).toBe('VALIDATION_FAILED');
    expect(badKb.json.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['language', 'name']);
    const badDoc = await send('POST', `/v1/knowledge-bases/${id}/documents`, { key: acme.key, body: { contentType: 'pdf', content: 42 } });
    expect(badDoc.status).toBe(400);
    expect(badDoc.json.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['content', 'contentType']);
    const notJson = await send('POST', `/v1/knowledge-bases/${id}/documents`, { key: acme.key, raw: '{oops', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error.code).toBe('BAD_JSON');
  });
});
