import type { Context, MiddlewareHandler } from 'hono';
import { isUuid } from '../shared/store/rows';
import { PUBLISHABLE_KEY_PREFIX, type Principal, type ProjectStore } from '../shared/store/projects';
import type { AppEnv } from './app';
import { ApiError } from './errors';

/**
 * API-key authentication for the REST routes.
 *
 * Every route under `/v1/` needs `Authorization: Bearer <secret key>` except the telephony webhooks and media
 * paths under `/v1/talk/` (carriers cannot send our keys; those routes check the carrier's signature instead).
 * Missing, malformed, unknown or revoked key → 401 `UNAUTHENTICATED` (with `WWW-Authenticate: Bearer`).
 *
 * Two kinds of secret key (see shared/store/projects.ts):
 * - a project key (`vr_sk_...`) acts on its own project only; another project's resource → 403 `FORBIDDEN`;
 * - the admin key (`vr_ak_...` or ADMIN_API_KEY) manages projects (`/v1/projects...`, admin only: a project
 *   key there → 403). The admin key may also act inside one project by naming it in `X-Project-Id`.
 *   Decision: allowed, because the admin key can mint a key for any project anyway (`POST
 *   /v1/projects/:id/keys`), so refusing would add friction, not security; the header keeps every such
 *   request explicit about its project. Without the header, project routes answer 400 `PROJECT_REQUIRED`.
 *   A project key may send `X-Project-Id` too; naming another project is 403.
 * Publishable keys (`vr_pk_...`) are public and only start browser sessions: as a Bearer key they are 401.
 */

export const PROJECT_HEADER = 'X-Project-Id';
const MAX_AUTHORIZATION_LENGTH = 1024;

const unauthenticated = (message: string) =>
  new ApiError(401, 'UNAUTHENTICATED', message, {}, { 'WWW-Authenticate': 'Bearer realm="voice-runtime"' });

/** Paths that carry no API key (telephony webhooks, signed by the carrier instead). */
export function isPublicPath(path: string): boolean {
  return !path.startsWith('/v1/') || path.startsWith('/v1/talk/') || path === '/v1/talk';
}

/** The key of an `Authorization: Bearer <key>` header, or undefined. */
export function bearerKey(header: string | undefined): string | undefined {
  if (!header || header.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** Middleware: resolves the key of every non-public `/v1/` request into the `principal` variable. */
export function authenticate(projects: ProjectStore): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (isPublicPath(c.req.path)) return next();
    const header = c.req.header('authorization');
    if (!header) throw unauthenticated('this route needs an API key: send "Authorization: Bearer <key>"');
    const key = bearerKey(header);
    if (!key) throw unauthenticated('the Authorization header must read "Bearer <key>"');
    if (key.startsWith(PUBLISHABLE_KEY_PREFIX)) {
      throw unauthenticated(`publishable keys (${PUBLISHABLE_KEY_PREFIX}...) only start browser sessions; use a secret API key here`);
    }
    const principal = await projects.authenticate(key);
    if (!principal) throw unauthenticated('the API key is unknown or revoked');
    c.set('principal', principal);
    return next();
  };
}

export function principalOf(c: Context<AppEnv>): Principal {
  const principal = c.get('principal');
  if (!principal) throw unauthenticated('this route needs an API key: send "Authorization: Bearer <key>"');
  return principal;
}

/** Project management: the admin key only. */
export function requireAdmin(c: Context<AppEnv>): void {
  if (principalOf(c).kind !== 'admin') {
    throw new ApiError(403, 'FORBIDDEN', 'managing projects and their keys needs the admin key; project keys act only inside their project');
  }
}

/**
 * The project a request acts on: the project key's own, or, for the admin key, the one named in
 * `X-Project-Id` (which must exist). Cached on the context for the rest of the request.
 */
export async function projectOf(c: Context<AppEnv>, projects: ProjectStore): Promise<string> {
  const cached = c.get('projectId');
  if (cached) return cached;
  const principal = principalOf(c);
  const named = c.req.header(PROJECT_HEADER)?.trim() || undefined;
  let projectId: string;
  if (principal.kind === 'project') {
    if (named !== undefined && named.toLowerCase() !== principal.projectId.toLowerCase()) {
      throw new ApiError(403, 'FORBIDDEN', `this API key belongs to another project than the one named in ${PROJECT_HEADER}`);
    }
    projectId = principal.projectId;
  } else {
    if (named === undefined) {
      throw new ApiError(400, 'PROJECT_REQUIRED', `the admin key acts inside a project only when the request names it in the ${PROJECT_HEADER} header`);
    }
    const project = isUuid(named) ? await projects.getProject(named) : undefined;
    if (!project) throw new ApiError(404, 'PROJECT_NOT_FOUND', `project ${named} (from ${PROJECT_HEADER}) does not exist`);
    projectId = project.id;
  }
  c.set('projectId', projectId);
  return projectId;
}

/** 403 unless the resource belongs to the request's project. */
export function assertSameProject(requestProjectId: string, ownerProjectId: string, what: string): void {
  if (requestProjectId !== ownerProjectId) throw new ApiError(403, 'FORBIDDEN', `${what} belongs to another project`);
}
