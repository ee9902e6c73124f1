import { parseAssistantConfig, type AssistantConfig } from '../config/assistant';
import { ConfigError } from '../contracts/errors';
import { isUuid, jsonParam, onlyRow, toDate, toDateOrUndefined, toNumber } from './rows';
import type { SqlClient } from './sql';

/**
 * Assistants with versioned configuration. Every `create`/`update` validates the configuration with the
 * foundation's schema (which also rejects secrets in provider options) and stores the parsed result (defaults
 * filled in) as a new immutable version; a call pins the version it started with (`get(id, version)`).
 *
 * The assistant's `name` is the configuration's `name`; the column on `assistants` mirrors the latest version
 * for listings. Stored versions are parsed again when read, so defaults added to the schema later reach old
 * versions too; a stored version the schema no longer accepts is a ConfigError naming it.
 */

export interface Assistant {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  /** The version this object carries (`config`); the latest unless a version was asked for. */
  readonly version: number;
  readonly latestVersion: number;
  readonly config: AssistantConfig;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** When this version was saved. */
  readonly versionCreatedAt: Date;
  readonly deletedAt?: Date;
}

export interface AssistantVersionInfo {
  readonly version: number;
  readonly createdAt: Date;
}

export type UpdateAssistantResult =
  | { readonly outcome: 'updated'; readonly assistant: Assistant }
  /** No such assistant, or it was deleted. */
  | { readonly outcome: 'unknown' }
  /** `expectedVersion` was given and another update saved a newer version first. */
  | { readonly outcome: 'conflict'; readonly latestVersion: number };

export interface AssistantStore {
  /** Validates `config` (a ConfigError lists every problem) and saves it as version 1. */
  create(input: { readonly projectId: string; readonly config: unknown }): Promise<Assistant>;
  /** Saves `config` as the next version; with `expectedVersion`, only if that is still the latest. */
  update(id: string, config: unknown, options?: { readonly expectedVersion?: number }): Promise<UpdateAssistantResult>;
  /**
   * Without `version`: the latest version of a live (not deleted) assistant. With `version`: that pinned
   * version, also of a deleted assistant (a call may still run on it; `deletedAt` says so).
   */
  get(id: string, version?: number): Promise<Assistant | undefined>;
  versions(id: string): Promise<AssistantVersionInfo[]>;
  /** Live assistants of a project, oldest first, each at its latest version. */
  list(projectId: string): Promise<Assistant[]>;
  /** Soft delete: hidden from `get(id)` and `list`; pinned versions stay readable. */
  delete(id: string): Promise<boolean>;
}

type Row = Record<string, unknown>;

function toAssistant(row: Row): Assistant {
  const id = String(row.id);
  const version = toNumber(row.version, 'version');
  let config: AssistantConfig;
  try {
    config = parseAssistantConfig(row.config);
  } catch (error) {
    const issues = error instanceof ConfigError ? error.issues : [String(error)];
    throw new ConfigError(
      'ASSISTANT_STORED_CONFIG_INVALID',
      `assistant ${id} version ${version} no longer passes the configuration schema; save a corrected version`,
      issues,
    );
  }
  return {
    id,
    projectId: String(row.project_id),
    name: String(row.name),
    version,
    latestVersion: toNumber(row.latest_version, 'latest_version'),
    config,
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
    versionCreatedAt: toDate(row.version_created_at, 'version_created_at'),
    deletedAt: toDateOrUndefined(row.deleted_at),
  };
}

const SELECT_WITH_VERSION = `
  SELECT a.*, v.version, v.config, v.created_at AS version_created_at
    FROM assistants a JOIN assistant_versions v ON v.assistant_id = a.id`;

export function createAssistantStore(db: SqlClient): AssistantStore {
  return {
    async create({ projectId, config }) {
      const parsed = parseAssistantConfig(config);
      const rows = await db.query<Row>(
        `WITH created AS (
           INSERT INTO assistants (id, project_id, name) VALUES ($1::uuid, $2::uuid, $3::text) RETURNING *
         ), version AS (
           INSERT INTO assistant_versions (assistant_id, version, config)
           SELECT id, 1, $4::text::jsonb FROM created RETURNING *
         )
         SELECT created.*, version.version, version.config, version.created_at AS version_created_at
           FROM created JOIN version ON version.assistant_id = created.id`,
        [globalThis.crypto.randomUUID(), projectId, parsed.name, jsonParam(parsed)],
      );
      return toAssistant(onlyRow(rows, 'assistant insert'));
    },

    async update(id, config, options = {}) {
      const parsed = parseAssistantConfig(config);
      if (!isUuid(id)) return { outcome: 'unknown' };
      // One statement: the row lock on `assistants` orders concurrent updates, each gets its own version.
      const rows = await db.query<Row>(
        `WITH bumped AS (
           UPDATE assistants SET latest_version = latest_version + 1, name = $2::text, updated_at = now()
            WHERE id = $1::uuid AND deleted_at IS NULL AND ($4::int IS NULL OR latest_version = $4::int)
           RETURNING *
         ), version AS (
           INSERT INTO assistant_versions (assistant_id, version, config)
           SELECT id, latest_version, $3::text::jsonb FROM bumped RETURNING *
         )
         SELECT bumped.*, version.version, version.config, version.created_at AS version_created_at
           FROM bumped JOIN version ON version.assistant_id = bumped.id`,
        [id, parsed.name, jsonParam(parsed), options.expectedVersion ?? null],
      );
      const [row] = rows;
      if (row) return { outcome: 'updated', assistant: toAssistant(row) };
      const [current] = await db.query<Row>('SELECT latest_version FROM assistants WHERE id = $1::uuid AND deleted_at IS NULL', [id]);
      return current ? { outcome: 'conflict', latestVersion: toNumber(current.latest_version) } : { outcome: 'unknown' };
    },

    async get(id, version) {
      if (!isUuid(id)) return undefined;
      const [row] =
        version === undefined
          ? await db.query<Row>(`${SELECT_WITH_VERSION} AND v.version = a.latest_version WHERE a.id = $1::uuid AND a.deleted_at IS NULL`, [id])
          : await db.query<Row>(`${SELECT_WITH_VERSION} AND v.version = $2::int WHERE a.id = $1::uuid`, [id, version]);
      return row ? toAssistant(row) : undefined;
    },

    async versions(id) {
      if (!isUuid(id)) return [];
      const rows = await db.query<Row>('SELECT version, created_at FROM assistant_versions WHERE assistant_id = $1::uuid ORDER BY version', [id]);
      return rows.map((r) => ({ version: toNumber(r.version), createdAt: toDate(r.created_at) }));
    },

    async list(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>(
        `${SELECT_WITH_VERSION} AND v.version = a.latest_version
          WHERE a.project_id = $1::uuid AND a.deleted_at IS NULL
          ORDER BY a.created_at, a.id`,
        [projectId],
      );
      return rows.map(toAssistant);
    },

    async delete(id) {
      if (!isUuid(id)) return false;
      const rows = await db.query('UPDATE assistants SET deleted_at = now(), updated_at = now() WHERE id = $1::uuid AND deleted_at IS NULL RETURNING id', [id]);
      return rows.length > 0;
    },
  };
}
