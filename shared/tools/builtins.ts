import type { ToolAction } from '../config/assistant';
import type { CallControl } from './control';
import { ToolError } from './http-tool';

/**
 * The built-in tools. Each runs through a capability handed to it (the engine's CallControl, a knowledge
 * search function), so it works the same on any channel and runtime; what a capability cannot do becomes a
 * ToolError the model reads ("this call cannot be transferred"), never an exception in the call.
 */

/** One passage found by a knowledge search (the shape of shared/contracts/knowledge.ts, as far as tools need it). */
export interface KnowledgePassage {
  readonly text: string;
  readonly score?: number;
  readonly source?: { readonly documentId?: string; readonly title?: string; readonly uri?: string; readonly chunk?: number };
}

/** Searches the assistant's knowledge bases (all of them when `knowledgeBases` is absent). */
export type KnowledgeSearch = (
  query: string,
  options: { readonly knowledgeBases?: readonly string[]; readonly topK: number },
  signal: AbortSignal,
) => Promise<readonly KnowledgePassage[]>;

/** Longest passage text handed back to the model (the rest of a long chunk is cut). */
const MAX_PASSAGE_CHARS = 2000;

export const BUILTIN_DEFAULTS: Readonly<Record<Exclude<ToolAction['type'], 'http'>, { description: string; parameters: Record<string, unknown> }>> = {
  end_call: {
    description: 'End the phone call. Call it once the conversation is over and you have said goodbye.',
    parameters: { type: 'object', properties: {} },
  },
  transfer_call: {
    description: 'Transfer the caller to a human agent. Call it when the caller asks for a person or you cannot help them.',
    parameters: { type: 'object', properties: {} },
  },
  knowledge_lookup: {
    description: "Search the knowledge base for facts that answer the caller's question. Answer from the passages it returns.",
    parameters: {
      type: 'object',
      properties: { query: { type: 'string', description: 'What to look up, as a short question or keywords.' } },
      required: ['query'],
    },
  },
};

export function runEndCall(action: Extract<ToolAction, { type: 'end_call' }>, control: CallControl | undefined): string {
  if (!control) throw new ToolError('ending the call is not available here');
  control.endAfterReply({ kind: 'hangup', message: action.goodbye ?? '', reason: 'end-call' });
  return JSON.stringify({ ok: true, note: 'The call ends once your reply has been spoken.' });
}

export function runTransferCall(action: Extract<ToolAction, { type: 'transfer_call' }>, control: CallControl | undefined): string {
  if (!control?.canTransfer) throw new ToolError('this call cannot be transferred (its channel has no transfer); offer another way to help');
  control.endAfterReply({ kind: 'transfer', message: action.announcement ?? '', to: action.to });
  return JSON.stringify({ ok: true, note: 'The caller is transferred once your reply has been spoken.' });
}

export async function runKnowledgeLookup(
  action: Extract<ToolAction, { type: 'knowledge_lookup' }>,
  args: Readonly<Record<string, unknown>>,
  search: KnowledgeSearch | undefined,
  signal: AbortSignal,
): Promise<string> {
  if (!search) throw new ToolError('no knowledge base is available for this call');
  const query = typeof args.query === 'string' ? args.query.trim() : '';
  if (!query) throw new ToolError('"query" must be a non-empty string');
  const passages = await search(query, { ...(action.knowledgeBases ? { knowledgeBases: action.knowledgeBases } : {}), topK: action.topK }, signal);
  if (passages.length === 0) return JSON.stringify({ passages: [], note: 'Nothing found; say plainly that you do not know.' });
  return JSON.stringify({
    passages: passages.slice(0, action.topK).map((p) => ({
      text: p.text.length > MAX_PASSAGE_CHARS ? `${p.text.slice(0, MAX_PASSAGE_CHARS)}…` : p.text,
      ...(p.source ? { source: p.source.title ?? p.source.uri ?? p.source.documentId } : {}),
      ...(p.score !== undefined ? { score: Math.round(p.score * 1000) / 1000 } : {}),
    })),
  });
}
