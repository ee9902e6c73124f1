import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../shared/contracts/errors';
import type { NodeEnv } from './env';

export interface NodeSecrets {
  readonly secretKey: string;
  readonly internalSecret: string;
  /** Where generated secrets were kept, when any were generated. */
  readonly generatedIn?: string;
}

const SecretsFile = z.object({ SECRET_KEY: z.string().min(32), INTERNAL_SECRET: z.string().min(32) });

/**
 * SECRET_KEY and INTERNAL_SECRET. With DATABASE_URL (a shared database, several nodes) both must be set:
 * a key generated on one node could not open credentials sealed on another. On embedded defaults a missing
 * one is generated once into DATA_DIR/secrets.json (mode 0600) and reused on every later start.
 */
export async function loadSecrets(env: NodeEnv): Promise<NodeSecrets> {
  if (env.SECRET_KEY && env.INTERNAL_SECRET) return { secretKey: env.SECRET_KEY, internalSecret: env.INTERNAL_SECRET };
  if (env.DATABASE_URL) {
    const missing = [!env.SECRET_KEY && 'SECRET_KEY', !env.INTERNAL_SECRET && 'INTERNAL_SECRET'].filter(Boolean);
    throw new ConfigError(
      'SECRETS_REQUIRED',
      `${missing.join(' and ')} must be set when DATABASE_URL is set (every node must share them); generate one with \`openssl rand -base64 48\``,
    );
  }
  const file = join(env.DATA_DIR, 'secrets.json');
  let stored: z.output<typeof SecretsFile> | undefined;
  try {
    const parsed = SecretsFile.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (!parsed.success) throw new ConfigError('SECRETS_FILE_INVALID', `${file} is not a valid secrets file; move it away to generate new secrets (credentials sealed with the old key will not open)`);
    stored = parsed.data;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (!stored) {
    stored = { SECRET_KEY: randomBytes(48).toString('base64url'), INTERNAL_SECRET: randomBytes(48).toString('base64url') };
    await mkdir(env.DATA_DIR, { recursive: true, mode: 0o700 });
    // `wx`: never overwrite a file another process wrote in the meantime.
    await writeFile(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
  }
  return {
    secretKey: env.SECRET_KEY ?? stored.SECRET_KEY,
    internalSecret: env.INTERNAL_SECRET ?? stored.INTERNAL_SECRET,
    generatedIn: file,
  };
}
