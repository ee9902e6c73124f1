import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/contracts/errors';
import { resolveChain, createRegistry, type Registrable } from '../../shared/providers/registry';
import { createCredentialResolver, providerEnvName, providerSecret } from '../../shared/store/credential-resolver';
import { createCredentialStore, type CredentialStore } from '../../shared/store/credentials';
import { StoreError } from '../../shared/store/errors';
import { createSecretBox, type SecretBox } from '../../shared/store/secret-box';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from './backends';

const SECRET_KEY = 'test-secret-key-0123456789abcdef';
const PLAINTEXT = 'dg_live_3f9a8b7c6d5e4f3a2b1c';

async function storeError(promise: Promise<unknown>): Promise<StoreError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StoreError);
  return error as StoreError;
}

describe('secret box (AES-256-GCM, HKDF-SHA256 key from SECRET_KEY)', () => {
  it('round-trips, uses a fresh 12-byte IV per seal and a stable key id per SECRET_KEY', async () => {
    const box = await createSecretBox(SECRET_KEY);
    const a = await box.seal(PLAINTEXT, 'ctx');
    const b = await box.seal(PLAINTEXT, 'ctx');
    expect(a.iv).toHaveLength(12);
    expect(a.iv).not.toEqual(b.iv);
    expect(a.ciphertext).not.toEqual(b.ciphertext);
    expect(a.ciphertext).toHaveLength(PLAINTEXT.length + 16); // + GCM tag
    expect(await box.open(a, 'ctx')).toBe(PLAINTEXT);
    expect((await createSecretBox(SECRET_KEY)).keyId).toBe(box.keyId);
    expect(box.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect((await createSecretBox(`${SECRET_KEY}x`)).keyId).not.toBe(box.keyId);
  });

  it('refuses another AAD, a flipped bit and a weak SECRET_KEY', async () => {
    const box = await createSecretBox(SECRET_KEY);
    const sealed = await box.seal(PLAINTEXT, 'credential:a');
    expect((await storeError(box.open(sealed, 'credential:b'))).code).toBe('CREDENTIALS_CORRUPT');
    const flipped = new Uint8Array(sealed.ciphertext);
    flipped[0]! ^= 1;
    expect((await storeError(box.open({ ...sealed, ciphertext: flipped }, 'credential:a'))).code).toBe('CREDENTIALS_CORRUPT');
    await expect(createSecretBox('short')).rejects.toBeInstanceOf(ConfigError);
  });
});

describe.each(sqlBackends())('credentials on $name', (backend) => {
  let db: SqlClient;
  let box: SecretBox;
  let store: CredentialStore;
  let projectId: string;

  beforeAll(async () => {
    db = await backend.open();
    box = await createSecretBox(SECRET_KEY);
    store = createCredentialStore(db, box);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    projectId = crypto.randomUUID();
    await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'Acme']);
  });

  it('round-trips a secret; the stored columns are not the plaintext; metadata never carries it', async () => {
    const info = await store.create({ projectId, provider: 'deepgram', name: 'dg-main', secret: PLAINTEXT });
    expect(info).toMatchObject({ projectId, provider: 'deepgram', name: 'dg-main', isDefault: true, keyId: box.keyId });
    expect(await store.resolve(projectId, 'deepgram')).toBe(PLAINTEXT);
    expect(await store.resolve(projectId, 'deepgram', 'dg-main')).toBe(PLAINTEXT);

    const [row] = await db.query<{ text: string; hex: string; iv_len: number; key_id: string }>(
      `SELECT row_to_json(c)::text AS text, encode(ciphertext, 'hex') AS hex, length(iv) AS iv_len, key_id FROM credentials c WHERE id = $1::uuid`,
      [info.id],
    );
    expect(row?.text).not.toContain(PLAINTEXT);
    expect(row?.hex).not.toContain(Array.from(new TextEncoder().encode(PLAINTEXT), (b) => b.toString(16).padStart(2, '0')).join(''));
    expect(row?.iv_len).toBe(12);
    expect(row?.key_id).toBe(box.keyId);

    expect(JSON.stringify(await store.list(projectId))).not.toContain(PLAINTEXT);
    expect(JSON.stringify(await store.get(projectId, 'dg-main'))).not.toContain(PLAINTEXT);
  });

  it('a wrong SECRET_KEY gives a clear error naming both key ids', async () => {
    await store.create({ projectId, provider: 'openai', name: 'oa', secret: 'sk-abc' });
    const otherBox = await createSecretBox('a-different-secret-key-9876543210');
    const wrong = createCredentialStore(db, otherBox);
    const error = await storeError(wrong.resolve(projectId, 'openai'));
    expect(error.code).toBe('CREDENTIALS_KEY_MISMATCH');
    expect(error.message).toBe(
      `CREDENTIALS_KEY_MISMATCH: credential "oa" (openai) of project ${projectId} was sealed with key ${box.keyId}, ` +
        `the configured SECRET_KEY is ${otherBox.keyId}. Set SECRET_KEY back to the key it was sealed with, or store the credential again.`,
    );
    expect(error.message).not.toContain('sk-abc');
    // Metadata still lists with the wrong key (nothing to decrypt).
    expect(await wrong.list(projectId)).toHaveLength(1);
  });

  it('a ciphertext copied into another row does not open there', async () => {
    const a = await store.create({ projectId, provider: 'deepgram', name: 'a', secret: 'secret-a' });
    const b = await store.create({ projectId, provider: 'cartesia', name: 'b', secret: 'secret-b' });
    await db.query('UPDATE credentials SET ciphertext = src.ciphertext, iv = src.iv FROM credentials src WHERE src.id = $1::uuid AND credentials.id = $2::uuid', [a.id, b.id]);
    expect((await storeError(store.resolve(projectId, 'cartesia'))).code).toBe('CREDENTIALS_CORRUPT');
  });

  it('one default per provider: the first becomes it, isDefault or setDefault moves it', async () => {
    const first = await store.create({ projectId, provider: 'openai', name: 'oa-1', secret: 'one' });
    const second = await store.create({ projectId, provider: 'openai', name: 'oa-2', secret: 'two' });
    expect([first.isDefault, second.isDefault]).toEqual([true, false]);
    expect(await store.resolve(projectId, 'openai')).toBe('one');
    expect(await store.resolve(projectId, 'openai', 'oa-2')).toBe('two');

    const third = await store.create({ projectId, provider: 'openai', name: 'oa-3', secret: 'three', isDefault: true });
    expect(third.isDefault).toBe(true);
    expect(await store.resolve(projectId, 'openai')).toBe('three');
    expect((await store.setDefault(projectId, 'oa-2'))?.isDefault).toBe(true);
    expect(await store.resolve(projectId, 'openai')).toBe('two');
    expect((await store.list(projectId)).filter((c) => c.isDefault).map((c) => c.name)).toEqual(['oa-2']);
    expect(await store.setDefault(projectId, 'missing')).toBeUndefined();

    const explicit = await store.create({ projectId, provider: 'elevenlabs', name: 'el', secret: 'x', isDefault: false });
    expect(explicit.isDefault).toBe(false);
    expect(await store.resolve(projectId, 'elevenlabs')).toBeUndefined();
  });

  it('concurrent creates for one provider leave exactly one default', async () => {
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => store.create({ projectId, provider: 'azure-speech-service', name: `az-${i}`, secret: `s${i}` })));
    expect(created.filter((c) => c.isDefault)).toHaveLength(1);
  });

  it('names are unique per project; unknown names and projects are clear errors', async () => {
    await store.create({ projectId, provider: 'deepgram', name: 'dg', secret: 'x' });
    expect((await storeError(store.create({ projectId, provider: 'cartesia', name: 'dg', secret: 'y' }))).code).toBe('CREDENTIAL_NAME_TAKEN');
    const missing = await storeError(store.resolve(projectId, 'deepgram', 'dg-typo'));
    expect(missing.code).toBe('CREDENTIAL_NOT_FOUND');
    expect(missing.message).toContain('"dg-typo"');
    expect((await storeError(store.create({ projectId: crypto.randomUUID(), provider: 'deepgram', name: 'x', secret: 'x' }))).code).toBe('PROJECT_UNKNOWN');
    expect(await store.resolve(projectId, 'sarvamai')).toBeUndefined();
  });

  it('rotate replaces the secret; delete removes the credential', async () => {
    await store.create({ projectId, provider: 'deepgram', name: 'dg', secret: 'old' });
    const rotated = await store.rotate(projectId, 'dg', 'new');
    expect(rotated?.isDefault).toBe(true);
    expect(await store.resolve(projectId, 'deepgram')).toBe('new');
    expect(await store.rotate(projectId, 'missing', 'x')).toBeUndefined();
    expect(await store.delete(projectId, 'dg')).toBe(true);
    expect(await store.delete(projectId, 'dg')).toBe(false);
    expect(await store.resolve(projectId, 'deepgram')).toBeUndefined();
  });

  it('the provider registry resolver: named → project default → environment → none', async () => {
    await store.create({ projectId, provider: 'deepgram', name: 'dg-default', secret: 'project-default' });
    await store.create({ projectId, provider: 'deepgram', name: 'dg-alt', secret: 'project-named' });
    const env = { DEEPGRAM_API_KEY: 'from-env-dg', CARTESIA_API_KEY: 'from-env-cartesia', GOOGLE_SPEECH_SERVICE_API_KEY: 'g', MY_LLM_KEY: 'custom' };
    const resolver = createCredentialResolver(store, projectId, { env, envNames: { 'my-llm': 'MY_LLM_KEY' } });
    expect(await resolver.resolve('deepgram', 'dg-alt')).toBe('project-named');
    expect(await resolver.resolve('deepgram', undefined)).toBe('project-default');
    expect(await resolver.resolve('cartesia', undefined)).toBe('from-env-cartesia');
    expect(await resolver.resolve('google-speech-service', undefined)).toBe('g');
    expect(await resolver.resolve('my-llm', undefined)).toBe('custom');
    expect(await resolver.resolve('elevenlabs', undefined)).toBeUndefined();
    await expect(resolver.resolve('cartesia', 'missing')).rejects.toThrow(/CREDENTIAL_NOT_FOUND/);
    expect(providerEnvName('google-speech-service')).toBe('GOOGLE_SPEECH_SERVICE_API_KEY');

    // Through resolveChain, as a call start does: the block's fallback gets its own secret.
    const registry = createRegistry<Registrable>('stt');
    registry.register({ id: 'deepgram' });
    registry.register({ id: 'cartesia' });
    type Block = { provider: string; credential?: string; options: Record<string, unknown> };
    const block: Block & { fallbacks: Block[] } = { provider: 'deepgram', credential: 'dg-alt', options: {}, fallbacks: [{ provider: 'cartesia', options: {} }] };
    const chain = await resolveChain(block, registry, resolver);
    expect(chain.map((c) => c.apiKey)).toEqual(['project-named', 'from-env-cartesia']);
  });
});

describe('secrets handed to providers', () => {
  it('a REST-stored credential object yields its apiKey; other text passes through unchanged', () => {
    expect(providerSecret('{"apiKey":"dg-123"}')).toBe('dg-123');
    expect(providerSecret('{"api_key":"x-1"}')).toBe('x-1');
    expect(providerSecret('plain-key')).toBe('plain-key');
    expect(providerSecret('{"accountSid":"AC1","authToken":"t"}')).toBe('{"accountSid":"AC1","authToken":"t"}');
    expect(providerSecret('{not json')).toBe('{not json');
    expect(providerSecret(undefined)).toBeUndefined();
  });
});
