import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { ChatMessage, LanguageModel, LlmDelta, LlmRequest, ToolCall, ToolDefinition } from '../../contracts/llm';
import type { Registrable } from '../registry';
import {
  classifyStreamError,
  incompleteStream,
  joinUrl,
  MAX_TOOL_ARGUMENTS_CHARS,
  parseEventJson,
  parseOptions,
  streamLlm,
  vendorErrorDetail,
  type LlmHttpDeps,
  type LlmStreamDecoder,
} from './http';

/**
 * `openai`: Chat Completions streaming (reference/providers.md §3.1). Through `endpoint` it covers every
 * server that speaks the same protocol:
 * - unset: `https://api.openai.com/v1/chat/completions`, `Authorization: Bearer <key>` (a key is required);
 * - Azure OpenAI: options `{ azure: { deployment, apiVersion } }`, or an endpoint whose host ends with
 *   `.openai.azure.com` → `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…` with an
 *   `api-key` header (deployment defaults to the block's model);
 * - any other endpoint (Groq, Together, Fireworks, OpenRouter, Ollama, vLLM, llama.cpp): `{endpoint}/chat/completions`
 *   when the endpoint has a path (`…/v1`, `…/openai/v1`), `{endpoint}/v1/chat/completions` when it has none,
 *   used as is when it already ends with `/chat/completions`. A key is optional there (local servers need none).
 */

const PREFIX = 'OPENAI';
const ID = 'openai';
const DEFAULT_BASE = 'https://api.openai.com/v1';
export const DEFAULT_OPENAI_MODEL = 'gpt-4o-mini';
export const DEFAULT_AZURE_API_VERSION = '2024-10-21';

export const openAiOptionsSchema = z.strictObject({
  /** Azure OpenAI: the deployment (default: the block's model) and the REST api-version. */
  azure: z
    .strictObject({
      deployment: z.string().min(1).optional(),
      apiVersion: z.string().min(1).default(DEFAULT_AZURE_API_VERSION),
    })
    .optional(),
  /** Ask for the usage chunk (`stream_options.include_usage`); turn off for servers that reject `stream_options`. */
  includeUsage: z.boolean().default(true),
  /** Name of the output limit field: default `max_completion_tokens` on api.openai.com, `max_tokens` elsewhere. */
  maxTokensField: z.enum(['max_tokens', 'max_completion_tokens']).optional(),
  /** `parallel_tool_calls` (left to the server when unset). */
  parallelToolCalls: z.boolean().optional(),
});
export type OpenAiOptions = z.output<typeof openAiOptionsSchema>;

function isAzure(endpoint: string | undefined, options: OpenAiOptions): boolean {
  if (options.azure) return true;
  if (!endpoint) return false;
  try {
    return new URL(endpoint).hostname.endsWith('.openai.azure.com');
  } catch {
    return false;
  }
}

export function openAiUrl(endpoint: string | undefined, model: string, options: OpenAiOptions): string {
  if (isAzure(endpoint, options)) {
    if (!endpoint) throw new ProviderError(`${PREFIX}_BAD_OPTIONS`, 'Azure OpenAI needs the resource endpoint (https://<resource>.openai.azure.com) in the llm block', false, 'bad-request');
    const deployment = options.azure?.deployment ?? model;
    const apiVersion = options.azure?.apiVersion ?? DEFAULT_AZURE_API_VERSION;
    const base = endpoint.replace(/\/+$/, '').replace(/\/openai$/, '');
    return `${base}/openai/deployments/${encodeURIComponent(deployment)}/chat/completions?api-version=${encodeURIComponent(apiVersion)}`;
  }
  const base = (endpoint ?? DEFAULT_BASE).replace(/\/+$/, '');
  if (base.endsWith('/chat/completions')) return base;
  const path = new URL(base).pathname;
  return joinUrl(base, path === '/' || path === '' ? '/v1/chat/completions' : '/chat/completions');
}

interface OpenAiToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

type OpenAiMessage =
  | { readonly role: 'system' | 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string | null; readonly tool_calls?: readonly OpenAiToolCall[] }
  | { readonly role: 'tool'; readonly tool_call_id: string; readonly content: string };

export function toOpenAiMessages(messages: readonly ChatMessage[]): OpenAiMessage[] {
  return messages.map((m): OpenAiMessage => {
    switch (m.role) {
      case 'system':
      case 'user':
        return { role: m.role, content: m.content };
      case 'assistant':
        if (m.toolCalls?.length) {
          return {
            role: 'assistant',
            content: m.content || null,
            tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments || '{}' } })),
          };
        }
        return { role: 'assistant', content: m.content };
      case 'tool':
        return { role: 'tool', tool_call_id: m.toolCallId ?? '', content: m.content };
    }
  });
}

export function toOpenAiTools(tools: readonly ToolDefinition[]): unknown[] {
  return tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
}

export function openAiRequestBody(request: LlmRequest, options: OpenAiOptions, defaultHost: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: request.model ?? DEFAULT_OPENAI_MODEL,
    messages: toOpenAiMessages(request.messages),
    stream: true,
  };
  if (options.includeUsage) body.stream_options = { include_usage: true };
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.maxTokens !== undefined) body[options.maxTokensField ?? (defaultHost ? 'max_completion_tokens' : 'max_tokens')] = request.maxTokens;
  if (request.tools.length > 0) {
    body.tools = toOpenAiTools(request.tools);
    body.tool_choice = 'auto';
    if (options.parallelToolCalls !== undefined) body.parallel_tool_calls = options.parallelToolCalls;
  }
  return body;
}

const chunkSchema = z.object({
  choices: z
    .array(
      z.object({
        index: z.number().int().nonnegative().optional(),
        delta: z
          .object({
            content: z.string().nullish(),
            tool_calls: z
              .array(
                z.object({
                  index: z.number().int().nonnegative().optional(),
                  id: z.string().nullish(),
                  function: z.object({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
                }),
              )
              .nullish(),
          })
          .nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .nullish(),
  usage: z
    .object({
      prompt_tokens: z.number().nonnegative(),
      completion_tokens: z.number().nonnegative(),
      prompt_tokens_details: z.object({ cached_tokens: z.number().nonnegative().nullish() }).nullish(),
    })
    .nullish(),
  error: z.unknown().optional(),
});

function finishReason(reason: string): 'stop' | 'length' | 'tool_calls' | 'other' {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    default:
      return 'other';
  }
}

/** Chat Completions chunks → deltas: text as it comes, tool calls assembled by `index` and emitted at the finish. */
export function createOpenAiDecoder(): LlmStreamDecoder {
  const pending = new Map<number, { id: string; name: string; args: string }>();
  let finish: ReturnType<typeof finishReason> | undefined;
  let done = false;

  const flushCalls = (): LlmDelta[] => {
    const out: LlmDelta[] = [];
    for (const [index, call] of [...pending.entries()].sort((a, b) => a[0] - b[0])) {
      if (!call.name) throw new ProviderError(`${PREFIX}_PROTOCOL`, `tool call ${index} never got a function name`, true, 'protocol');
      const toolCall: ToolCall = { id: call.id || `call_${index}`, name: call.name, arguments: call.args || '{}' };
      out.push({ type: 'toolCall', call: toolCall });
    }
    pending.clear();
    return out;
  };

  return {
    onEvent(event) {
      if (done) return [];
      if (event.data.trim() === '[DONE]') {
        done = true;
        const out = flushCalls();
        out.push({ type: 'done', reason: finish ?? (out.length ? 'tool_calls' : 'stop') });
        return out;
      }
      const chunk = parseEventJson(PREFIX, ID, chunkSchema, event.data);
      if (chunk.error !== undefined && chunk.error !== null) {
        throw classifyStreamError(PREFIX, ID, vendorErrorDetail(JSON.stringify({ error: chunk.error })));
      }
      const out: LlmDelta[] = [];
      for (const choice of chunk.choices ?? []) {
        if ((choice.index ?? 0) !== 0) continue;
        const text = choice.delta?.content;
        if (text) out.push({ type: 'text', text });
        const fragments = choice.delta?.tool_calls ?? [];
        fragments.forEach((fragment, position) => {
          const index = fragment.index ?? position;
          const call = pending.get(index) ?? { id: '', name: '', args: '' };
          if (fragment.id) call.id = fragment.id;
          // The name comes with the call's first fragment (some servers repeat it on every fragment).
          if (fragment.function?.name && !call.name) call.name = fragment.function.name;
          if (fragment.function?.arguments) call.args += fragment.function.arguments;
          if (call.args.length > MAX_TOOL_ARGUMENTS_CHARS) throw new ProviderError(`${PREFIX}_PROTOCOL`, `tool call arguments exceeded ${MAX_TOOL_ARGUMENTS_CHARS} characters`, false, 'protocol');
          pending.set(index, call);
        });
        if (choice.finish_reason) {
          finish = finishReason(choice.finish_reason);
          out.push(...flushCalls());
        }
      }
      if (chunk.usage) {
        const cached = chunk.usage.prompt_tokens_details?.cached_tokens;
        out.push({
          type: 'usage',
          inputTokens: chunk.usage.prompt_tokens,
          outputTokens: chunk.usage.completion_tokens,
          ...(cached ? { cachedInputTokens: cached } : {}),
        });
      }
      return out;
    },
    end() {
      if (done) return [];
      // Some compatible servers end without `[DONE]`; a finish reason says the answer was complete.
      if (finish === undefined) throw incompleteStream(PREFIX, ID, 'the answer was complete (no finish_reason, no [DONE])');
      done = true;
      return [...flushCalls(), { type: 'done', reason: finish }];
    },
  };
}

export interface OpenAiLlm extends LanguageModel, Registrable {
  readonly optionsSchema: typeof openAiOptionsSchema;
  /**
   * A block with its own `endpoint` may need no key (Ollama, vLLM, llama.cpp). For the registry: it should
   * not substitute `local` for such a block (proposed change to resolveChain, see the issue note).
   */
  readonly credentialOptionalWithEndpoint: true;
}

/**
 * The `openai` LanguageModel. `requiresCredential` is true: with no key anywhere and the local fallback on,
 * the registry substitutes `local`. A key is only *enforced* here for the default host and Azure; a keyless
 * block with a custom endpoint is sent without `Authorization`.
 */
export function createOpenAiLlm(deps: LlmHttpDeps = {}): OpenAiLlm {
  return {
    id: ID,
    requiresCredential: true,
    credentialOptionalWithEndpoint: true,
    capabilities: { tools: true, edgeCapable: true },
    optionsSchema: openAiOptionsSchema,
    async *stream(request, signal) {
      const options = parseOptions(PREFIX, ID, openAiOptionsSchema, request.options);
      const model = request.model ?? DEFAULT_OPENAI_MODEL;
      const azure = isAzure(request.endpoint, options);
      const url = openAiUrl(request.endpoint, model, options);
      const defaultHost = request.endpoint === undefined;
      if (!request.apiKey && (defaultHost || azure)) {
        throw new ProviderError(`${PREFIX}_AUTH`, `no API key for ${azure ? 'Azure OpenAI' : 'OpenAI'}. Store an openai credential in the project or set OPENAI_API_KEY.`, false, 'auth');
      }
      const headers: Record<string, string> = {};
      if (request.apiKey) {
        if (azure) headers['api-key'] = request.apiKey;
        else headers.authorization = `Bearer ${request.apiKey}`;
      }
      yield* streamLlm(
        {
          providerId: ID,
          codePrefix: PREFIX,
          url,
          headers,
          body: openAiRequestBody(request, options, defaultHost),
          decoder: createOpenAiDecoder,
          credentialHint: 'the openai credential of the project (or OPENAI_API_KEY)',
        },
        signal,
        deps,
      );
    },
  };
}
