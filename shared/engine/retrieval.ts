import type { AssistantConfig } from '../config/assistant';
import type { Clock } from '../contracts/clock';
import { DEFAULT_TOP_K, type KnowledgeBase, type Passage } from '../contracts/knowledge';
import type { ChatMessage } from '../contracts/llm';

/**
 * Per-turn knowledge retrieval: the caller's turn is the query; the assistant's knowledge bases are searched
 * at once, within a latency budget (default 150 ms on the call's clock). What has arrived when the budget runs
 * out is used; searches still running are aborted and the turn goes on without them (`timedOut` says so, and
 * the turn's metrics record it). A failing knowledge base is skipped (reported, never fatal). The passages
 * reach the LLM as one system message, with their sources, placed just before the caller's last message; it
 * is not part of the call's history (each turn gets its own).
 */

export const DEFAULT_RETRIEVAL_BUDGET_MS = 150;
/** Longest query sent to a knowledge base. */
export const MAX_RETRIEVAL_QUERY_CHARS = 1000;
/** Most passage text put in front of the LLM per turn (the lowest-ranked passages give way). */
export const MAX_CONTEXT_CHARS = 6000;

export interface RetrievalSource {
  readonly knowledgeBase: KnowledgeBase;
  readonly topK: number;
  readonly minScore?: number;
}

export interface RetrievedPassage extends Passage {
  readonly knowledgeBaseId: string;
}

export interface RetrievalResult {
  readonly passages: RetrievedPassage[];
  /** Clock time the retrieval took (at most the budget, plus scheduling). */
  readonly latencyMs: number;
  readonly timedOut: boolean;
  readonly failures: { readonly knowledgeBaseId: string; readonly error: unknown }[];
}

/** The knowledge bases of an assistant, with their `topK` from its configuration (unknown ones use the default). */
export function retrievalSources(config: AssistantConfig, bases: readonly KnowledgeBase[]): RetrievalSource[] {
  return bases.map((knowledgeBase) => ({
    knowledgeBase,
    topK: config.knowledgeBases.find((k) => k.id === knowledgeBase.id)?.topK ?? DEFAULT_TOP_K,
  }));
}

const isAbort = (error: unknown) => error instanceof Error && error.name === 'AbortError';

export async function retrieve(
  sources: readonly RetrievalSource[],
  query: string,
  options: { readonly clock: Clock; readonly budgetMs?: number; readonly signal: AbortSignal },
): Promise<RetrievalResult> {
  const { clock, signal } = options;
  const budgetMs = options.budgetMs ?? DEFAULT_RETRIEVAL_BUDGET_MS;
  const startedAt = clock.now();
  const text = query.trim().slice(0, MAX_RETRIEVAL_QUERY_CHARS);
  if (!text || sources.length === 0) return { passages: [], latencyMs: 0, timedOut: false, failures: [] };

  const abort = new AbortController();
  const onOuterAbort = () => abort.abort();
  signal.addEventListener('abort', onOuterAbort, { once: true });
  const results: (RetrievedPassage[] | undefined)[] = sources.map(() => undefined);
  const failures: { knowledgeBaseId: string; error: unknown }[] = [];
  let pending = sources.length;
  let timedOut = false;

  await new Promise<void>((resolve) => {
    const timer = clock.setTimeout(() => {
      timedOut = pending > 0;
      resolve();
    }, budgetMs);
    const settled = () => {
      if (--pending === 0) {
        clock.clearTimeout(timer);
        resolve();
      }
    };
    if (signal.aborted) {
      clock.clearTimeout(timer);
      resolve();
      return;
    }
    signal.addEventListener('abort', () => (clock.clearTimeout(timer), resolve()), { once: true });
    sources.forEach((source, i) => {
      const id = source.knowledgeBase.id;
      let search: Promise<Passage[]>;
      try {
        search = source.knowledgeBase.search(text, { topK: source.topK, ...(source.minScore !== undefined ? { minScore: source.minScore } : {}) }, abort.signal);
      } catch (error) {
        search = Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      search.then(
        (passages) => {
          if (!abort.signal.aborted) results[i] = passages.slice(0, source.topK).map((p) => ({ ...p, knowledgeBaseId: id }));
          settled();
        },
        (error: unknown) => {
          if (!abort.signal.aborted || !isAbort(error)) failures.push({ knowledgeBaseId: id, error });
          settled();
        },
      );
    });
  });
  // Whatever is still running is of no use to this turn.
  abort.abort();
  signal.removeEventListener('abort', onOuterAbort);
  const latencyMs = Math.min(clock.now() - startedAt, timedOut ? budgetMs : Infinity);
  if (signal.aborted) return { passages: [], latencyMs, timedOut: false, failures: [] };
  return { passages: interleave(results), latencyMs, timedOut, failures };
}

/** Scores of different knowledge bases do not compare: their passages are taken rank by rank, in config order. */
function interleave(results: readonly (RetrievedPassage[] | undefined)[]): RetrievedPassage[] {
  const out: RetrievedPassage[] = [];
  const longest = Math.max(0, ...results.map((r) => r?.length ?? 0));
  let chars = 0;
  for (let rank = 0; rank < longest; rank++) {
    for (const list of results) {
      const p = list?.[rank];
      if (!p) continue;
      if (chars + p.text.length > MAX_CONTEXT_CHARS && out.length > 0) return out;
      chars += p.text.length;
      out.push(p);
    }
  }
  return out;
}

export const CONTEXT_HEADER =
  "Knowledge base passages retrieved for the caller's last message. Answer from them when they are relevant and name the source if it helps; if they do not contain the answer, say plainly that you do not know rather than guess.";

function sourceLabel(p: Passage): string {
  const where = `${p.source.documentId}, part ${p.source.chunk + 1}`;
  return p.source.title ? `${oneLine(p.source.title)} (${oneLine(where)})` : oneLine(where);
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();

/** The system message carrying the passages, or undefined when there are none. */
export function passagesMessage(passages: readonly Passage[]): ChatMessage | undefined {
  if (passages.length === 0) return undefined;
  const blocks = passages.map((p, i) => `[${i + 1}] Source: ${sourceLabel(p)}${p.source.uri ? ` <${oneLine(p.source.uri)}>` : ''}\n${p.text.trim()}`);
  return { role: 'system', content: `${CONTEXT_HEADER}\n\n${blocks.join('\n\n')}` };
}

/** The request's messages with the passages placed just before the caller's last message. */
export function withPassages(messages: readonly ChatMessage[], context: ChatMessage | undefined): readonly ChatMessage[] {
  if (!context) return messages;
  let lastUser = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === 'user') {
      lastUser = i;
      break;
    }
  }
  if (lastUser < 0) return [...messages, context];
  return [...messages.slice(0, lastUser), context, ...messages.slice(lastUser)];
}

/** The passages of a message built by `passagesMessage` (for models that read them back: the `local` stand-in). */
export function parsePassagesMessage(message: ChatMessage): { readonly source: string; readonly text: string }[] | undefined {
  if (message.role !== 'system' || !message.content.startsWith(CONTEXT_HEADER)) return undefined;
  const body = message.content.slice(CONTEXT_HEADER.length);
  const out: { source: string; text: string }[] = [];
  const re = /^\[(\d+)\] Source: (.*)$/gm;
  const heads = [...body.matchAll(re)];
  heads.forEach((m, i) => {
    const start = m.index + m[0].length;
    const end = heads[i + 1]?.index ?? body.length;
    out.push({ source: m[2]!, text: body.slice(start, end).trim() });
  });
  return out;
}
