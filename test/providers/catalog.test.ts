import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { renderSpeechTables, speechCatalog } from '../../media-node/providers/catalog';
import { createProviderRegistry } from '../../shared/providers/registry';
import { registerSpeechProviders } from '../../media-node/providers/register';

describe('speech provider catalog', () => {
  it("the README's provider tables are exactly what the adapters declare", async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    // Regenerate with: npx tsx -e "import('./media-node/providers/catalog.ts').then(m => console.log(m.renderSpeechTables()))"
    expect(readme).toContain(renderSpeechTables());
  });

  it('lists every registered speech provider id (and nothing that is not registered)', async () => {
    const registry = createProviderRegistry();
    const close = await registerSpeechProviders(registry, { local: true, connect: async () => Promise.reject(new Error('no sockets in this test')) });
    try {
      const catalog = speechCatalog();
      const sttIds = new Set(catalog.stt.map((r) => r.id));
      // Local STT registers only where PocketSphinx is installed; the catalog always documents it.
      for (const id of registry.stt.ids()) expect(sttIds.has(id), id).toBe(true);
      expect(new Set(catalog.tts.map((r) => r.id))).toEqual(new Set(registry.tts.ids()));
      for (const id of [...registry.stt.ids(), ...registry.tts.ids()]) {
        if (id === 'local') continue;
        const impl = registry.stt.has(id) ? registry.stt.resolve(id) : registry.tts.resolve(id);
        expect(impl.requiresCredential, `${id} is a cloud provider: without a key the local engine stands in`).toBe(true);
      }
    } finally {
      await close();
    }
  });
});
