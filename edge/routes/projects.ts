import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiKeyInfo, CreatedApiKey, Project, PublishableKey } from '../../shared/store/projects';
import { isUuid } from '../../shared/store/rows';
import type { AppDeps, AppEnv } from '../app';
import { requireAdmin } from '../auth';
import { notFound } from '../errors';
import { readJson } from '../validation';

/**
 * Project management, admin key only. A new secret key is in the response that creates it and nowhere else
 * (the database keeps its SHA-256); listings show its `prefix` to tell keys apart.
 */

const Name = z.string().trim().min(1, 'a name is required').max(200);
const CreateProject = z.object({ name: Name });
const CreateKey = z.object({ name: Name });
const CreatePublishableKey = z.object({
  /** Exact origins, `https://*.example.com` wildcards, or `*`; the store checks each one. */
  allowedOrigins: z.array(z.string().min(1).max(300)).min(1, 'name at least one allowed origin').max(100),
});

export const presentProject = (project: Project) => ({ id: project.id, name: project.name, createdAt: project.createdAt });

export const presentApiKey = (info: ApiKeyInfo) => ({
  id: info.id,
  projectId: info.projectId,
  name: info.name,
  prefix: info.prefix,
  createdAt: info.createdAt,
  lastUsedAt: info.lastUsedAt,
  revokedAt: info.revokedAt,
});

/** The one response that carries the plain key. */
const presentCreatedKey = (created: CreatedApiKey) => ({ ...presentApiKey(created.info), key: created.key });

const presentPublishableKey = (key: PublishableKey) => ({
  id: key.id,
  projectId: key.projectId,
  key: key.key,
  allowedOrigins: key.allowedOrigins,
  createdAt: key.createdAt,
  revokedAt: key.revokedAt,
});

export function projectRoutes(deps: AppDeps): Hono<AppEnv> {
  const { projects } = deps.stores;
  const routes = new Hono<AppEnv>({ strict: false });

  routes.use('*', async (c, next) => {
    requireAdmin(c);
    await next();
  });

  async function existingProject(id: string): Promise<Project> {
    const project = isUuid(id) ? await projects.getProject(id) : undefined;
    if (!project) throw notFound('PROJECT_NOT_FOUND', `project ${id} does not exist`);
    return project;
  }

  routes.get('/', async (c) => c.json({ data: (await projects.listProjects()).map(presentProject) }));

  routes.post('/', async (c) => {
    const { name } = await readJson(c, CreateProject);
    const project = await projects.createProject(name);
    const apiKey = await projects.createApiKey(project.id, 'default');
    c.header('Cache-Control', 'no-store');
    return c.json({ project: presentProject(project), apiKey: presentCreatedKey(apiKey) }, 201);
  });

  routes.get('/:id/keys', async (c) => {
    const project = await existingProject(c.req.param('id'));
    return c.json({ data: (await projects.listApiKeys(project.id)).map(presentApiKey) });
  });

  routes.post('/:id/keys', async (c) => {
    const project = await existingProject(c.req.param('id'));
    const { name } = await readJson(c, CreateKey);
    const created = await projects.createApiKey(project.id, name);
    c.header('Cache-Control', 'no-store');
    return c.json(presentCreatedKey(created), 201);
  });

  routes.post('/:id/publishable-keys', async (c) => {
    const project = await existingProject(c.req.param('id'));
    const { allowedOrigins } = await readJson(c, CreatePublishableKey);
    // Origins the store does not accept are a ConfigError listing each: 400 with its issues.
    return c.json(presentPublishableKey(await projects.createPublishableKey(project.id, allowedOrigins)), 201);
  });

  return routes;
}
