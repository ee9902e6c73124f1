import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, localDemoKeys } from '../../media-node/demo-keys';
import type { ProjectStore } from '../../shared/store/projects';

/** Just what the demo keys use of the project store, recording what was made. */
function fakeProjects() {
  const made = { projects: [] as string[], apiKeys: 0, publishable: [] as string[][] };
  const store = {
    async listProjects() {
      return made.projects.map((name, i) => ({ id: `p${i}`, name }));
    },
    async createProject(name: string) {
      made.projects.push(name);
      return { id: `p${made.projects.length - 1}`, name };
    },
    async createApiKey() {
      made.apiKeys++;
      return { key: `vr_sk_${made.apiKeys}` };
    },
    async createPublishableKey(_projectId: string, origins: string[]) {
      made.publishable.push(origins);
      return { key: `vr_pk_${made.publishable.length}` };
    },
  } as unknown as ProjectStore;
  return { store, made };
}

describe('local demo keys', () => {
  it('only on embedded defaults, only for this machine opening a localhost origin', async () => {
    const { store, made } = fakeProjects();
    expect(await localDemoKeys(store, { embedded: false })({ origin: 'http://127.0.0.1:9007', remoteAddress: '127.0.0.1', proxied: false, fetchSite: 'same-origin' })).toBeUndefined();
    const keys = localDemoKeys(store, { embedded: true });
    expect(await keys({ origin: 'http://127.0.0.1:9007', remoteAddress: '10.0.0.5', proxied: false, fetchSite: 'same-origin' })).toBeUndefined();
    expect(await keys({ origin: 'http://voice.example.com', remoteAddress: '127.0.0.1', proxied: false, fetchSite: 'same-origin' })).toBeUndefined();
    // A reverse proxy on this machine makes every visitor look local; a cross-site page must not fetch keys.
    expect(await keys({ origin: 'http://127.0.0.1:9007', remoteAddress: '127.0.0.1', proxied: true, fetchSite: 'same-origin' })).toBeUndefined();
    expect(await keys({ origin: 'http://127.0.0.1:9007', remoteAddress: '127.0.0.1', proxied: false, fetchSite: 'cross-site' })).toBeUndefined();
    expect(await keys({ origin: 'not a url', remoteAddress: '127.0.0.1', proxied: false, fetchSite: 'same-origin' })).toBeUndefined();
    expect(made.projects).toEqual([]);

    const first = await keys({ origin: 'http://localhost:9007', remoteAddress: '::ffff:127.0.0.1', proxied: false, fetchSite: undefined });
    expect(first).toEqual({ apiKey: 'vr_sk_1', publishableKey: 'vr_pk_1' });
    expect(made.publishable).toEqual([['http://localhost:9007']]);
    // The same origin again: the same keys, nothing new made; another origin: one project, new keys for it.
    expect(await keys({ origin: 'http://localhost:9007', remoteAddress: '::1', proxied: false, fetchSite: 'same-origin' })).toEqual(first);
    expect(await keys({ origin: 'http://127.0.0.1:9007', remoteAddress: '127.0.0.1', proxied: false, fetchSite: 'same-origin' })).toEqual({ apiKey: 'vr_sk_2', publishableKey: 'vr_pk_2' });
    expect(made.projects).toEqual(['Local demo']);
  });

  it('tells loopback peers from others', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(address)).toBe(true);
    for (const address of [undefined, '', '10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', '::2']) expect(isLoopbackAddress(address)).toBe(false);
  });
});
