/**
 * `npm run demo`: one scripted call through the real engine, in real time, with the test doubles as caller
 * and providers; recorded in the embedded database like a real call.
 */
import { createCallRecorder } from '../shared/store/call-recorder';
import { parseNodeEnv } from './config/env';
import { DEMO_ASSISTANT, runDemoCall } from './demo-call';
import { startNode } from './node';

async function main(): Promise<void> {
  const env = parseNodeEnv(process.env);
  const node = await startNode(env, (line) => console.log(line));
  try {
    const { projects, assistants, conversations } = node.stores;
    const project = (await projects.listProjects()).find((p) => p.name === 'Demo') ?? (await projects.createProject('Demo'));
    const assistant = (await assistants.list(project.id)).find((a) => a.name === DEMO_ASSISTANT.name) ?? (await assistants.create({ projectId: project.id, config: DEMO_ASSISTANT }));
    const conversation = await conversations.create({ projectId: project.id, assistantId: assistant.id, assistantVersion: assistant.version, channel: 'demo', direction: 'inbound' });
    await runDemoCall({ observer: createCallRecorder({ conversationId: conversation.id, writer: node.writer }) });
    await node.writer.flush({ timeoutMs: 10_000 });
    const saved = await conversations.messages(conversation.id);
    console.log(`\nconversation ${conversation.id}: ${saved.length} messages and ${(await conversations.turnMetrics(conversation.id)).length} turn metrics saved`);
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
