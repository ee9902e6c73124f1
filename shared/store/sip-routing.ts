import { ConfigError } from '../contracts/errors';
import { formatIp, parseCidr, parseIp } from '../tools/ip';
import { StoreError, type StoreErrorCode } from './errors';
import { isUuid, jsonParam, onlyRow, toDate, toJson, toNumber, toStringArray, toStringOrUndefined } from './rows';
import type { SqlClient } from './sql';

/**
 * SIP routing: which assistant answers an inbound INVITE (by the Request-URI user, "the number"), which
 * trunks may deliver it, and where outbound calls go. Tables: infra/migrations/004_sip.sql.
 *
 * Numbers are unique across the deployment (an INVITE names no project) and normalised
 * (`normalizeSipNumber`): `+` with 2..15 digits (E.164), bare digits, or a lowercase SIP user token. A number
 * with and without its `+` is one number (carriers send either), so `candidatesForUser` tries both forms and
 * the database refuses both forms being held at once.
 *
 * A trunk only names credentials (provider `sip`, secret `{"username","password"}`); their secrets stay in
 * the credential store. Trunk writes, number assignments and trunk deletes of one project are serialised by a
 * row lock on the project, so a trunk cannot be deleted while a number is being pointed at it.
 *
 * Numbers of a soft-deleted assistant do not route and are free to be assigned again; a hard delete of the
 * assistant (or its project) removes them.
 */

// ---- numbers ------------------------------------------------------------------------------------------------

export type SipNumberCheck = { readonly ok: true; readonly number: string } | { readonly ok: false; readonly problem: string };

/** Visual separators of a written phone number ("+1 (415) 555-0123", "415.555.0123"). */
const NUMBER_SEPARATORS = /[\s()./-]/g;
/** RFC 3261 user unreserved characters, lowercase; `+` never first (a leading `+` means E.164). */
const USER_TOKEN = /^[a-z0-9._~!$&'*-][a-z0-9._~!$&'*+-]{0,63}$/;
const MAX_BARE_DIGITS = 32;
const MAX_INPUT_CHARS = 128;

const shown = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);

/** The stored form of a number or SIP user, or why it is none. Pure. */
export function normalizeSipNumber(text: string): SipNumberCheck {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, problem: 'a number cannot be empty' };
  if (trimmed.length > MAX_INPUT_CHARS) return { ok: false, problem: `${shown(trimmed)} is longer than ${MAX_INPUT_CHARS} characters` };
  const compact = trimmed.replace(NUMBER_SEPARATORS, '');
  if (compact.startsWith('+')) {
    const digits = compact.slice(1);
    if (!/^[0-9]+$/.test(digits)) return { ok: false, problem: `${shown(trimmed)}: "+" starts an E.164 number and must be followed by digits only` };
    if (digits.length < 2 || digits.length > 15) {
      return { ok: false, problem: `${shown(trimmed)} is not an E.164 number: "+" is followed by 2 to 15 digits, not ${digits.length}` };
    }
    return { ok: true, number: `+${digits}` };
  }
  if (/^[0-9]+$/.test(compact)) {
    if (compact.length > MAX_BARE_DIGITS) return { ok: false, problem: `${shown(trimmed)} has more than ${MAX_BARE_DIGITS} digits` };
    return { ok: true, number: compact };
  }
  const user = trimmed.toLowerCase();
  if (!USER_TOKEN.test(user)) {
    return {
      ok: false,
      problem: `${shown(trimmed)} is neither a phone number ("+14155550123", "14155550123") nor a SIP user (1 to 64 letters, digits or - _ . ! ~ * ' $ & +, not starting with +)`,
    };
  }
  return { ok: true, number: user };
}

/**
 * The lookup keys for an INVITE's Request-URI user part, in order: the normalised user itself, then the same
 * number with its `+` removed or added. Percent escapes are decoded and user parameters (`;npdi`,
 * `;phone-context=...`) dropped. Empty when the user cannot be a number.
 */
export function candidatesForUser(requestUriUser: string): string[] {
  let user = requestUriUser.split(';', 1)[0] ?? '';
  if (user.includes('%')) {
    try {
      user = decodeURIComponent(user);
    } catch {
      return [];
    }
  }
  const checked = normalizeSipNumber(user);
  if (!checked.ok) return [];
  const key = checked.number;
  if (key.startsWith('+')) return [key, key.slice(1)];
  if (/^[0-9]+$/.test(key)) {
    const plus = normalizeSipNumber(`+${key}`);
    return plus.ok ? [key, plus.number] : [key];
  }
  return [key];
}

// ---- addresses and hosts -------------------------------------------------------------------------------------

export type CidrCheck = { readonly ok: true; readonly cidr: string } | { readonly ok: false; readonly problem: string };

/**
 * An allow-list entry in canonical form: IPv4 or IPv6, with a prefix, or a bare address (= /32 or /128).
 * Host bits set below the prefix are refused (a typo more often than an intent).
 */
export function normalizeCidr(text: string): CidrCheck {
  const parsed = text.length <= 64 ? parseCidr(text) : undefined;
  if (!parsed || text.includes('%')) {
    return { ok: false, problem: `${shown(text)} is not an IPv4 or IPv6 address or CIDR range (e.g. "203.0.113.0/24", "198.51.100.7", "2001:db8::/32")` };
  }
  const network = new Uint8Array(parsed.bytes);
  for (let bit = parsed.prefix; bit < network.length * 8; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const canonical = `${formatIp(network)}/${parsed.prefix}`;
  if (network.some((b, i) => b !== parsed.bytes[i])) {
    return { ok: false, problem: `${shown(text)} has bits set after its /${parsed.prefix} prefix: did you mean "${canonical}"?` };
  }
  return { ok: true, cidr: canonical };
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A SIP host: a DNS name (lowercased) or an IP literal (IPv6 without brackets, compressed); undefined if neither. */
export function normalizeSipHost(text: string): string | undefined {
  const value = text.trim();
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (!bare.includes('%')) {
    const ip = parseIp(bare);
    if (ip) return formatIp(ip);
  }
  if (value !== bare) return undefined;
  const name = value.toLowerCase().replace(/\.$/, '');
  // All-numeric dotted text that failed to parse as IPv4 ("1.2.3.999") is a typo, not a host name.
  return HOSTNAME.test(name) && !/^[0-9.]+$/.test(name) ? name : undefined;
}

/** A SIP user part for From: unreserved and `+`, case kept (user parts compare case-sensitively). */
export const SIP_FROM_USER = /^[A-Za-z0-9._~!$&'*+-]{1,64}$/;
/** Trunk names follow credential names (edge/routes/credentials.ts). */
export const SIP_TRUNK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** A realm travels inside a quoted-string: printable ASCII without `"` and `\`. */
export const SIP_REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
export const MAX_SIP_TRUNK_CIDRS = 100;
export const MAX_SIP_NUMBERS_PER_ASSISTANT = 100;

/** The `{"username","password"}` secret of a `sip` credential, or undefined if the stored secret is not one. */
export function parseSipDigestSecret(secret: string | undefined): { readonly username: string; readonly password: string } | undefined {
  if (secret === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(secret);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { username, password } = value as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || username === '' || password === '') return undefined;
  return { username, password };
}

// ---- the store ------------------------------------------------------------------------------------------------

export interface SipTrunkInbound {
  /** Canonical CIDRs; a source inside one may send INVITEs (after digest too, when a credential is named). */
  readonly cidrs: readonly string[];
  /** The `sip` credential an INVITE must prove by digest; absent: no challenge. */
  readonly digestCredential?: string;
  /** 401 (WWW-Authenticate) or 407 (Proxy-Authenticate). */
  readonly challenge: 401 | 407;
  readonly realm?: string;
}

export interface SipTrunkOutbound {
  /** DNS name or IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** The `sip` credential to answer the carrier's digest challenge with. */
  readonly credential?: string;
  readonly fromUser?: string;
  readonly fromHost?: string;
}

export interface SipTrunk {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  readonly inbound: SipTrunkInbound;
  readonly outbound?: SipTrunkOutbound;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface SipTrunkInput {
  readonly inbound: {
    readonly cidrs?: readonly string[];
    readonly digestCredential?: string;
    readonly challenge?: 401 | 407;
    readonly realm?: string;
  };
  readonly outbound?: {
    readonly host: string;
    readonly port?: number;
    readonly credential?: string;
    readonly fromUser?: string;
    readonly fromHost?: string;
  };
}

export interface PutSipTrunkResult extends SipTrunk {
  /** True when the trunk did not exist before. */
  readonly created: boolean;
}

export interface SipNumber {
  readonly number: string;
  readonly projectId: string;
  readonly assistantId: string;
  readonly trunkId?: string;
  readonly trunkName?: string;
}

export interface SipNumberAssignment {
  readonly number: string;
  /** A trunk of the project by name: then only that trunk may deliver this number's calls. */
  readonly trunk?: string;
}

export interface InboundRoute {
  readonly number: SipNumber;
  /**
   * The trunks allowed to deliver this call: the number's own trunk when it names one, else every trunk of
   * the project (empty: no trunk configured, refuse the call).
   */
  readonly trunks: SipTrunk[];
}

export interface SipRoutingStore {
  /** Create or replace (same id) the trunk `name`; a ConfigError lists invalid input, PROJECT_UNKNOWN a missing project. */
  putTrunk(projectId: string, name: string, input: SipTrunkInput): Promise<PutSipTrunkResult>;
  getTrunk(projectId: string, name: string): Promise<SipTrunk | undefined>;
  /** By name. */
  listTrunks(projectId: string): Promise<SipTrunk[]>;
  /** False when there is no such trunk; StoreError TRUNK_IN_USE (naming the numbers) when numbers name it. */
  deleteTrunk(projectId: string, name: string): Promise<boolean>;
  /**
   * Replaces the assistant's numbers in one transaction. StoreError NUMBER_TAKEN (naming the number) when
   * another assistant holds one (in either form), TRUNK_NOT_FOUND for an unknown trunk name, ASSISTANT_UNKNOWN
   * when the assistant is not a live assistant of the project; a ConfigError for invalid or repeated numbers.
   */
  setNumbers(projectId: string, assistantId: string, numbers: readonly SipNumberAssignment[]): Promise<SipNumber[]>;
  /** By number. */
  listNumbers(projectId: string, assistantId: string): Promise<SipNumber[]>;
  /** Inbound routing: the first candidate that a live assistant holds, with the trunks that may deliver it. */
  resolveInbound(candidates: readonly string[]): Promise<InboundRoute | undefined>;
}

export type SipRoutingErrorCode = Extract<StoreErrorCode, 'NUMBER_TAKEN' | 'TRUNK_NOT_FOUND' | 'TRUNK_IN_USE' | 'ASSISTANT_UNKNOWN'>;

const sipError = (code: SipRoutingErrorCode, message: string) => new StoreError(code, message);

type Row = Record<string, unknown>;

const TRUNK_COLUMNS = `id, project_id, name, array_to_json(inbound_cidrs) AS inbound_cidrs, inbound_digest_credential, inbound_challenge,
  inbound_realm, outbound, created_at, updated_at`;

function toTrunk(row: Row): SipTrunk {
  const digestCredential = toStringOrUndefined(row.inbound_digest_credential);
  const realm = toStringOrUndefined(row.inbound_realm);
  const outbound = toJson<SipTrunkOutbound | null>(row.outbound);
  return {
    id: String(row.id),
    projectId: String(row.project_id),
    name: String(row.name),
    inbound: {
      cidrs: toStringArray(row.inbound_cidrs),
      ...(digestCredential === undefined ? {} : { digestCredential }),
      challenge: toNumber(row.inbound_challenge, 'inbound_challenge') === 407 ? 407 : 401,
      ...(realm === undefined ? {} : { realm }),
    },
    ...(outbound ? { outbound } : {}),
    createdAt: toDate(row.created_at, 'created_at'),
    updatedAt: toDate(row.updated_at, 'updated_at'),
  };
}

function toSipNumber(row: Row): SipNumber {
  const trunkId = toStringOrUndefined(row.trunk_id);
  const trunkName = toStringOrUndefined(row.trunk_name);
  return {
    number: String(row.number),
    projectId: String(row.project_id),
    assistantId: String(row.assistant_id),
    ...(trunkId === undefined ? {} : { trunkId }),
    ...(trunkName === undefined ? {} : { trunkName }),
  };
}

/** The trunk as stored, or a ConfigError listing every problem. */
function checkTrunk(name: string, input: SipTrunkInput): { inbound: SipTrunkInbound; outbound: SipTrunkOutbound | undefined } {
  const issues: string[] = [];
  if (!SIP_TRUNK_NAME.test(name)) issues.push('name: 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit');
  const rawCidrs = input.inbound.cidrs ?? [];
  if (rawCidrs.length > MAX_SIP_TRUNK_CIDRS) issues.push(`inbound.cidrs: at most ${MAX_SIP_TRUNK_CIDRS} entries`);
  const cidrs: string[] = [];
  for (const text of rawCidrs.slice(0, MAX_SIP_TRUNK_CIDRS)) {
    const checked = normalizeCidr(text);
    if (checked.ok) {
      if (!cidrs.includes(checked.cidr)) cidrs.push(checked.cidr);
    } else issues.push(`inbound.cidrs: ${checked.problem}`);
  }
  const { digestCredential, realm } = input.inbound;
  const challenge = input.inbound.challenge ?? 401;
  if (digestCredential !== undefined && !SIP_TRUNK_NAME.test(digestCredential)) issues.push('inbound.digestCredential: not a credential name');
  if (challenge !== 401 && challenge !== 407) issues.push('inbound.challenge: 401 or 407');
  if (realm !== undefined && !SIP_REALM.test(realm)) issues.push('inbound.realm: 1 to 128 printable ASCII characters without " or \\');
  if (cidrs.length === 0 && digestCredential === undefined && rawCidrs.length === 0) {
    issues.push('inbound: name allowed source addresses, a digest credential, or both (a trunk with neither would admit nobody)');
  }
  let outbound: SipTrunkOutbound | undefined;
  if (input.outbound) {
    const { port = 5060, credential, fromUser, fromHost } = input.outbound;
    const host = normalizeSipHost(input.outbound.host);
    const from = fromHost === undefined ? undefined : normalizeSipHost(fromHost);
    if (!host) issues.push(`outbound.host: ${shown(input.outbound.host)} is not a host name or IP address`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) issues.push('outbound.port: an integer from 1 to 65535');
    if (credential !== undefined && !SIP_TRUNK_NAME.test(credential)) issues.push('outbound.credential: not a credential name');
    if (fromUser !== undefined && !SIP_FROM_USER.test(fromUser)) issues.push('outbound.fromUser: 1 to 64 letters, digits or - _ . ! ~ * \' $ & +');
    if (fromHost !== undefined && !from) issues.push(`outbound.fromHost: ${shown(fromHost)} is not a host name or IP address`);
    if (host) {
      outbound = {
        host,
        port,
        ...(credential === undefined ? {} : { credential }),
        ...(fromUser === undefined ? {} : { fromUser }),
        ...(from === undefined ? {} : { fromHost: from }),
      };
    }
  }
  if (issues.length) throw new ConfigError('SIP_TRUNK_INVALID', `SIP trunk "${name}" is invalid`, issues);
  return {
    inbound: { cidrs, ...(digestCredential === undefined ? {} : { digestCredential }), challenge, ...(realm === undefined ? {} : { realm }) },
    outbound,
  };
}

/** Normalised assignments, or a ConfigError for invalid numbers and for one number listed twice (in any form). */
function checkAssignments(numbers: readonly SipNumberAssignment[]): { number: string; trunk: string | null }[] {
  const issues: string[] = [];
  if (numbers.length > MAX_SIP_NUMBERS_PER_ASSISTANT) issues.push(`at most ${MAX_SIP_NUMBERS_PER_ASSISTANT} numbers per assistant`);
  const out: { number: string; trunk: string | null }[] = [];
  const seen = new Map<string, string>();
  for (const { number, trunk } of numbers) {
    const checked = normalizeSipNumber(number);
    if (!checked.ok) {
      issues.push(checked.problem);
      continue;
    }
    const key = checked.number.replace(/^\+/, '');
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      issues.push(`${shown(number)} is listed twice (as ${shown(earlier)} too)`);
      continue;
    }
    seen.set(key, number);
    out.push({ number: checked.number, trunk: trunk ?? null });
  }
  if (issues.length) throw new ConfigError('SIP_NUMBER_INVALID', 'the numbers are invalid', issues);
  return out;
}

function isUniqueViolation(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '23505') return true;
  }
  return false;
}

/** `number` normalised numbers as one parameter for `ARRAY(SELECT jsonb_array_elements_text($n::text::jsonb))`. */
const TEXT_ARRAY = (n: number) => `ARRAY(SELECT jsonb_array_elements_text($${n}::text::jsonb))`;

export function createSipRoutingStore(db: SqlClient): SipRoutingStore {
  /** Locks the project row for the rest of the transaction; false when there is no such project. */
  async function lockProject(tx: SqlClient, projectId: string): Promise<boolean> {
    const rows = isUuid(projectId) ? await tx.query('SELECT id FROM projects WHERE id = $1::uuid FOR UPDATE', [projectId]) : [];
    return rows.length > 0;
  }

  const assistantUnknown = (projectId: string, assistantId: string) =>
    sipError('ASSISTANT_UNKNOWN', `assistant ${assistantId} is not a live assistant of project ${projectId}`);

  /** Who holds any form of `numbers` besides `assistantId` (live assistants only). */
  async function holders(tx: SqlClient, numbers: readonly string[], assistantId: string): Promise<Row[]> {
    return tx.query<Row>(
      `SELECT n.number, n.project_id, n.assistant_id FROM sip_numbers n
        WHERE ltrim(n.number, '+') = ANY(${TEXT_ARRAY(1)}) AND n.assistant_id <> $2::uuid ORDER BY n.number`,
      [jsonParam(numbers.map((n) => n.replace(/^\+/, ''))), assistantId],
    );
  }

  function numberTaken(projectId: string, wanted: readonly string[], holder: Row | undefined): StoreError {
    if (!holder) return sipError('NUMBER_TAKEN', 'one of the numbers was assigned elsewhere at the same time; send the request again');
    const held = String(holder.number);
    const asked = wanted.find((n) => n.replace(/^\+/, '') === held.replace(/^\+/, '')) ?? held;
    const form = asked === held ? '' : ` (held as ${held})`;
    const where =
      String(holder.project_id) === projectId
        ? `assistant ${String(holder.assistant_id)} of this project`
        : 'an assistant of another project (a number routes to one assistant in the whole deployment)';
    return sipError('NUMBER_TAKEN', `number ${asked}${form} is assigned to ${where}; remove it there first`);
  }

  async function listNumbersWith(tx: SqlClient, projectId: string, assistantId: string): Promise<SipNumber[]> {
    if (!isUuid(projectId) || !isUuid(assistantId)) return [];
    const rows = await tx.query<Row>(
      `SELECT n.number, n.project_id, n.assistant_id, n.trunk_id, t.name AS trunk_name
         FROM sip_numbers n LEFT JOIN sip_trunks t ON t.id = n.trunk_id
        WHERE n.project_id = $1::uuid AND n.assistant_id = $2::uuid ORDER BY n.number`,
      [projectId, assistantId],
    );
    return rows.map(toSipNumber);
  }

  return {
    async putTrunk(projectId, name, input) {
      const { inbound, outbound } = checkTrunk(name, input);
      const params = [
        projectId,
        name,
        jsonParam(inbound.cidrs),
        inbound.digestCredential ?? null,
        inbound.challenge,
        inbound.realm ?? null,
        outbound ? jsonParam(outbound) : null,
      ];
      return db.transaction(async (tx) => {
        if (!(await lockProject(tx, projectId))) throw new StoreError('PROJECT_UNKNOWN', `project ${projectId} does not exist`);
        const [updated] = await tx.query<Row>(
          `UPDATE sip_trunks SET inbound_cidrs = ${TEXT_ARRAY(3)}, inbound_digest_credential = $4::text, inbound_challenge = $5::smallint,
                  inbound_realm = $6::text, outbound = $7::text::jsonb, updated_at = now()
            WHERE project_id = $1::uuid AND name = $2::text RETURNING ${TRUNK_COLUMNS}`,
          params,
        );
        if (updated) return { ...toTrunk(updated), created: false };
        const inserted = await tx.query<Row>(
          `INSERT INTO sip_trunks (id, project_id, name, inbound_cidrs, inbound_digest_credential, inbound_challenge, inbound_realm, outbound)
           VALUES ($8::uuid, $1::uuid, $2::text, ${TEXT_ARRAY(3)}, $4::text, $5::smallint, $6::text, $7::text::jsonb)
           RETURNING ${TRUNK_COLUMNS}`,
          [...params, globalThis.crypto.randomUUID()],
        );
        return { ...toTrunk(onlyRow(inserted, 'sip trunk insert')), created: true };
      });
    },

    async getTrunk(projectId, name) {
      if (!isUuid(projectId)) return undefined;
      const [row] = await db.query<Row>(`SELECT ${TRUNK_COLUMNS} FROM sip_trunks WHERE project_id = $1::uuid AND name = $2::text`, [projectId, name]);
      return row ? toTrunk(row) : undefined;
    },

    async listTrunks(projectId) {
      if (!isUuid(projectId)) return [];
      const rows = await db.query<Row>(`SELECT ${TRUNK_COLUMNS} FROM sip_trunks WHERE project_id = $1::uuid ORDER BY name`, [projectId]);
      return rows.map(toTrunk);
    },

    async deleteTrunk(projectId, name) {
      return db.transaction(async (tx) => {
        if (!(await lockProject(tx, projectId))) return false;
        const [trunk] = await tx.query<Row>('SELECT id FROM sip_trunks WHERE project_id = $1::uuid AND name = $2::text', [projectId, name]);
        if (!trunk) return false;
        const users = await tx.query<Row>('SELECT number, count(*) OVER () AS total FROM sip_numbers WHERE trunk_id = $1::uuid ORDER BY number LIMIT 5', [trunk.id]);
        if (users.length > 0) {
          const total = toNumber(users[0]!.total, 'total');
          const named = users.map((u) => String(u.number)).join(', ');
          throw sipError(
            'TRUNK_IN_USE',
            `trunk "${name}" is named by ${total === 1 ? 'number' : `${total} numbers:`} ${named}${total > users.length ? ', …' : ''}; assign ${total === 1 ? 'it' : 'them'} without this trunk (or to another) first`,
          );
        }
        await tx.query('DELETE FROM sip_trunks WHERE id = $1::uuid', [trunk.id]);
        return true;
      });
    },

    async setNumbers(projectId, assistantId, numbers) {
      const wanted = checkAssignments(numbers);
      const wantedNumbers = wanted.map((w) => w.number);
      if (!isUuid(projectId) || !isUuid(assistantId)) throw assistantUnknown(projectId, assistantId);
      try {
        return await db.transaction(async (tx) => {
          if (!(await lockProject(tx, projectId))) throw new StoreError('PROJECT_UNKNOWN', `project ${projectId} does not exist`);
          const [assistant] = await tx.query(
            'SELECT id FROM assistants WHERE id = $1::uuid AND project_id = $2::uuid AND deleted_at IS NULL FOR UPDATE',
            [assistantId, projectId],
          );
          if (!assistant) throw assistantUnknown(projectId, assistantId);

          const trunkNames = [...new Set(wanted.flatMap((w) => (w.trunk === null ? [] : [w.trunk])))];
          if (trunkNames.length) {
            const found = await tx.query<Row>(`SELECT name FROM sip_trunks WHERE project_id = $1::uuid AND name = ANY(${TEXT_ARRAY(2)})`, [
              projectId,
              jsonParam(trunkNames),
            ]);
            const missing = trunkNames.find((n) => !found.some((row) => row.name === n));
            if (missing !== undefined) {
              throw sipError('TRUNK_NOT_FOUND', `a number names trunk "${missing}", which project ${projectId} does not have; create the trunk first or leave "trunk" out`);
            }
          }

          if (wanted.length) {
            // Numbers still held by soft-deleted assistants are free again.
            await tx.query(
              `DELETE FROM sip_numbers n USING assistants a
                WHERE a.id = n.assistant_id AND a.deleted_at IS NOT NULL AND ltrim(n.number, '+') = ANY(${TEXT_ARRAY(1)})`,
              [jsonParam(wantedNumbers.map((n) => n.replace(/^\+/, '')))],
            );
            const [holder] = await holders(tx, wantedNumbers, assistantId);
            if (holder) throw numberTaken(projectId, wantedNumbers, holder);
          }

          await tx.query(`DELETE FROM sip_numbers WHERE assistant_id = $1::uuid AND number <> ALL(${TEXT_ARRAY(2)})`, [assistantId, jsonParam(wantedNumbers)]);
          if (wanted.length) {
            // A number another project inserted since the check is skipped by the WHERE, and counted below.
            const inserted = await tx.query<Row>(
              `INSERT INTO sip_numbers (number, project_id, assistant_id, trunk_id)
               SELECT w.number, $2::uuid, $3::uuid, t.id
                 FROM jsonb_to_recordset($1::text::jsonb) AS w(number text, trunk text)
                 LEFT JOIN sip_trunks t ON t.project_id = $2::uuid AND t.name = w.trunk
               ON CONFLICT (number) DO UPDATE SET trunk_id = EXCLUDED.trunk_id WHERE sip_numbers.assistant_id = EXCLUDED.assistant_id
               RETURNING number`,
              [jsonParam(wanted), projectId, assistantId],
            );
            if (inserted.length < wanted.length) throw numberTaken(projectId, wantedNumbers, (await holders(tx, wantedNumbers, assistantId))[0]);
          }
          return listNumbersWith(tx, projectId, assistantId);
        });
      } catch (error) {
        // Another assistant took the other form of a number between the check and the insert.
        if (!isUniqueViolation(error)) throw error;
        throw numberTaken(projectId, wantedNumbers, (await holders(db, wantedNumbers, assistantId))[0]);
      }
    },

    listNumbers: (projectId, assistantId) => listNumbersWith(db, projectId, assistantId),

    async resolveInbound(candidates) {
      if (candidates.length === 0) return undefined;
      const [row] = await db.query<Row>(
        `SELECT n.number, n.project_id, n.assistant_id, n.trunk_id, t.name AS trunk_name
           FROM jsonb_array_elements_text($1::text::jsonb) WITH ORDINALITY AS c(number, rank)
           JOIN sip_numbers n ON n.number = c.number
           JOIN assistants a ON a.id = n.assistant_id AND a.deleted_at IS NULL
           LEFT JOIN sip_trunks t ON t.id = n.trunk_id
          ORDER BY c.rank LIMIT 1`,
        [jsonParam(candidates)],
      );
      if (!row) return undefined;
      const number = toSipNumber(row);
      const trunks = await db.query<Row>(
        `SELECT ${TRUNK_COLUMNS} FROM sip_trunks WHERE project_id = $1::uuid AND ($2::uuid IS NULL OR id = $2::uuid) ORDER BY name`,
        [number.projectId, number.trunkId ?? null],
      );
      return { number, trunks: trunks.map(toTrunk) };
    },
  };
}
