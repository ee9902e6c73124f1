import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { loadSecrets } from '../../media-node/config/secrets';
import { ConfigError } from '../../shared/contracts/errors';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'node-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('environment', () => {
  it('fills defaults and treats empty values as unset', () => {
    const env = parseNodeEnv({ DATABASE_URL: '', LOG_LEVEL: 'debug' });
    expect(env).toMatchObject({ DATA_DIR: '.data', MIGRATE: 'off', LOG_LEVEL: 'debug' });
    expect(env.DATABASE_URL).toBeUndefined();
  });

  it('lists every bad variable by name in one error', () => {
    let error: unknown;
    try {
      parseNodeEnv({ DATABASE_URL: 'mysql://x', REDIS_URL: 'not a url', SECRET_KEY: 'short', MIGRATE: 'sometimes' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.map((i) => i.split(':')[0]).sort();
    expect(issues).toEqual(['DATABASE_URL', 'MIGRATE', 'REDIS_URL', 'SECRET_KEY']);
  });
});

describe('secrets', () => {
  it('on embedded defaults, generates SECRET_KEY and INTERNAL_SECRET once (mode 0600) and reuses them', async () => {
    const env = parseNodeEnv({ DATA_DIR: dir });
    const first = await loadSecrets(env);
    expect(first.secretKey.length).toBeGreaterThanOrEqual(32);
    expect(first.internalSecret).not.toBe(first.secretKey);
    const file = join(dir, 'secrets.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = await loadSecrets(env);
    expect(second).toMatchObject({ secretKey: first.secretKey, internalSecret: first.internalSecret });
    expect(JSON.parse(await readFile(file, 'utf8')).SECRET_KEY).toBe(first.secretKey);
  });

  it('configured values win over the generated ones', async () => {
    const key = 'k'.repeat(40);
    const secrets = await loadSecrets(parseNodeEnv({ DATA_DIR: dir, SECRET_KEY: key }));
    expect(secrets.secretKey).toBe(key);
  });

  it('with DATABASE_URL both must be set: a clear error names the missing ones', async () => {
    const env = parseNodeEnv({ DATA_DIR: dir, DATABASE_URL: 'postgres://u@db/x', SECRET_KEY: 's'.repeat(40) });
    await expect(loadSecrets(env)).rejects.toThrow(/SECRETS_REQUIRED: INTERNAL_SECRET must be set when DATABASE_URL is set/);
  });
});

describe('npm run db:migrate', () => {
  it('migrates the embedded database in DATA_DIR and is idempotent', async () => {
    const run = () =>
      promisify(execFile)('npx', ['tsx', 'media-node/db/migrate-cli.ts'], { env: { ...process.env, DATA_DIR: dir, DATABASE_URL: '' }, timeout: 120_000 });
    const first = await run();
    expect(first.stdout).toMatch(/pglite: applied 1 migration\(s\) \(001_core\.sql\)|pglite: applied \d+ migration/);
    const second = await run();
    expect(second.stdout).toMatch(/pglite: applied 0 migration\(s\); \d+ already applied/);
  }, 180_000);

  it('fails with a clear message when the database is unreachable', async () => {
    const result = await promisify(execFile)('npx', ['tsx', 'media-node/db/migrate-cli.ts'], {
      env: { ...process.env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' },
      timeout: 120_000,
    }).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(1);
    expect((result as { stderr: string }).stderr).toMatch(/DATABASE_UNAVAILABLE/);
  }, 180_000);
});
