/**
 * Media node entry point (`npm start`). Opens the node's dependencies on embedded defaults (PGlite in
 * DATA_DIR, in-memory cache) or on DATABASE_URL / REDIS_URL, then, until the media node serves real calls
 * (HTTP/WebSocket/gRPC on :9007, AudioSocket on :4573, SIP on :5090), runs one scripted demo call through
 * the engine and records it like a real call.
 */
import { createCallRecorder } from '../shared/store/call-recorder';
import { parseNodeEnv } from './config/env';
import { DEMO_ASSISTANT, runDemoCall } from './demo-call';
import { startNode } from './node';

async function main(): Promise<void> {
  const env = parseNodeEnv(process.env);
  const node = await startNode(env, (line) => console.log(line));
  try {
    console.log(`database: ${node.databaseKind}${node.databaseKind === 'pglite' ? ` in ${env.DATA_DIR}/pglite` : ''}; cache: ${node.cacheDescription}`);
    if (node.generatedAdminKey) {
      console.log(`admin API key (shown once, only its hash is stored): ${node.generatedAdminKey}`);
    }
    const readiness = await node.readiness();
    console.log(`readiness: ${readiness.ready ? 'ready' : 'NOT ready'} (${Object.entries(readiness.checks).map(([k, v]) => `${k} ${v.ok ? 'ok' : `failed: ${v.error}`}`).join(', ')})\n`);

    const { projects, assistants, conversations } = node.stores;
    const project = (await projects.listProjects()).find((p) => p.name === 'Demo') ?? (await projects.createProject('Demo'));
    const assistant = (await assistants.list(project.id)).find((a) => a.name === DEMO_ASSISTANT.name) ?? (await assistants.create({ projectId: project.id, config: DEMO_ASSISTANT }));
    const conversation = await conversations.create({
      projectId: project.id,
      assistantId: assistant.id,
      assistantVersion: assistant.version,
      channel: 'demo',
      direction: 'inbound',
    });
    await runDemoCall({ observer: createCallRecorder({ conversationId: conversation.id, writer: node.writer }) });

    await node.writer.flush({ timeoutMs: 10_000 });
    const saved = await conversations.messages(conversation.id);
    const total = (await conversations.listByProject(project.id, { limit: 1000 })).length;
    console.log(`\nconversation ${conversation.id}: ${saved.length} messages and ${(await conversations.turnMetrics(conversation.id)).length} turn metrics saved; ${total} demo conversation(s) stored so far`);
  } finally {
    await node.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
