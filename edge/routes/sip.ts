import { Hono } from 'hono';
import type { Context } from 'hono';
import { z } from 'zod';
import { StoreError } from '../../shared/store/errors';
import {
  MAX_SIP_NUMBERS_PER_ASSISTANT,
  MAX_SIP_TRUNK_CIDRS,
  normalizeCidr,
  normalizeSipHost,
  normalizeSipNumber,
  parseSipDigestSecret,
  SIP_FROM_USER,
  SIP_REALM,
  SIP_TRUNK_NAME,
  type SipNumber,
  type SipRoutingStore,
  type SipTrunk,
} from '../../shared/store/sip-routing';
import type { AppDeps, AppEnv } from '../app';
import { projectOf } from '../auth';
import { ApiError, badRequest, notFound, type ValidationIssue } from '../errors';
import { readJsonValue, SMALL_BODY_BYTES, validate } from '../validation';

/**
 * SIP numbers and trunks of the request's project (mounted at `/v1`, behind the API-key middleware).
 *
 *   PUT    /v1/assistants/:id/numbers  {"numbers": ["+14155550123", {"number": "support", "trunk": "pbx"}]}
 *                                      replaces the assistant's numbers → 200 {assistantId, numbers}
 *   GET    /v1/assistants/:id/numbers
 *   PUT    /v1/sip/trunks/:name        {"inbound": {"allowedAddresses": [...], "digest": {"credential", "challenge"?, "realm"?}},
 *                                       "outbound"?: {"host", "port"?, "credential"?, "fromUser"?, "fromHost"?}} → 201 / 200
 *   GET    /v1/sip/trunks[/:name]
 *   DELETE /v1/sip/trunks/:name        409 TRUNK_IN_USE while numbers name it
 *
 * A number is unique in the whole deployment (an INVITE names no project): 409 NUMBER_TAKEN when any
 * assistant holds it (with or without its "+"). An assistant of another project is 404, as if absent.
 * Credentials are named, never carried: each named one must be a `sip` credential of this project whose
 * secret is {"username","password"}; no response ever contains a secret.
 *
 * Inbound trunk rule (the SIP server applies it to every INVITE, closed by default):
 *   - the trunks considered are the number's own trunk when it names one, otherwise every trunk of the project;
 *   - a trunk without a digest credential admits a source address inside one of its allowed ranges;
 *   - a trunk with a digest credential admits after a successful digest (401 or 407 challenge, its realm),
 *     and, when its allowed ranges are not empty, only from a source inside them;
 *   - no trunk considered, or none admitting the source: 403.
 */

const TrunkName = z.string().regex(SIP_TRUNK_NAME, '1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit');
const CredentialName = z.string().regex(SIP_TRUNK_NAME, 'a credential name (1 to 100 letters, digits, ".", "_" or "-")');

const NumbersBody = z
  .object({
    numbers: z
      .array(z.union([z.string().max(128), z.object({ number: z.string().max(128), trunk: TrunkName.optional() }).strict()]))
      .max(MAX_SIP_NUMBERS_PER_ASSISTANT),
  })
  .strict();

const AllowedAddress = z
  .string()
  .max(64)
  .superRefine((value, ctx) => {
    const checked = normalizeCidr(value);
    if (!checked.ok) ctx.addIssue({ code: 'custom', message: checked.problem });
  });

const Host = z.string().max(255).refine((value) => normalizeSipHost(value) !== undefined, 'a host name or IP address, e.g. "sip.carrier.example"');

const TrunkBody = z
  .object({
    inbound: z
      .object({
        allowedAddresses: z.array(AllowedAddress).max(MAX_SIP_TRUNK_CIDRS).optional(),
        digest: z
          .object({
            credential: CredentialName,
            challenge: z.union([z.literal(401), z.literal(407)]).optional(),
            realm: z.string().regex(SIP_REALM, '1 to 128 printable ASCII characters without " or \\').optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
    outbound: z
      .object({
        host: Host,
        port: z.number().int().min(1).max(65535).optional(),
        credential: CredentialName.optional(),
        fromUser: z.string().regex(SIP_FROM_USER, "1 to 64 letters, digits or - _ . ! ~ * ' $ & +").optional(),
        fromHost: Host.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.inbound.allowedAddresses ?? []).length === 0 && !body.inbound.digest) {
      ctx.addIssue({
        code: 'custom',
        path: ['inbound'],
        message: 'name "allowedAddresses", a "digest" credential, or both: a trunk with neither would admit no call',
      });
    }
  });

export const presentTrunk = (t: SipTrunk) => ({
  id: t.id,
  projectId: t.projectId,
  name: t.name,
  inbound: {
    allowedAddresses: t.inbound.cidrs,
    digest: t.inbound.digestCredential === undefined ? undefined : { credential: t.inbound.digestCredential, challenge: t.inbound.challenge, realm: t.inbound.realm },
  },
  outbound:
    t.outbound === undefined
      ? undefined
      : { host: t.outbound.host, port: t.outbound.port, credential: t.outbound.credential, fromUser: t.outbound.fromUser, fromHost: t.outbound.fromHost },
  createdAt: t.createdAt,
  updatedAt: t.updatedAt,
});

export const presentNumber = (n: SipNumber) => ({ number: n.number, trunk: n.trunkName });

const trunkNotFound = (name: string) => notFound('TRUNK_NOT_FOUND', `this project has no SIP trunk named "${name}"`);
const assistantNotFound = (id: string) => notFound('ASSISTANT_NOT_FOUND', `assistant ${id} does not exist in this project`);

/** The store's refusals as this API answers them (statuses chosen here, where the request's meaning is known). */
function storeRefusal(error: unknown, assistantId?: string): unknown {
  if (!(error instanceof StoreError)) return error;
  const message = error.message.replace(/^[A-Z_]+: /, '');
  switch (error.code as string) {
    case 'NUMBER_TAKEN':
      return new ApiError(409, 'NUMBER_TAKEN', message);
    case 'TRUNK_IN_USE':
      return new ApiError(409, 'TRUNK_IN_USE', message);
    // In a request body an unknown trunk is a bad reference, not a missing resource.
    case 'TRUNK_NOT_FOUND':
      return badRequest('TRUNK_NOT_FOUND', message);
    case 'ASSISTANT_UNKNOWN':
      return assistantId ? assistantNotFound(assistantId) : error;
    default:
      return error;
  }
}

function checkTrunkName(name: string): string {
  if (!SIP_TRUNK_NAME.test(name)) {
    throw badRequest('VALIDATION_FAILED', 'the trunk name is invalid', {
      issues: [{ path: 'name', message: '1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit' }],
    });
  }
  return name;
}

export function sipRoutes(deps: AppDeps, sip: SipRoutingStore): Hono<AppEnv> {
  const { assistants, credentials, projects } = deps.stores;
  const routes = new Hono<AppEnv>({ strict: false });

  /** The live assistant of the request's project; another project's is 404, as if it did not exist. */
  async function ownAssistantId(c: Context<AppEnv>): Promise<{ projectId: string; assistantId: string }> {
    const projectId = await projectOf(c, projects);
    const assistantId = c.req.param('id') ?? '';
    const assistant = await assistants.get(assistantId);
    if (!assistant || assistant.projectId !== projectId) throw assistantNotFound(assistantId);
    return { projectId, assistantId: assistant.id };
  }

  /** A credential the trunk names must be a `sip` one of this project holding {username, password}. */
  async function checkSipCredential(projectId: string, name: string, path: string): Promise<void> {
    const info = await credentials.get(projectId, name);
    if (!info) {
      throw badRequest(
        'CREDENTIAL_NOT_FOUND',
        `${path} names credential "${name}", which this project does not have; store it first: PUT /v1/credentials/${name} {"provider":"sip","username":"...","password":"..."}`,
        { issues: [{ path, message: 'no such credential' }] },
      );
    }
    if (info.provider !== 'sip') {
      throw badRequest('CREDENTIAL_WRONG_PROVIDER', `${path} names credential "${name}", a ${info.provider} credential; a trunk needs a sip credential`, {
        issues: [{ path, message: `a ${info.provider} credential, not sip` }],
      });
    }
    if (!parseSipDigestSecret(await credentials.resolveForProvider(projectId, 'sip', name))) {
      throw badRequest('SIP_CREDENTIAL_INVALID', `credential "${name}" must hold a non-empty "username" and "password"; store it again with both`, {
        issues: [{ path, message: 'the credential lacks username or password' }],
      });
    }
  }

  routes.get('/assistants/:id/numbers', async (c) => {
    const { projectId, assistantId } = await ownAssistantId(c);
    return c.json({ assistantId, numbers: (await sip.listNumbers(projectId, assistantId)).map(presentNumber) });
  });

  routes.put('/assistants/:id/numbers', async (c) => {
    const { projectId, assistantId } = await ownAssistantId(c);
    const body = validate(NumbersBody, await readJsonValue(c, SMALL_BODY_BYTES), 'the numbers');
    const assignments = body.numbers.map((entry) => (typeof entry === 'string' ? { number: entry } : entry));
    const issues: ValidationIssue[] = [];
    assignments.forEach((entry, i) => {
      const checked = normalizeSipNumber(entry.number);
      if (!checked.ok) issues.push({ path: typeof body.numbers[i] === 'string' ? `numbers.${i}` : `numbers.${i}.number`, message: checked.problem });
    });
    if (issues.length) throw badRequest('SIP_NUMBER_INVALID', issues[0]!.message, { issues });
    try {
      const numbers = await sip.setNumbers(projectId, assistantId, assignments);
      return c.json({ assistantId, numbers: numbers.map(presentNumber) });
    } catch (error) {
      throw storeRefusal(error, assistantId);
    }
  });

  routes.get('/sip/trunks', async (c) => {
    const projectId = await projectOf(c, projects);
    return c.json({ data: (await sip.listTrunks(projectId)).map(presentTrunk) });
  });

  routes.get('/sip/trunks/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkTrunkName(c.req.param('name'));
    const trunk = await sip.getTrunk(projectId, name);
    if (!trunk) throw trunkNotFound(name);
    return c.json(presentTrunk(trunk));
  });

  routes.put('/sip/trunks/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkTrunkName(c.req.param('name'));
    const body = validate(TrunkBody, await readJsonValue(c, SMALL_BODY_BYTES), 'the SIP trunk');
    const { digest } = body.inbound;
    if (digest) await checkSipCredential(projectId, digest.credential, 'inbound.digest.credential');
    if (body.outbound?.credential !== undefined) await checkSipCredential(projectId, body.outbound.credential, 'outbound.credential');
    const trunk = await sip.putTrunk(projectId, name, {
      inbound: {
        cidrs: body.inbound.allowedAddresses ?? [],
        ...(digest ? { digestCredential: digest.credential, challenge: digest.challenge ?? 401, ...(digest.realm === undefined ? {} : { realm: digest.realm }) } : {}),
      },
      ...(body.outbound ? { outbound: body.outbound } : {}),
    });
    if (trunk.created) c.header('Location', `${deps.publicBaseUrl}/v1/sip/trunks/${encodeURIComponent(name)}`);
    return c.json(presentTrunk(trunk), trunk.created ? 201 : 200);
  });

  routes.delete('/sip/trunks/:name', async (c) => {
    const projectId = await projectOf(c, projects);
    const name = checkTrunkName(c.req.param('name'));
    let deleted: boolean;
    try {
      deleted = await sip.deleteTrunk(projectId, name);
    } catch (error) {
      throw storeRefusal(error);
    }
    if (!deleted) throw trunkNotFound(name);
    return c.body(null, 204);
  });

  return routes;
}
