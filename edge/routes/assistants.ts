import { Hono } from 'hono';
import type { Context } from 'hono';
import { z } from 'zod';
import { AssistantConfig } from '../../shared/config/assistant';
import type { Assistant } from '../../shared/store/assistants';
import type { AppDeps, AppEnv } from '../app';
import { assertSameProject, projectOf } from '../auth';
import { ApiError, badRequest, notFound } from '../errors';
import { ASSISTANT_BODY_BYTES, readJsonValue, readQuery, validate } from '../validation';

/**
 * Assistants of the request's project. The body of POST and PUT is the assistant configuration itself
 * (shared/config/assistant.ts), validated by its schema: every problem is listed by path, and option names
 * that look like secrets (`apiKey`, `token`, ...) are refused (credentials live in `/v1/credentials`).
 * PUT saves the next version; a top-level `expectedVersion` (not part of the configuration) makes it
 * conditional: if another update saved a newer version first, 409 `VERSION_CONFLICT` with `latestVersion`.
 */

const VersionQuery = z.object({ version: z.coerce.number().int().positive().optional() });
const ExpectedVersion = z.number().int().positive();

export const presentAssistant = (a: Assistant) => ({
  id: a.id,
  projectId: a.projectId,
  name: a.name,
  version: a.version,
  latestVersion: a.latestVersion,
  config: a.config,
  createdAt: a.createdAt,
  updatedAt: a.updatedAt,
  versionCreatedAt: a.versionCreatedAt,
  deletedAt: a.deletedAt,
});

function assistantNotFound(id: string, version?: number) {
  return notFound('ASSISTANT_NOT_FOUND', version === undefined ? `assistant ${id} does not exist` : `assistant ${id} has no version ${version}`);
}

export function assistantRoutes(deps: AppDeps): Hono<AppEnv> {
  const { assistants, projects } = deps.stores;
  const routes = new Hono<AppEnv>({ strict: false });

  /** The live assistant, checked to belong to the request's project (404 / 403 otherwise). */
  async function ownAssistant(c: Context<AppEnv>, id: string, version?: number): Promise<Assistant> {
    const projectId = await projectOf(c, projects);
    const assistant = await assistants.get(id, version);
    if (!assistant) throw assistantNotFound(id, version);
    assertSameProject(projectId, assistant.projectId, `assistant ${id}`);
    return assistant;
  }

  routes.post('/', async (c) => {
    const projectId = await projectOf(c, projects);
    const body = await readJsonValue(c, ASSISTANT_BODY_BYTES);
    validate(AssistantConfig, body, 'the assistant configuration');
    const assistant = await assistants.create({ projectId, config: body });
    c.header('Location', `${deps.publicBaseUrl}/v1/assistants/${assistant.id}`);
    return c.json(presentAssistant(assistant), 201);
  });

  routes.get('/', async (c) => {
    const projectId = await projectOf(c, projects);
    return c.json({ data: (await assistants.list(projectId)).map(presentAssistant) });
  });

  routes.get('/:id', async (c) => {
    const { version } = readQuery(c, VersionQuery);
    return c.json(presentAssistant(await ownAssistant(c, c.req.param('id'), version)));
  });

  routes.get('/:id/versions', async (c) => {
    const assistant = await ownAssistant(c, c.req.param('id'));
    return c.json({ data: await assistants.versions(assistant.id) });
  });

  routes.put('/:id', async (c) => {
    const id = c.req.param('id');
    const body = await readJsonValue(c, ASSISTANT_BODY_BYTES);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest('VALIDATION_FAILED', 'the assistant configuration is invalid', { issues: [{ message: 'expected a JSON object' }] });
    }
    const { expectedVersion: rawExpected, ...config } = body as Record<string, unknown>;
    const expectedVersion = rawExpected === undefined ? undefined : validate(z.object({ expectedVersion: ExpectedVersion }), { expectedVersion: rawExpected }).expectedVersion;
    validate(AssistantConfig, config, 'the assistant configuration');
    await ownAssistant(c, id);
    const result = await assistants.update(id, config, expectedVersion === undefined ? {} : { expectedVersion });
    if (result.outcome === 'unknown') throw assistantNotFound(id);
    if (result.outcome === 'conflict') {
      throw new ApiError(
        409,
        'VERSION_CONFLICT',
        `assistant ${id} is at version ${result.latestVersion}, not ${expectedVersion}: read the latest version, apply your change to it and save again`,
        { latestVersion: result.latestVersion },
      );
    }
    return c.json(presentAssistant(result.assistant));
  });

  routes.delete('/:id', async (c) => {
    const id = c.req.param('id');
    await ownAssistant(c, id);
    if (!(await assistants.delete(id))) throw assistantNotFound(id);
    return c.body(null, 204);
  });

  return routes;
}
