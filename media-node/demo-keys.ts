import type { ProjectStore } from '../shared/store/projects';
import type { DemoKeys, DemoKeysRequest } from './widget-assets';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const DEMO_PROJECT = 'Local demo';

/** Whether a socket peer is this machine. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  return plain === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(plain);
}

/**
 * The demo page's keys without asking, so `npm start` talks in the first minute: only on embedded defaults
 * (no DATABASE_URL: a developer's machine), only to a browser on this machine opening a localhost origin,
 * never through a proxy (forwarding headers: a reverse proxy on this machine would make every visitor look
 * local) nor to a cross-site fetch. An embedded-defaults node is for development: do not publish it behind a
 * proxy that strips forwarding headers (DEMO_LOCAL_KEYS=off turns this off).
 * One "Local demo" project; an API key and a publishable key for the origin, made once per process and
 * origin (keys are shown once, so a restart makes new ones; old ones keep working).
 */
export function localDemoKeys(projects: ProjectStore, options: { readonly embedded: boolean }) {
  const made = new Map<string, Promise<DemoKeys>>();
  return async (request: DemoKeysRequest): Promise<DemoKeys | undefined> => {
    if (!options.embedded || !isLoopbackAddress(request.remoteAddress) || request.proxied) return undefined;
    if (request.fetchSite !== undefined && request.fetchSite !== 'same-origin') return undefined;
    let origin: URL;
    try {
      origin = new URL(request.origin);
    } catch {
      return undefined;
    }
    if (!LOCAL_HOSTS.has(origin.hostname)) return undefined;
    let keys = made.get(origin.origin);
    if (!keys) {
      keys = (async () => {
        const project = (await projects.listProjects()).find((p) => p.name === DEMO_PROJECT) ?? (await projects.createProject(DEMO_PROJECT));
        const apiKey = await projects.createApiKey(project.id, 'demo page');
        const publishable = await projects.createPublishableKey(project.id, [origin.origin]);
        return { apiKey: apiKey.key, publishableKey: publishable.key };
      })();
      made.set(origin.origin, keys);
      // A failure is not cached: the next visit tries again.
      keys.catch(() => made.delete(origin.origin));
    }
    return keys;
  };
}
