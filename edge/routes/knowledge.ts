import { Hono } from 'hono';
import type { Context } from 'hono';
import { z } from 'zod';
import { combineWriters, DocumentInput, ingestDocument, type KnowledgeWriter } from '../../shared/knowledge/ingest';
import { KnowledgeLanguage, type KnowledgeBaseInfo, type KnowledgeStore } from '../../shared/store/knowledge';
import type { AppDeps, AppEnv } from '../app';
import { assertSameProject, projectOf } from '../auth';
import { notFound } from '../errors';
import { readJsonValue, SMALL_BODY_BYTES, validate } from '../validation';

/**
 * Knowledge bases of the request's project (the embedded full-text index; OpenSearch mirrors the chunks when
 * the host passes `knowledgeIndex`).
 *
 *   POST   /v1/knowledge-bases                          {name, description?, language?} → 201 the knowledge base
 *   GET    /v1/knowledge-bases                          the project's knowledge bases (document and chunk counts)
 *   GET    /v1/knowledge-bases/:id                      one, with its documents
 *   POST   /v1/knowledge-bases/:id/documents            {id?, title?, uri?, contentType: text|markdown|html, content}
 *                                                       → 200 {documentId, chunks, chars}; idempotent by id (again = replaced)
 *   DELETE /v1/knowledge-bases/:id/documents/:docId     204 (a document id with "/" is sent percent-encoded)
 *
 * Another project's knowledge base answers 403; an unknown one 404 `KNOWLEDGE_BASE_NOT_FOUND`.
 */

/** A document body: up to 2 MB of content, JSON-escaped. */
export const DOCUMENT_BODY_BYTES = 8 * 1024 * 1024;

const CreateKnowledgeBase = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  language: KnowledgeLanguage.optional(),
});

export const presentKnowledgeBase = (kb: KnowledgeBaseInfo) => ({
  id: kb.id,
  projectId: kb.projectId,
  name: kb.name,
  description: kb.description,
  language: kb.language,
  documentCount: kb.documentCount,
  chunkCount: kb.chunkCount,
  createdAt: kb.createdAt,
  updatedAt: kb.updatedAt,
});

const kbNotFound = (id: string) => notFound('KNOWLEDGE_BASE_NOT_FOUND', `knowledge base ${id} does not exist`);

export function knowledgeRoutes(deps: AppDeps & { readonly knowledgeIndex?: KnowledgeWriter }, store: KnowledgeStore): Hono<AppEnv> {
  const { projects } = deps.stores;
  const writer = deps.knowledgeIndex ? combineWriters(store, deps.knowledgeIndex) : store;
  const routes = new Hono<AppEnv>({ strict: false });

  async function ownKnowledgeBase(c: Context<AppEnv>, id: string): Promise<KnowledgeBaseInfo> {
    const projectId = await projectOf(c, projects);
    const kb = await store.getKnowledgeBase(id);
    if (!kb) throw kbNotFound(id);
    assertSameProject(projectId, kb.projectId, `knowledge base ${id}`);
    return kb;
  }

  routes.post('/', async (c) => {
    const projectId = await projectOf(c, projects);
    const body = validate(CreateKnowledgeBase, await readJsonValue(c, SMALL_BODY_BYTES));
    const kb = await store.createKnowledgeBase({ projectId, ...body });
    c.header('Location', `${deps.publicBaseUrl}/v1/knowledge-bases/${kb.id}`);
    return c.json(presentKnowledgeBase(kb), 201);
  });

  routes.get('/', async (c) => {
    const projectId = await projectOf(c, projects);
    return c.json({ data: (await store.listKnowledgeBases(projectId)).map(presentKnowledgeBase) });
  });

  routes.get('/:id', async (c) => {
    const kb = await ownKnowledgeBase(c, c.req.param('id'));
    return c.json({ ...presentKnowledgeBase(kb), documents: await store.listDocuments(kb.id) });
  });

  routes.post('/:id/documents', async (c) => {
    const kb = await ownKnowledgeBase(c, c.req.param('id'));
    const body = validate(DocumentInput, await readJsonValue(c, DOCUMENT_BODY_BYTES), 'the document');
    const result = await ingestDocument(writer, kb.id, body);
    if (!result) throw kbNotFound(kb.id); // deleted meanwhile
    return c.json({ knowledgeBaseId: kb.id, ...result });
  });

  routes.delete('/:id/documents/:docId', async (c) => {
    const kb = await ownKnowledgeBase(c, c.req.param('id'));
    const documentId = c.req.param('docId');
    if (!(await writer.deleteDocument(kb.id, documentId))) {
      throw notFound('DOCUMENT_NOT_FOUND', `knowledge base ${kb.id} has no document ${documentId}`);
    }
    return c.body(null, 204);
  });

  return routes;
}
