import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode } from '../../media-node/node';

describe('a media node on embedded defaults', () => {
  it('starts with no server, generates the admin key once, and keeps its data across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-start-'));
    try {
      const env = parseNodeEnv({ DATA_DIR: dir });
      const first = await startNode(env);
      expect(first.databaseKind).toBe('pglite');
      expect(first.cacheDescription).toBe('memory');
      expect(first.generatedAdminKey).toMatch(/^vr_ak_/);
      expect((await first.readiness()).ready).toBe(true);
      const admin = await first.stores.projects.authenticate(first.generatedAdminKey!);
      expect(admin?.kind).toBe('admin');
      // Everything a call leaves behind, written through the stores and the call writer.
      const { projects, assistants, conversations, callContexts, credentials } = first.stores;
      const project = await projects.createProject('Kept');
      const { key: apiKey } = await projects.createApiKey(project.id, 'server');
      const assistant = await assistants.create({
        projectId: project.id,
        config: { prompt: 'p', stt: { provider: 'deepgram' }, llm: { provider: 'openai' }, tts: { provider: 'cartesia' } },
      });
      await credentials.create({ projectId: project.id, provider: 'deepgram', name: 'dg', secret: 'dg-secret-value' });
      const conversation = await conversations.create({ projectId: project.id, assistantId: assistant.id, assistantVersion: 1, channel: 'twilio', direction: 'inbound' });
      const context = await callContexts.create({
        projectId: project.id,
        assistantId: assistant.id,
        assistantVersion: 1,
        conversationId: conversation.id,
        provider: 'twilio',
        direction: 'inbound',
        caller: '+15550100',
      });
      const claim = await callContexts.claim(context.id);
      expect(claim.outcome).toBe('claimed');
      first.writer.enqueue({
        kind: 'message',
        key: `conversation:${conversation.id}:message:0`,
        payload: { conversationId: conversation.id, message: { seq: 0, role: 'user', text: 'kept across restarts', interrupted: false, endedAt: Date.now() } },
      });
      await first.close(); // flushes the writer

      const second = await startNode(env);
      expect(second.generatedAdminKey).toBeUndefined(); // shown once, never again
      expect(await second.stores.projects.authenticate(first.generatedAdminKey!)).toMatchObject({ kind: 'admin' });
      expect(await second.stores.projects.authenticate(apiKey)).toMatchObject({ kind: 'project', projectId: project.id });
      expect((await second.stores.assistants.get(assistant.id))?.config.stt.provider).toBe('deepgram');
      expect(await second.stores.credentials.resolve(project.id, 'deepgram')).toBe('dg-secret-value');
      expect((await second.stores.conversations.messages(conversation.id)).map((m) => m.text)).toEqual(['kept across restarts']);
      expect(await second.stores.callContexts.get(context.id)).toMatchObject({ status: 'claimed', caller: '+15550100' });
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
