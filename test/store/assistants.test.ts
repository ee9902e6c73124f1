import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/contracts/errors';
import { createAssistantStore, type AssistantStore } from '../../shared/store/assistants';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from './backends';

const CONFIG = {
  name: 'Receptionist',
  prompt: 'You answer the phone for {{company}}.',
  stt: { provider: 'deepgram', credential: 'dg-main' },
  llm: { provider: 'openai', model: 'gpt-4o-mini' },
  tts: { provider: 'cartesia', voice: 'sonic' },
};

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe.each(sqlBackends())('assistants on $name', (backend) => {
  let db: SqlClient;
  let store: AssistantStore;
  let projectId: string;

  beforeAll(async () => {
    db = await backend.open();
    store = createAssistantStore(db);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    projectId = crypto.randomUUID();
    await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'Acme']);
  });

  const count = async (table: string) =>
    Number((await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM ${table} WHERE ${table === 'assistants' ? 'project_id' : 'assistant_id IN (SELECT id FROM assistants WHERE project_id'} = $1::uuid${table === 'assistants' ? '' : ')'}`, [projectId]))[0]?.n);

  it('creates version 1 from a validated configuration with every default filled in', async () => {
    const assistant = await store.create({ projectId, config: CONFIG });
    expect(assistant).toMatchObject({ projectId, name: 'Receptionist', version: 1, latestVersion: 1 });
    expect(assistant.config.turn.silenceMs).toBe(500);
    expect(assistant.config.stt).toMatchObject({ provider: 'deepgram', credential: 'dg-main', language: 'en-US' });
    expect(await store.get(assistant.id)).toEqual(assistant);
    // The stored jsonb is the parsed configuration (defaults included), not the raw input.
    const [stored] = await db.query<{ config: unknown }>('SELECT config FROM assistant_versions WHERE assistant_id = $1::uuid', [assistant.id]);
    expect(JSON.stringify(stored?.config)).toContain('"silenceMs":500');
  });

  it('rejects an invalid configuration and one holding a secret, storing nothing', async () => {
    const invalid = await rejection(store.create({ projectId, config: { ...CONFIG, prompt: '' } }));
    expect(invalid.code).toBe('ASSISTANT_CONFIG_INVALID');
    expect(invalid.issues.join('\n')).toMatch(/prompt/);
    const secret = await rejection(store.create({ projectId, config: { ...CONFIG, llm: { provider: 'openai', options: { apiKey: 'sk-live-123' } } } }));
    expect(secret.message).toMatch(/llm\.options\.apiKey: "apiKey" looks like a secret/);
    expect(await count('assistants')).toBe(0);
    expect(await store.list(projectId)).toEqual([]);
  });

  it('update saves a new immutable version; a call keeps reading the version it pinned', async () => {
    const v1 = await store.create({ projectId, config: CONFIG });
    const result = await store.update(v1.id, { ...CONFIG, name: 'Front desk', greeting: 'Hello!' });
    if (result.outcome !== 'updated') throw new Error(result.outcome);
    expect(result.assistant).toMatchObject({ id: v1.id, version: 2, latestVersion: 2, name: 'Front desk' });
    expect(result.assistant.config.greeting).toBe('Hello!');

    expect((await store.get(v1.id))?.version).toBe(2);
    const pinned = await store.get(v1.id, 1);
    expect(pinned).toMatchObject({ version: 1, latestVersion: 2, name: 'Front desk' });
    expect(pinned?.config).toEqual(v1.config);
    expect(pinned?.config.greeting).toBe('');
    expect(await store.get(v1.id, 3)).toBeUndefined();
    expect((await store.versions(v1.id)).map((v) => v.version)).toEqual([1, 2]);

    // An invalid update changes nothing.
    await rejection(store.update(v1.id, { ...CONFIG, stt: { provider: '' } }));
    expect((await store.get(v1.id))?.version).toBe(2);
  });

  it('update with expectedVersion is a compare-and-set; unknown ids are unknown', async () => {
    const a = await store.create({ projectId, config: CONFIG });
    expect((await store.update(a.id, CONFIG, { expectedVersion: 1 })).outcome).toBe('updated');
    expect(await store.update(a.id, CONFIG, { expectedVersion: 1 })).toEqual({ outcome: 'conflict', latestVersion: 2 });
    expect((await store.update(crypto.randomUUID(), CONFIG)).outcome).toBe('unknown');
    expect((await store.update('nope', CONFIG)).outcome).toBe('unknown');
  });

  it('concurrent updates each get their own version number', async () => {
    const a = await store.create({ projectId, config: CONFIG });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.update(a.id, { ...CONFIG, greeting: `hi ${i}` })));
    const versions = results.map((r) => (r.outcome === 'updated' ? r.assistant.version : -1)).sort((x, y) => x - y);
    expect(versions).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect((await store.get(a.id))?.latestVersion).toBe(11);
    expect(await store.versions(a.id)).toHaveLength(11);
  });

  it('lists the live assistants of a project at their latest version', async () => {
    const a = await store.create({ projectId, config: CONFIG });
    const b = await store.create({ projectId, config: { ...CONFIG, name: 'Sales' } });
    await store.update(b.id, { ...CONFIG, name: 'Sales 2' });
    const other = crypto.randomUUID();
    await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [other, 'Other']);
    await store.create({ projectId: other, config: CONFIG });
    const list = await store.list(projectId);
    expect(list.map((x) => [x.id, x.name, x.version])).toEqual([
      [a.id, 'Receptionist', 1],
      [b.id, 'Sales 2', 2],
    ]);
  });

  it('soft delete hides an assistant but keeps its pinned versions readable', async () => {
    const a = await store.create({ projectId, config: CONFIG });
    expect(await store.delete(a.id)).toBe(true);
    expect(await store.delete(a.id)).toBe(false);
    expect(await store.get(a.id)).toBeUndefined();
    expect(await store.list(projectId)).toEqual([]);
    const pinned = await store.get(a.id, 1);
    expect(pinned?.deletedAt).toBeInstanceOf(Date);
    expect((await store.update(a.id, CONFIG)).outcome).toBe('unknown');
  });

  it('a stored version the schema no longer accepts is reported with its id and version', async () => {
    const a = await store.create({ projectId, config: CONFIG });
    await db.query(`UPDATE assistant_versions SET config = config - 'prompt' WHERE assistant_id = $1::uuid`, [a.id]);
    const error = await rejection(store.get(a.id));
    expect(error.code).toBe('ASSISTANT_STORED_CONFIG_INVALID');
    expect(error.message).toContain(`assistant ${a.id} version 1`);
  });
});
