import { Hono } from 'hono';
import { z } from 'zod';
import type { CallEventRecord, Conversation, Message, StoredTurnMetrics } from '../../shared/store/conversations';
import type { AppDeps, AppEnv } from '../app';
import { assertSameProject, projectOf } from '../auth';
import { badRequest, notFound } from '../errors';
import { readQuery } from '../validation';

/**
 * Conversations of the request's project (read-only: calls write them).
 * `GET /v1/conversations/:id`: the conversation, its messages in order (assistant messages carry `heardText`,
 * what the caller actually heard, and `interrupted`), its per-turn metrics and its carrier call events.
 * `GET /v1/conversations?assistantId=&limit=&before=`: newest first; `nextBefore` (the last id of a full
 * page) is the `before` of the next page, null at the end.
 */

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

const ListQuery = z.object({
  assistantId: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  before: z.uuid().optional(),
});

export const presentConversation = (c: Conversation) => ({
  id: c.id,
  projectId: c.projectId,
  assistantId: c.assistantId,
  assistantVersion: c.assistantVersion,
  channel: c.channel,
  direction: c.direction,
  status: c.status,
  startedAt: c.startedAt,
  endedAt: c.endedAt,
  durationMs: c.durationMs,
  disconnectReason: c.disconnectReason,
  metadata: c.metadata,
  variables: c.variables,
  createdAt: c.createdAt,
  updatedAt: c.updatedAt,
});

const presentMessage = (m: Message) => ({
  seq: m.seq,
  turnId: m.turnId,
  role: m.role,
  text: m.text,
  heardText: m.heardText,
  interrupted: m.interrupted,
  toolCalls: m.toolCalls,
  toolCallId: m.toolCallId,
  startedAt: m.startedAt,
  endedAt: m.endedAt,
  createdAt: m.createdAt,
});

const presentTurnMetrics = (m: StoredTurnMetrics) => {
  const { conversationId: _conversationId, ...rest } = m;
  return rest;
};

const presentCallEvent = (e: CallEventRecord) => ({
  provider: e.provider,
  providerEventId: e.providerEventId,
  status: e.status,
  occurredAt: e.occurredAt,
  callContextId: e.callContextId,
});

export function conversationRoutes(deps: AppDeps): Hono<AppEnv> {
  const { conversations, assistants, projects } = deps.stores;
  const routes = new Hono<AppEnv>({ strict: false });

  routes.get('/', async (c) => {
    const projectId = await projectOf(c, projects);
    const query = readQuery(c, ListQuery);
    if (query.assistantId !== undefined) {
      // Version 1 exists for every assistant, deleted ones too (their conversations stay listable).
      const assistant = await assistants.get(query.assistantId, 1);
      if (!assistant) throw notFound('ASSISTANT_NOT_FOUND', `assistant ${query.assistantId} does not exist`);
      assertSameProject(projectId, assistant.projectId, `assistant ${query.assistantId}`);
    }
    if (query.before !== undefined) {
      const cursor = await conversations.get(query.before);
      if (!cursor || cursor.projectId !== projectId) {
        throw badRequest('VALIDATION_FAILED', 'the query string is invalid', {
          issues: [{ path: 'before', message: 'names no conversation of this project; pass the nextBefore of the previous page' }],
        });
      }
    }
    const page = await conversations.listByProject(projectId, {
      limit: query.limit,
      ...(query.before === undefined ? {} : { beforeId: query.before }),
      ...(query.assistantId === undefined ? {} : { assistantId: query.assistantId }),
    });
    const last = page.at(-1);
    return c.json({ data: page.map(presentConversation), nextBefore: page.length === query.limit && last ? last.id : null });
  });

  routes.get('/:id', async (c) => {
    const projectId = await projectOf(c, projects);
    const id = c.req.param('id');
    const conversation = await conversations.get(id);
    if (!conversation) throw notFound('CONVERSATION_NOT_FOUND', `conversation ${id} does not exist`);
    assertSameProject(projectId, conversation.projectId, `conversation ${id}`);
    const [messages, metrics, events] = await Promise.all([
      conversations.messages(id),
      conversations.turnMetrics(id),
      conversations.callEvents({ conversationId: id }),
    ]);
    return c.json({
      conversation: presentConversation(conversation),
      messages: messages.map(presentMessage),
      turnMetrics: metrics.map(presentTurnMetrics),
      events: events.map(presentCallEvent),
    });
  });

  return routes;
}
