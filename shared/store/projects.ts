import { ConfigError } from '../contracts/errors';
import { StoreError } from './errors';
import { isUuid, jsonParam, onlyRow, toDate, toDateOrUndefined, toStringArray, toStringOrUndefined } from './rows';
import type { SqlClient } from './sql';
import { randomToken, sha256Hex } from './tokens';

/**
 * Projects and their keys.
 *
 * - Secret API keys (`vr_sk_<43 base64url chars>`, 256 random bits): only the SHA-256 hex of a key is stored
 *   (a fast hash is enough for 256-bit random secrets: there is nothing to brute-force); the plain key is
 *   returned once, by `createApiKey`. `prefix` (`vr_sk_` + 4 characters) identifies a key in listings.
 * - The admin key: from ADMIN_API_KEY when configured (stored hashed; any other active admin key is revoked,
 *   so rotating the variable retires the old key), else generated at first start (`vr_ak_...`) and returned
 *   once for the caller to print. At most one admin key is active (a unique index), so nodes starting
 *   together generate one between them.
 * - Publishable keys (`vr_pk_...`) are public (browser widget) and stored as they are; they only start
 *   browser sessions from their allowed origins: exact origins (`https://app.example.com`), subdomain
 *   wildcards (`https://*.example.com`, subdomains only) or `*` (any http(s) origin).
 */

export const SECRET_KEY_PREFIX = 'vr_sk_';
export const ADMIN_KEY_PREFIX = 'vr_ak_';
export const PUBLISHABLE_KEY_PREFIX = 'vr_pk_';
/** `last_used_at` is written at most this often per key (every request would otherwise be a write). */
export const DEFAULT_LAST_USED_RESOLUTION_MS = 60_000;
const MAX_KEY_LENGTH = 512;

export interface Project {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
}

export interface ApiKeyInfo {
  readonly id: string;
  readonly kind: 'admin' | 'project';
  /** Absent for the admin key. */
  readonly projectId?: string;
  readonly name: string;
  readonly prefix: string;
  readonly createdAt: Date;
  readonly lastUsedAt?: Date;
  readonly revokedAt?: Date;
}

export interface CreatedApiKey {
  /** The plain key: shown once, never stored. */
  readonly key: string;
  readonly info: ApiKeyInfo;
}

export type Principal =
  | { readonly kind: 'admin'; readonly keyId: string }
  | { readonly kind: 'project'; readonly projectId: string; readonly keyId: string };

export interface PublishableKey {
  readonly id: string;
  readonly projectId: string;
  readonly key: string;
  readonly allowedOrigins: readonly string[];
  readonly createdAt: Date;
  readonly revokedAt?: Date;
}

export type OriginCheck =
  | { readonly ok: true; readonly projectId: string; readonly keyId: string }
  | { readonly ok: false; readonly reason: 'unknown-key' | 'revoked' | 'origin-not-allowed' };

export type AdminKeyResult =
  /** ADMIN_API_KEY is the active admin key. */
  | { readonly source: 'configured' }
  /** An admin key generated earlier is active (its plain text was printed then). */
  | { readonly source: 'existing' }
  /** Generated now: print it once. */
  | { readonly source: 'generated'; readonly key: string };

export interface ProjectStore {
  createProject(name: string): Promise<Project>;
  getProject(id: string): Promise<Project | undefined>;
  listProjects(): Promise<Project[]>;

  /** A new secret key for the project; the plain key is in the result only. */
  createApiKey(projectId: string, name: string): Promise<CreatedApiKey>;
  listApiKeys(projectId: string): Promise<ApiKeyInfo[]>;
  revokeApiKey(projectId: string, keyId: string): Promise<boolean>;
  /** The project (or admin) a secret key stands for; undefined for unknown or revoked keys. */
  authenticate(key: string): Promise<Principal | undefined>;
  /** At start-up: ADMIN_API_KEY when set (empty = unset), else the existing admin key or a generated one. */
  ensureAdminKey(configuredKey?: string): Promise<AdminKeyResult>;

  createPublishableKey(projectId: string, allowedOrigins: readonly string[]): Promise<PublishableKey>;
  listPublishableKeys(projectId: string): Promise<PublishableKey[]>;
  setAllowedOrigins(projectId: string, keyId: string, allowedOrigins: readonly string[]): Promise<PublishableKey | undefined>;
  revokePublishableKey(projectId: string, keyId: string): Promise<boolean>;
  /** May a browser on `origin` (the Origin header) start a session with this publishable key? */
  checkOrigin(publishableKey: string, origin: string | null | undefined): Promise<OriginCheck>;
}

export interface ProjectStoreOptions {
  readonly lastUsedResolutionMs?: number;
}

type Row = Record<string, unknown>;

function toProject(row: Row): Project {
  return { id: String(row.id), name: String(row.name), createdAt: toDate(row.created_at, 'created_at') };
}

function toApiKeyInfo(row: Row): ApiKeyInfo {
  return {
    id: String(row.id),
    kind: row.kind as ApiKeyInfo['kind'],
    projectId: toStringOrUndefined(row.project_id),
    name: String(row.name),
    prefix: String(row.prefix),
    createdAt: toDate(row.created_at, 'created_at'),
    lastUsedAt: toDateOrUndefined(row.last_used_at),
    revokedAt: toDateOrUndefined(row.revoked_at),
  };
}

const PUBLISHABLE_COLUMNS = 'id, project_id, key, array_to_json(allowed_origins) AS allowed_origins, created_at, revoked_at';

function toPublishableKey(row: Row): PublishableKey {
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    key: String(row.key),
    allowedOrigins: toStringArray(row.allowed_origins),
    createdAt: toDate(row.created_at, 'created_at'),
    revokedAt: toDateOrUndefined(row.revoked_at),
  };
}

/** The origin of an http(s) URL, lowercased, default port dropped; undefined for anything else. */
export function normaliseOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/** An allowed-origin pattern in canonical form, or undefined if it is not one. */
export function normaliseOriginPattern(pattern: string): string | undefined {
  const trimmed = pattern.trim().replace(/\/$/, '');
  if (trimmed === '*') return '*';
  const wildcard = /^(https?):\/\/\*\.(.+)$/i.exec(trimmed);
  const candidate = wildcard ? `${wildcard[1]}://wildcard.${wildcard[2]}` : trimmed;
  const origin = normaliseOrigin(candidate);
  // Only an origin: no path, query, fragment or credentials.
  if (!origin || origin.toLowerCase() !== candidate.toLowerCase()) return undefined;
  return wildcard ? origin.replace('://wildcard.', '://*.') : origin;
}

export function originAllowed(allowedOrigins: readonly string[], origin: string | null | undefined): boolean {
  const normalised = origin ? normaliseOrigin(origin) : undefined;
  if (!normalised) return false; // missing, "null" (sandboxed/file pages) or not http(s)
  return allowedOrigins.some((pattern) => {
    if (pattern === '*' || pattern === normalised) return true;
    const star = pattern.indexOf('://*.');
    if (star < 0) return false;
    const scheme = pattern.slice(0, star + 3);
    const suffix = pattern.slice(star + 4); // ".example.com[:port]"
    if (!normalised.startsWith(scheme) || !normalised.endsWith(suffix)) return false;
    const sub = normalised.slice(scheme.length, normalised.length - suffix.length);
    return /^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(sub);
  });
}

function validOrigins(allowedOrigins: readonly string[]): string[] {
  const bad = allowedOrigins.filter((o) => normaliseOriginPattern(o) === undefined);
  if (bad.length) {
    throw new ConfigError(
      'PUBLISHABLE_KEY_ORIGIN_INVALID',
      'allowed origins must be "*", an origin such as "https://app.example.com" or a wildcard such as "https://*.example.com"',
      bad.map((o) => `"${o}" is not an origin`),
    );
  }
  return [...new Set(allowedOrigins.map((o) => normaliseOriginPattern(o)!))];
}

export function createProjectStore(db: SqlClient, options: ProjectStoreOptions = {}): ProjectStore {
  const resolutionMs = Math.max(0, options.lastUsedResolutionMs ?? DEFAULT_LAST_USED_RESOLUTION_MS);

  const unknownProject = (projectId: string) =>
    new StoreError('PROJECT_UNKNOWN', `project ${projectId} does not exist`);

  return {
    async createProject(name) {
      const rows = await db.query<Row>('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text) RETURNING *', [globalThis.crypto.randomUUID(), name]);
      return toProject(onlyRow(rows, 'project insert'));
    },

    async getProject(id) {
      if (!isUuid(id)) return undefined;
      const [row] = await db.query<Row>('SELECT * FROM projects WHERE id = $1::uuid', [id]);
      return row ? toProject(row) : undefined;
    },

    async listProjects() {
      return (await db.query<Row>('SELECT * FROM projects ORDER BY created_at, id')).map(toProject);
    },

    async createApiKey(projectId, name) {
      if (!isUuid(projectId)) throw unknownProject(projectId);
      const key = randomToken(SECRET_KEY_PREFIX);
      // INSERT ... SELECT FROM projects: an unknown project inserts nothing instead of failing a foreign key.
      const rows = await db.query<Row>(
        `INSERT INTO api_keys (project_id, kind, name, prefix, key_hash)
         SELECT id, 'project', $2::text, $3::text, $4::text FROM projects WHERE id = $1::uuid
         RETURNING *`,
        [projectId, name, key.slice(0, SECRET_KEY_PREFIX.length + 4), await sha256Hex(key)],
      );
      const [row] = rows;
      if (!row) throw unknownProject(projectId);
      return { key, info: toApiKeyInfo(row) };
    },

    async listApiKeys(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>('SELECT * FROM api_keys WHERE project_id = $1::uuid ORDER BY created_at, id', [projectId]);
      return rows.map(toApiKeyInfo);
    },

    async revokeApiKey(projectId, keyId) {
      if (!isUuid(projectId) || !isUuid(keyId)) return false;
      const rows = await db.query(
        'UPDATE api_keys SET revoked_at = now() WHERE id = $1::uuid AND project_id = $2::uuid AND revoked_at IS NULL RETURNING id',
        [keyId, projectId],
      );
      return rows.length > 0;
    },

    async authenticate(key) {
      if (!key || key.length > MAX_KEY_LENGTH) return undefined;
      // One statement: find the active key and, at most once per resolution period, stamp last_used_at.
      const [row] = await db.query<Row>(
        `WITH found AS (
           SELECT id, kind, project_id, last_used_at FROM api_keys WHERE key_hash = $1::text AND revoked_at IS NULL
         ), touched AS (
           UPDATE api_keys SET last_used_at = now()
            WHERE id IN (SELECT id FROM found
                          WHERE last_used_at IS NULL OR last_used_at <= now() - $2::double precision * interval '1 millisecond')
           RETURNING id
         )
         SELECT id, kind, project_id FROM found`,
        [await sha256Hex(key), resolutionMs],
      );
      if (!row) return undefined;
      return row.kind === 'admin'
        ? { kind: 'admin', keyId: String(row.id) }
        : { kind: 'project', projectId: String(row.project_id), keyId: String(row.id) };
    },

    async ensureAdminKey(configuredKey) {
      // An empty variable (`ADMIN_API_KEY=`) counts as not configured.
      const key = configuredKey?.trim();
      if (key) {
        if (key.length < 16 || key.length > MAX_KEY_LENGTH) {
          throw new ConfigError('ADMIN_API_KEY_INVALID', `ADMIN_API_KEY must be 16 to ${MAX_KEY_LENGTH} characters (a generated vr_ak_ key is 49)`);
        }
        const hash = await sha256Hex(key);
        await db.transaction(async (tx) => {
          await tx.query(`UPDATE api_keys SET revoked_at = now() WHERE kind = 'admin' AND revoked_at IS NULL AND key_hash <> $1::text`, [hash]);
          // The prefix of an operator-chosen key would reveal part of it: store a label instead.
          await tx.query(
            `INSERT INTO api_keys (kind, name, prefix, key_hash) VALUES ('admin', 'ADMIN_API_KEY', '(ADMIN_API_KEY)', $1::text)
             ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL WHERE api_keys.kind = 'admin'`,
            [hash],
          );
        });
        return { source: 'configured' };
      }
      const generated = randomToken(ADMIN_KEY_PREFIX);
      const inserted = await db.query(
        `INSERT INTO api_keys (kind, name, prefix, key_hash) VALUES ('admin', 'generated admin key', $1::text, $2::text)
         ON CONFLICT DO NOTHING RETURNING id`,
        [generated.slice(0, ADMIN_KEY_PREFIX.length + 4), await sha256Hex(generated)],
      );
      return inserted.length > 0 ? { source: 'generated', key: generated } : { source: 'existing' };
    },

    async createPublishableKey(projectId, allowedOrigins) {
      const origins = validOrigins(allowedOrigins);
      if (!isUuid(projectId)) throw unknownProject(projectId);
      const rows = await db.query<Row>(
        `INSERT INTO publishable_keys (project_id, key, allowed_origins)
         SELECT id, $2::text, ARRAY(SELECT jsonb_array_elements_text($3::text::jsonb)) FROM projects WHERE id = $1::uuid
         RETURNING ${PUBLISHABLE_COLUMNS}`,
        [projectId, randomToken(PUBLISHABLE_KEY_PREFIX), jsonParam(origins)],
      );
      const [row] = rows;
      if (!row) throw unknownProject(projectId);
      return toPublishableKey(row);
    },

    async listPublishableKeys(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>(`SELECT ${PUBLISHABLE_COLUMNS} FROM publishable_keys WHERE project_id = $1::uuid ORDER BY created_at, id`, [projectId]);
      return rows.map(toPublishableKey);
    },

    async setAllowedOrigins(projectId, keyId, allowedOrigins) {
      const origins = validOrigins(allowedOrigins);
      if (!isUuid(projectId) || !isUuid(keyId)) return undefined;
      const [row] = await db.query<Row>(
        `UPDATE publishable_keys SET allowed_origins = ARRAY(SELECT jsonb_array_elements_text($3::text::jsonb))
          WHERE id = $1::uuid AND project_id = $2::uuid
         RETURNING ${PUBLISHABLE_COLUMNS}`,
        [keyId, projectId, jsonParam(origins)],
      );
      return row ? toPublishableKey(row) : undefined;
    },

    async revokePublishableKey(projectId, keyId) {
      if (!isUuid(projectId) || !isUuid(keyId)) return false;
      const rows = await db.query(
        'UPDATE publishable_keys SET revoked_at = now() WHERE id = $1::uuid AND project_id = $2::uuid AND revoked_at IS NULL RETURNING id',
        [keyId, projectId],
      );
      return rows.length > 0;
    },

    async checkOrigin(publishableKey, origin) {
      if (!publishableKey || publishableKey.length > MAX_KEY_LENGTH) return { ok: false, reason: 'unknown-key' };
      const [row] = await db.query<Row>(`SELECT ${PUBLISHABLE_COLUMNS} FROM publishable_keys WHERE key = $1::text`, [publishableKey]);
      if (!row) return { ok: false, reason: 'unknown-key' };
      const key = toPublishableKey(row);
      if (key.revokedAt) return { ok: false, reason: 'revoked' };
      if (!originAllowed(key.allowedOrigins, origin)) return { ok: false, reason: 'origin-not-allowed' };
      return { ok: true, projectId: key.projectId, keyId: key.id };
    },
  };
}
