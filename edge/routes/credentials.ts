import { Hono } from 'hono';
import { z } from 'zod';
import type { CredentialInfo } from '../../shared/store/credentials';
import { StoreError } from '../../shared/store/errors';
import type { AppDeps, AppEnv } from '../app';
import { projectOf } from '../auth';
import { ApiError, badRequest, notFound } from '../errors';
import { readJsonValue, SMALL_BODY_BYTES, validate } from '../validation';

/**
 * Provider credentials of the request's project.
 *
 * `PUT /v1/credentials/:name` `{ "provider": "twilio", "accountSid": "AC…", "authToken": "…" }`: `provider`
 * and the optional `isDefault` are control fields; every other field is secret. The secret fields are sealed
 * together as one JSON object (`encodeCredentialSecret`), e.g. `{"accountSid":"AC…","authToken":"…"}`, so the
 * resolved secret of a credential is that JSON text. Creates (201) or replaces the secret (200); the
 * response is metadata only: no secret field, value or name of one is ever echoed back or logged.
 * `isDefault: true` makes it its provider's default; a default stays the default until another credential
 * of that provider takes over (`isDefault: false` on the current default is refused).
 */

export const CREDENTIAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_SECRET_FIELDS = 32;

const Control = z.object({
  provider: z.string().regex(PROVIDER, 'a provider id such as "deepgram" or "twilio" (lowercase letters, digits, "-", "_", ".")'),
  isDefault: z.boolean().optional(),
});

/** The sealed form of a credential's secret fields (what the credential store keeps and `resolve` returns). */
export function encodeCredentialSecret(fields: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(fields);
}

export const presentCredential = (info: CredentialInfo) => ({
  id: info.id,
  projectId: info.projectId,
  name: info.name,
  provider: info.provider,
  isDefault: info.isDefault,
  createdAt: info.createdAt,
  updatedAt: info.updatedAt,
});

function checkName(name: string): string {
  if (!CREDENTIAL_NAME.test(name)) {
    throw badRequest('VALIDATION_FAILED', 'the credential name is invalid', {
      issues: [{ path: 'name', message: '1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit' }],
    });
  }
  return name;
}

/** Control fields and secret fields of a PUT body; issues name fields, never values. */
function splitBody(body: unknown): { provider: string; isDefault?: boolean; secret: Record<string, unknown> } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('VALIDATION_FAILED', 'the credential is invalid', { issues: [{ message: 'expected a JSON object' }] });
  }
  const { provider, isDefault, ...secret } = body as Record<string, unknown>;
  const control = validate(Control, { provider, isDefault }, 'the credential');
  const keys = Object.keys(secret);
  const issues = [];
  if (keys.length === 0) issues.push({ message: 'no secret fields: send them next to "provider", e.g. {"provider":"deepgram","apiKey":"..."}' });
  if (keys.length > MAX_SECRET_FIELDS) issues.push({ message: `at most ${MAX_SECRET_FIELDS} secret fields` });
  for (const key of keys) {
    const value = secret[key];
    if (value === null || value === '') issues.push({ path: key, message: 'a secret field needs a value' });
  }
  if (issues.length) throw badRequest('VALIDATION_FAILED', 'the credential is invalid', { issues });
  return { ...control, secret };
}

export function credentialRoutes(deps: AppDeps): Hono<AppEnv> {
  const { credentials, projects } = deps.stores;
  const routes = new Hono<AppEnv>({ strict: false });

  routes.get('/', async (c) => {
    const projectId = await projectOf(c, projects);
    return c.json({ data: (await credentials.list(projectId)).map(presentCredential) });
  });

  routes.get('/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkName(c.req.param('name'));
    const info = await credentials.get(projectId, name);
    if (!info) throw notFound('CREDENTIAL_NOT_FOUND', `this project has no credential named "${name}"`);
    return c.json(presentCredential(info));
  });

  routes.put('/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkName(c.req.param('name'));
    const { provider, isDefault, secret: fields } = splitBody(await readJsonValue(c, SMALL_BODY_BYTES));
    const secret = encodeCredentialSecret(fields);

    const replace = async (existing: CredentialInfo) => {
      if (existing.provider !== provider) {
        throw new ApiError(
          409,
          'CREDENTIAL_PROVIDER_MISMATCH',
          `credential "${name}" is a ${existing.provider} credential; delete it first or choose another name for the ${provider} one`,
        );
      }
      if (isDefault === false && existing.isDefault) {
        throw new ApiError(
          409,
          'CREDENTIAL_IS_DEFAULT',
          `credential "${name}" is the default ${provider} credential; make another ${provider} credential the default instead`,
        );
      }
      let info = await credentials.rotate(projectId, name, secret);
      if (!info) throw notFound('CREDENTIAL_NOT_FOUND', `credential "${name}" was deleted while being updated; send the request again`);
      if (isDefault === true && !info.isDefault) info = (await credentials.setDefault(projectId, name)) ?? info;
      return c.json(presentCredential(info), 200);
    };

    const existing = await credentials.get(projectId, name);
    if (existing) return replace(existing);
    try {
      const created = await credentials.create({ projectId, provider, name, secret, ...(isDefault === undefined ? {} : { isDefault }) });
      return c.json(presentCredential(created), 201);
    } catch (error) {
      // A concurrent PUT of the same name created it first: replace its secret instead.
      if (!(error instanceof StoreError) || error.code !== 'CREDENTIAL_NAME_TAKEN') throw error;
      const raced = await credentials.get(projectId, name);
      if (!raced) throw error;
      return replace(raced);
    }
  });

  routes.delete('/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkName(c.req.param('name'));
    if (!(await credentials.delete(projectId, name))) throw notFound('CREDENTIAL_NOT_FOUND', `this project has no credential named "${name}"`);
    return c.body(null, 204);
  });

  return routes;
}
