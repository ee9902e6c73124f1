import { StoreError } from './errors';
import { isUuid, onlyRow, toBoolean, toDate } from './rows';
import type { SecretBox } from './secret-box';
import type { SqlClient } from './sql';
import { base64ToBytes, bytesToBase64 } from './tokens';

/**
 * Provider credentials per project, named, encrypted at rest with the SecretBox (AES-256-GCM, key from
 * SECRET_KEY). `ciphertext` holds the sealed JSON `{"secret": "..."}`, bound (AAD) to its project and row id.
 * Only `resolve` returns a plaintext secret, for a call about to use it; `get`/`list` return metadata.
 *
 * One default credential per (project, provider): the first one stored for a provider becomes its default
 * unless `isDefault: false`; `isDefault: true` moves the default to the new one. Writes of one project are
 * serialised by a row lock on the project, so concurrent creates never produce two defaults.
 */

export interface CredentialInfo {
  readonly id: string;
  readonly projectId: string;
  readonly provider: string;
  readonly name: string;
  readonly isDefault: boolean;
  /** The SECRET_KEY fingerprint that sealed it. */
  readonly keyId: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface CreateCredentialInput {
  readonly projectId: string;
  readonly provider: string;
  readonly name: string;
  readonly secret: string;
  readonly isDefault?: boolean;
}

export interface CredentialStore {
  create(input: CreateCredentialInput): Promise<CredentialInfo>;
  /** Replaces the secret (sealed afresh with the current SECRET_KEY). */
  rotate(projectId: string, name: string, secret: string): Promise<CredentialInfo | undefined>;
  setDefault(projectId: string, name: string): Promise<CredentialInfo | undefined>;
  get(projectId: string, name: string): Promise<CredentialInfo | undefined>;
  list(projectId: string): Promise<CredentialInfo[]>;
  delete(projectId: string, name: string): Promise<boolean>;
  /**
   * The plaintext secret for a call: the named credential (a missing name is a StoreError, never a silent
   * fallback), else the project's default for `provider`, else undefined.
   */
  resolve(projectId: string, provider: string, name?: string): Promise<string | undefined>;
  /**
   * The plaintext secret of the credential `name` only when it is stored for `provider`; undefined when the
   * project has no such credential or it belongs to another provider. For callers that let configuration
   * choose a credential by name for a given use (http tools: provider `http`), so that a name cannot pull
   * another provider's secret (a Twilio auth token) into a request to an arbitrary URL.
   */
  resolveForProvider(projectId: string, provider: string, name: string): Promise<string | undefined>;
}

type Row = Record<string, unknown>;

const INFO_COLUMNS = 'id, project_id, provider, name, is_default, key_id, created_at, updated_at';
const SEALED_COLUMNS = `${INFO_COLUMNS}, encode(ciphertext, 'base64') AS ciphertext_b64, encode(iv, 'base64') AS iv_b64`;

function toInfo(row: Row): CredentialInfo {
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    provider: String(row.provider),
    name: String(row.name),
    isDefault: toBoolean(row.is_default),
    keyId: String(row.key_id),
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
  };
}

/** PostgreSQL's base64 output wraps lines every 76 characters. */
const fromBase64 = (value: unknown) => base64ToBytes(String(value).replace(/\s+/g, ''));

const aadFor = (projectId: string, credentialId: string) => `credential:${projectId}:${credentialId}`;

export function createCredentialStore(db: SqlClient, box: SecretBox): CredentialStore {
  async function seal(projectId: string, id: string, secret: string): Promise<[string, string, string]> {
    const sealed = await box.seal(JSON.stringify({ secret }), aadFor(projectId, id));
    return [bytesToBase64(sealed.ciphertext), bytesToBase64(sealed.iv), sealed.keyId];
  }

  async function open(row: Row): Promise<string> {
    const info = toInfo(row);
    const json = await box.open(
      { ciphertext: fromBase64(row.ciphertext_b64), iv: fromBase64(row.iv_b64), keyId: info.keyId },
      aadFor(info.projectId, info.id),
      `credential "${info.name}" (${info.provider}) of project ${info.projectId}`,
    );
    return (JSON.parse(json) as { secret: string }).secret;
  }

  /** Locks the project row for the rest of the transaction; a missing project is a StoreError. */
  async function lockProject(tx: SqlClient, projectId: string): Promise<void> {
    const rows = isUuid(projectId) ? await tx.query('SELECT id FROM projects WHERE id = $1::uuid FOR UPDATE', [projectId]) : [];
    if (rows.length === 0) throw new StoreError('PROJECT_UNKNOWN', `project ${projectId} does not exist`);
  }

  async function get(projectId: string, name: string): Promise<CredentialInfo | undefined> {
    if (!isUuid(projectId)) return undefined;
    const [row] = await db.query<Row>(`SELECT ${INFO_COLUMNS} FROM credentials WHERE project_id = $1::uuid AND name = $2::text`, [projectId, name]);
    return row ? toInfo(row) : undefined;
  }

  return {
    async create({ projectId, provider, name, secret, isDefault }) {
      const id = globalThis.crypto.randomUUID();
      const [ciphertext, iv, keyId] = await seal(projectId, id, secret);
      return db.transaction(async (tx) => {
        await lockProject(tx, projectId);
        const [taken] = await tx.query('SELECT 1 FROM credentials WHERE project_id = $1::uuid AND name = $2::text', [projectId, name]);
        if (taken) {
          throw new StoreError('CREDENTIAL_NAME_TAKEN', `project ${projectId} already has a credential named "${name}"; rotate it or choose another name`);
        }
        if (isDefault === true) {
          await tx.query('UPDATE credentials SET is_default = false, updated_at = now() WHERE project_id = $1::uuid AND provider = $2::text AND is_default', [
            projectId,
            provider,
          ]);
        }
        const rows = await tx.query<Row>(
          `INSERT INTO credentials (id, project_id, provider, name, is_default, ciphertext, iv, key_id)
           VALUES ($1::uuid, $2::uuid, $3::text, $4::text,
                   COALESCE($5::boolean, NOT EXISTS (SELECT 1 FROM credentials WHERE project_id = $2::uuid AND provider = $3::text AND is_default)),
                   decode($6::text, 'base64'), decode($7::text, 'base64'), $8::text)
           RETURNING ${INFO_COLUMNS}`,
          [id, projectId, provider, name, isDefault ?? null, ciphertext, iv, keyId],
        );
        return toInfo(onlyRow(rows, 'credential insert'));
      });
    },

    async rotate(projectId, name, secret) {
      const current = await get(projectId, name);
      if (!current) return undefined;
      const [ciphertext, iv, keyId] = await seal(projectId, current.id, secret);
      const [row] = await db.query<Row>(
        `UPDATE credentials SET ciphertext = decode($2::text, 'base64'), iv = decode($3::text, 'base64'), key_id = $4::text, updated_at = now()
          WHERE id = $1::uuid RETURNING ${INFO_COLUMNS}`,
        [current.id, ciphertext, iv, keyId],
      );
      return row ? toInfo(row) : undefined;
    },

    async setDefault(projectId, name) {
      if (!isUuid(projectId)) return undefined;
      return db.transaction(async (tx) => {
        await lockProject(tx, projectId);
        const [target] = await tx.query<Row>(`SELECT ${INFO_COLUMNS} FROM credentials WHERE project_id = $1::uuid AND name = $2::text`, [projectId, name]);
        if (!target) return undefined;
        await tx.query('UPDATE credentials SET is_default = false, updated_at = now() WHERE project_id = $1::uuid AND provider = $2::text AND is_default AND id <> $3::uuid', [
          projectId,
          target.provider,
          target.id,
        ]);
        const [row] = await tx.query<Row>(`UPDATE credentials SET is_default = true, updated_at = now() WHERE id = $1::uuid RETURNING ${INFO_COLUMNS}`, [target.id]);
        return row ? toInfo(row) : undefined;
      });
    },

    get,

    async list(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>(`SELECT ${INFO_COLUMNS} FROM credentials WHERE project_id = $1::uuid ORDER BY provider, name`, [projectId]);
      return rows.map(toInfo);
    },

    async delete(projectId, name) {
      if (!isUuid(projectId)) return false;
      const rows = await db.query('DELETE FROM credentials WHERE project_id = $1::uuid AND name = $2::text RETURNING id', [projectId, name]);
      return rows.length > 0;
    },

    async resolve(projectId, provider, name) {
      if (name !== undefined) {
        const [row] = isUuid(projectId)
          ? await db.query<Row>(`SELECT ${SEALED_COLUMNS} FROM credentials WHERE project_id = $1::uuid AND name = $2::text`, [projectId, name])
          : [];
        if (!row) {
          throw new StoreError(
            'CREDENTIAL_NOT_FOUND',
            `the ${provider} provider block names credential "${name}", which project ${projectId} does not have; store it or remove "credential" from the block`,
          );
        }
        return open(row);
      }
      if (!isUuid(projectId)) return undefined;
      const [row] = await db.query<Row>(`SELECT ${SEALED_COLUMNS} FROM credentials WHERE project_id = $1::uuid AND provider = $2::text AND is_default`, [
        projectId,
        provider,
      ]);
      return row ? open(row) : undefined;
    },

    async resolveForProvider(projectId, provider, name) {
      if (!isUuid(projectId)) return undefined;
      const [row] = await db.query<Row>(`SELECT ${SEALED_COLUMNS} FROM credentials WHERE project_id = $1::uuid AND provider = $2::text AND name = $3::text`, [
        projectId,
        provider,
        name,
      ]);
      return row ? open(row) : undefined;
    },
  };
}
