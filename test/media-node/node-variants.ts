import { createPostgresClient } from '../../media-node/db/postgres-client';

/** A way to run a whole media node in a test: embedded defaults, or PostgreSQL (+ Redis) like production. */
export interface NodeVariant {
  readonly name: string;
  /** Env additions for a node in `dataDir`, and a cleanup for whatever the variant created. */
  prepare(): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
}

const embedded: NodeVariant = {
  name: 'PGlite + memory cache',
  prepare: async () => ({ env: { DATABASE_URL: '' }, cleanup: async () => undefined }),
};

function production(databaseUrl: string, redisUrl: string | undefined): NodeVariant {
  return {
    name: redisUrl ? 'PostgreSQL + Redis' : 'PostgreSQL + memory cache',
    async prepare() {
      // A schema of its own, so parallel suites and earlier runs never meet.
      const schema = `e2e_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
      const admin = createPostgresClient(databaseUrl, { max: 1 });
      try {
        await admin.exec(`CREATE SCHEMA ${schema}`);
      } catch (error) {
        await admin.close();
        throw new Error(`TEST_DATABASE_URL=${databaseUrl} is unreachable or refused: ${(error as Error).message}`, { cause: error });
      }
      const secret = crypto.randomUUID().repeat(2);
      return {
        env: {
          DATABASE_URL: databaseUrl,
          DATABASE_SCHEMA: schema,
          MIGRATE: 'auto',
          SECRET_KEY: secret,
          INTERNAL_SECRET: `${secret}-internal`,
          ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
        },
        async cleanup() {
          await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
          await admin.close();
        },
      };
    },
  };
}

/**
 * Embedded defaults always; PostgreSQL (and Redis when TEST_REDIS_URL is set) when TEST_DATABASE_URL is.
 * Under CI=true a missing TEST_DATABASE_URL fails instead of quietly dropping the production variant.
 */
export function nodeVariants(): NodeVariant[] {
  const databaseUrl = process.env.TEST_DATABASE_URL?.trim();
  const redisUrl = process.env.TEST_REDIS_URL?.trim() || undefined;
  if (!databaseUrl) {
    if (process.env.CI === 'true') throw new Error('TEST_DATABASE_URL is not set: under CI=true the end-to-end suite must also run on PostgreSQL (.ci/run sets it)');
    console.warn('TEST_DATABASE_URL not set: the end-to-end suite runs on embedded defaults only');
    return [embedded];
  }
  return [embedded, production(databaseUrl, redisUrl)];
}
