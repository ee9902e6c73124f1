import type { KnowledgeBase, Passage } from '../../shared/contracts/knowledge';
import type { ChatMessage, LanguageModel, LlmDelta, LlmRequest, ToolCall } from '../../shared/contracts/llm';
import { parsePassagesMessage } from '../../shared/engine/retrieval';
import { sentences } from '../../shared/knowledge/chunking';

/**
 * `local`: a DEVELOPMENT STAND-IN for a language model, so `npm start` holds a sensible conversation offline
 * and without keys. It is not a model: a few fixed intents and extractive answers.
 *
 * - greeting and small talk ("hello", "how are you", "thanks") → a fixed friendly line;
 * - goodbye ("bye", "that's all") → a goodbye, then the `end_call` tool (when the request declares it);
 * - "a human / an agent / a person, please" → a short line, then the `transfer_call` tool (when declared);
 * - anything else is a question: answered with the most relevant sentences of the best passage, taken from
 *   the passages the engine put in the request (shared/engine/retrieval.ts) or, when there are none, from its
 *   own search of `knowledge`; with no passage that shares a word with the question it says plainly that it
 *   has no answer.
 *
 * The reply streams token by token (a word a token, `tokenDelayMs` apart), then any tool call, usage, done.
 * After a tool round it answers from the tool's result the same way (end_call / transfer_call: nothing more).
 */

export interface LocalLlmOptions {
  /** Searched for a question when the request carries no passages. */
  readonly knowledge?: readonly KnowledgeBase[] | (() => readonly KnowledgeBase[]);
  /** Pause between tokens, ms (default 15: like a fast hosted model). */
  readonly tokenDelayMs?: number;
}

export const LOCAL_NO_ANSWER = "I'm sorry, I don't have an answer to that. Is there anything else I can help you with?";
const GREETING = 'Hello! How can I help you today?';
const HOW_ARE_YOU = "I'm doing well, thank you. How can I help you today?";
const THANKS = "You're welcome. Is there anything else I can help you with?";
const GOODBYE = 'Thank you for calling. Goodbye!';
const TRANSFER = 'Of course, let me transfer you to a person now.';
const NO_TRANSFER = "I'm sorry, I can't transfer you to a person right now, but I'm happy to help.";

const STOP_WORDS = new Set(
  (
    'a an the and or but if then so of to in on at by for with from into about as is are was were be been being am do does did ' +
    'have has had i you he she it we they me my your our their its this that these those what which who whom whose when where why how ' +
    'can could would should will shall may might must not no yes please tell know want like get there here any some much many ' +
    'just also very than too up out over again more most only own same such each few all both'
  ).split(' '),
);

/** Content words, lower-case, crudely stemmed (plural, -ing, -ed), so "opens", "opening" and "open" meet. */
export function contentTerms(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '').split(/[^a-z0-9]+/)) {
    if (!raw || STOP_WORDS.has(raw)) continue;
    let w = raw;
    if (w.length > 5 && w.endsWith('ing')) w = w.slice(0, -3);
    else if (w.length > 4 && w.endsWith('ed')) w = w.slice(0, -2);
    else if (w.length > 4 && w.endsWith('ies')) w = `${w.slice(0, -3)}y`;
    else if (w.length > 3 && w.endsWith('es') && /(ss|sh|ch|x|z)es$/.test(w)) w = w.slice(0, -2);
    else if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss')) w = w.slice(0, -1);
    out.push(w);
  }
  return out;
}

type Intent = 'transfer' | 'goodbye' | 'howAreYou' | 'greeting' | 'thanks' | 'question';

export function localIntent(text: string): Intent {
  const t = text.toLowerCase().replace(/[^a-z' ]+/g, ' ').replace(/\s+/g, ' ').trim();
  const words = t ? t.split(' ').length : 0;
  const asksForPerson = /\b(humans?|agents?|operator|representative|real person|live person|a person)\b/.test(t);
  const asksForSomeone = /\b(someone|somebody)\b/.test(t) && /\b(speak|talk|transfer|connect|put me through)\b/.test(t);
  if (asksForPerson || asksForSomeone) return 'transfer';
  if (/\b(bye|goodbye|good bye|bye bye|see you|that's all|that is all|thats all|hang up|end the call|nothing else)\b/.test(t)) return 'goodbye';
  if (/\bhow are you\b|\bhow's it going\b|\bhow are things\b/.test(t) && words <= 8) return 'howAreYou';
  if (/^(hi|hello|hey|hiya|howdy|good (morning|afternoon|evening))\b/.test(t) && words <= 4) return 'greeting';
  if (/\b(thanks|thank you|cheers)\b/.test(t) && words <= 6) return 'thanks';
  if (!t) return 'greeting';
  return 'question';
}

/**
 * The best passage's most relevant sentences: the passage whose best sentence shares most content words with
 * the question (earlier-ranked wins a tie), then its two best sentences in their own order.
 */
export function extractAnswer(question: string, passages: readonly { readonly text: string }[], maxChars = 320): string | undefined {
  const wanted = new Set(contentTerms(question));
  if (wanted.size === 0) return undefined;
  let best: { score: number; picked: string[] } | undefined;
  for (const passage of passages) {
    const scored = passage.text
      .split(/\n+/)
      .flatMap((line) => sentences(line))
      .map((s, i) => ({ s, i, score: new Set(contentTerms(s).filter((w) => wanted.has(w))).size }));
    const top = [...scored].filter((x) => x.score > 0).sort((a, b) => b.score - a.score || a.i - b.i);
    if (top.length === 0) continue;
    if (best && top[0]!.score <= best.score) continue;
    const picked: typeof top = [top[0]!];
    const second = top[1];
    if (second && picked[0]!.s.length + second.s.length + 1 <= maxChars) picked.push(second);
    best = { score: top[0]!.score, picked: picked.sort((a, b) => a.i - b.i).map((x) => x.s) };
  }
  if (!best) return undefined;
  const text = best.picked.join(' ');
  return text.length <= maxChars ? text : `${text.slice(0, maxChars).replace(/\s+\S*$/, '')}…`;
}

function abortError(): Error {
  const e = new Error('aborted');
  e.name = 'AbortError';
  return e;
}

function lastOf(messages: readonly ChatMessage[], role: ChatMessage['role']): ChatMessage | undefined {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === role) return messages[i];
  return undefined;
}

export function createLocalLlm(options: LocalLlmOptions = {}): LanguageModel {
  const tokenDelayMs = options.tokenDelayMs ?? 15;
  let callCounter = 0;
  const bases = () => (typeof options.knowledge === 'function' ? options.knowledge() : (options.knowledge ?? []));

  const sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(abortError());
      const onAbort = () => {
        clearTimeout(handle);
        reject(abortError());
      };
      const handle = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });

  async function search(question: string, signal: AbortSignal): Promise<Passage[]> {
    const found: Passage[] = [];
    for (const kb of bases()) {
      try {
        found.push(...(await kb.search(question, { topK: 3 }, signal)));
      } catch (error) {
        if (signal.aborted) throw abortError();
        void error; // A knowledge base that fails leaves the others.
      }
    }
    return found;
  }

  async function respond(request: LlmRequest, signal: AbortSignal): Promise<{ text: string; calls: ToolCall[] }> {
    const declared = new Set(request.tools.map((t) => t.name));
    const call = (name: string): ToolCall => ({ id: `local_call_${++callCounter}`, name, arguments: '{}' });
    const messages = request.messages;
    const last = messages[messages.length - 1];
    const question = lastOf(messages, 'user')?.content ?? '';

    if (last?.role === 'tool') {
      const answered = [...messages].reverse().find((m) => m.toolCalls?.some((c) => c.id === last.toolCallId));
      const name = answered?.toolCalls?.find((c) => c.id === last.toolCallId)?.name;
      if (name === 'end_call' || name === 'transfer_call') return { text: '', calls: [] };
      if (/^error\b/i.test(last.content.trim())) return { text: "Sorry, I couldn't get that information right now.", calls: [] };
      return { text: extractAnswer(question, [{ text: last.content }]) ?? LOCAL_NO_ANSWER, calls: [] };
    }

    switch (localIntent(question)) {
      case 'transfer':
        return declared.has('transfer_call') ? { text: TRANSFER, calls: [call('transfer_call')] } : { text: NO_TRANSFER, calls: [] };
      case 'goodbye':
        return { text: GOODBYE, calls: declared.has('end_call') ? [call('end_call')] : [] };
      case 'howAreYou':
        return { text: HOW_ARE_YOU, calls: [] };
      case 'greeting':
        return { text: GREETING, calls: [] };
      case 'thanks':
        return { text: THANKS, calls: [] };
      case 'question': {
        let passages: { text: string }[] = [];
        for (const m of messages) passages = parsePassagesMessage(m) ?? passages;
        if (passages.length === 0) passages = await search(question, signal);
        return { text: extractAnswer(question, passages) ?? LOCAL_NO_ANSWER, calls: [] };
      }
    }
  }

  return {
    id: 'local',
    capabilities: { tools: true, edgeCapable: false },
    async *stream(request, signal): AsyncIterable<LlmDelta> {
      if (signal.aborted) throw abortError();
      const { text, calls } = await respond(request, signal);
      const tokens = text.match(/\S+\s*/g) ?? [];
      for (const [i, token] of tokens.entries()) {
        if (i > 0 && tokenDelayMs > 0) await sleep(tokenDelayMs, signal);
        if (signal.aborted) throw abortError();
        yield { type: 'text', text: token };
      }
      for (const call of calls) yield { type: 'toolCall', call };
      const inputTokens = request.messages.reduce((n, m) => n + Math.ceil(m.content.length / 4), 0);
      yield { type: 'usage', inputTokens, outputTokens: tokens.length };
      yield { type: 'done', reason: calls.length ? 'tool_calls' : 'stop' };
    },
  };
}
