import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';
import type { ChatMessage, LanguageModel, LlmDelta, LlmRequest, ToolDefinition } from '../../contracts/llm';
import type { Registrable } from '../registry';
import {
  classifyStreamError,
  incompleteStream,
  joinUrl,
  MAX_TOOL_ARGUMENTS_CHARS,
  parseEventJson,
  parseOptions,
  streamLlm,
  type LlmHttpDeps,
  type LlmStreamDecoder,
} from './http';

/**
 * `anthropic`: Messages streaming (reference/providers.md §3.3). `POST {endpoint}/v1/messages` with
 * `x-api-key` and `anthropic-version`; system prompts go top-level; tool calls are `tool_use` blocks whose
 * `input_json_delta` fragments are joined and checked at `content_block_stop`; `ping` and unknown events are
 * ignored; an `error` event ends the stream with the vendor's error.
 */

const PREFIX = 'ANTHROPIC';
const ID = 'anthropic';
const DEFAULT_BASE = 'https://api.anthropic.com';
export const DEFAULT_ANTHROPIC_MODEL = 'claude-haiku-4-5';
/** Messages needs `max_tokens`; a spoken reply rarely needs more. */
export const DEFAULT_ANTHROPIC_MAX_TOKENS = 1024;
/** Put first when a history starts with the assistant (the greeting): Messages wants a user turn first. */
export const CALL_STARTED_PLACEHOLDER = '(The call has started.)';

export const anthropicOptionsSchema = z.strictObject({
  /** `anthropic-version` header. */
  version: z.string().min(1).default('2023-06-01'),
  /** `anthropic-beta` header (comma-separated feature names), when wanted. */
  beta: z.string().min(1).optional(),
});
export type AnthropicOptions = z.output<typeof anthropicOptionsSchema>;

type Block =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'tool_use'; readonly id: string; readonly name: string; readonly input: unknown }
  | { readonly type: 'tool_result'; readonly tool_use_id: string; readonly content: string };

interface AnthropicMessage {
  readonly role: 'user' | 'assistant';
  readonly content: Block[];
}

function parseArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text || '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/**
 * ChatMessages → `system` + alternating messages: tool results become `tool_result` blocks of a user turn,
 * assistant tool calls `tool_use` blocks; consecutive turns of one role merge; empty text blocks (refused by
 * the API) are dropped, and so are messages left empty.
 */
export function toAnthropicMessages(messages: readonly ChatMessage[]): { system: string | undefined; messages: AnthropicMessage[] } {
  const system: string[] = [];
  const out: AnthropicMessage[] = [];
  const append = (role: 'user' | 'assistant', blocks: Block[]): void => {
    if (blocks.length === 0) return;
    const last = out[out.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  };
  for (const m of messages) {
    switch (m.role) {
      case 'system':
        if (m.content) system.push(m.content);
        break;
      case 'user':
        append('user', m.content ? [{ type: 'text', text: m.content }] : []);
        break;
      case 'assistant': {
        const blocks: Block[] = m.content.trim() ? [{ type: 'text', text: m.content }] : [];
        for (const call of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: parseArguments(call.arguments) });
        append('assistant', blocks);
        break;
      }
      case 'tool':
        append('user', [{ type: 'tool_result', tool_use_id: m.toolCallId ?? '', content: m.content }]);
        break;
    }
  }
  if (out[0]?.role === 'assistant') out.unshift({ role: 'user', content: [{ type: 'text', text: CALL_STARTED_PLACEHOLDER }] });
  // A final assistant turn is a prefill, which may not end in whitespace.
  const last = out[out.length - 1];
  if (last?.role === 'assistant') {
    const block = last.content[last.content.length - 1];
    if (block?.type === 'text') last.content[last.content.length - 1] = { type: 'text', text: block.text.trimEnd() };
  }
  return { system: system.length ? system.join('\n\n') : undefined, messages: out };
}

export function toAnthropicTools(tools: readonly ToolDefinition[]): unknown[] {
  return tools.map((t) => ({ name: t.name, description: t.description, input_schema: { type: 'object', ...t.parameters } }));
}

export function anthropicRequestBody(request: LlmRequest): Record<string, unknown> {
  const { system, messages } = toAnthropicMessages(request.messages);
  const body: Record<string, unknown> = {
    model: request.model ?? DEFAULT_ANTHROPIC_MODEL,
    max_tokens: request.maxTokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS,
    messages,
    stream: true,
  };
  if (system !== undefined) body.system = system;
  if (request.temperature !== undefined) body.temperature = Math.min(1, request.temperature);
  if (request.tools.length > 0) body.tools = toAnthropicTools(request.tools);
  return body;
}

const usageSchema = z.object({
  input_tokens: z.number().nonnegative().nullish(),
  output_tokens: z.number().nonnegative().nullish(),
  cache_creation_input_tokens: z.number().nonnegative().nullish(),
  cache_read_input_tokens: z.number().nonnegative().nullish(),
});

const eventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message_start'), message: z.object({ usage: usageSchema.nullish() }) }),
  z.object({
    type: z.literal('content_block_start'),
    index: z.number().int().nonnegative(),
    content_block: z.looseObject({ type: z.string(), id: z.string().optional(), name: z.string().optional(), text: z.string().optional() }),
  }),
  z.object({
    type: z.literal('content_block_delta'),
    index: z.number().int().nonnegative(),
    delta: z.looseObject({ type: z.string(), text: z.string().optional(), partial_json: z.string().optional() }),
  }),
  z.object({ type: z.literal('content_block_stop'), index: z.number().int().nonnegative() }),
  z.object({ type: z.literal('message_delta'), delta: z.object({ stop_reason: z.string().nullish() }), usage: usageSchema.nullish() }),
  z.object({ type: z.literal('message_stop') }),
  z.object({ type: z.literal('ping') }),
  z.object({ type: z.literal('error'), error: z.object({ type: z.string().optional(), message: z.string().optional() }) }),
]);

const KNOWN_EVENTS = new Set(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop', 'ping', 'error']);

function stopReason(reason: string | null | undefined): 'stop' | 'length' | 'tool_calls' | 'other' {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    default:
      return 'other';
  }
}

/** Messages events → deltas. Usage comes out once, before `done`: input (+ cache) from `message_start`, output from the last `message_delta`. */
export function createAnthropicDecoder(): LlmStreamDecoder {
  const tools = new Map<number, { id: string; name: string; json: string }>();
  let input = 0;
  let cached = 0;
  let output = 0;
  let reason: string | null | undefined;
  let stopped = false;

  return {
    onEvent(event) {
      if (stopped) return [];
      // Dispatch on the JSON's `type` (the `event:` line repeats it); new event types are ignored.
      const type = event.event !== 'message' ? event.event : undefined;
      if (type && !KNOWN_EVENTS.has(type)) return [];
      const raw = parseEventJson(PREFIX, ID, z.looseObject({ type: z.string() }), event.data);
      if (!KNOWN_EVENTS.has(raw.type)) return [];
      const e = parseEventJson(PREFIX, ID, eventSchema, event.data);
      switch (e.type) {
        case 'message_start': {
          const u = e.message.usage;
          cached = u?.cache_read_input_tokens ?? 0;
          input = (u?.input_tokens ?? 0) + (u?.cache_creation_input_tokens ?? 0) + cached;
          output = u?.output_tokens ?? 0;
          return [];
        }
        case 'content_block_start':
          if (e.content_block.type === 'tool_use') {
            if (!e.content_block.id || !e.content_block.name) throw new ProviderError(`${PREFIX}_PROTOCOL`, 'a tool_use block came without id or name', true, 'protocol');
            tools.set(e.index, { id: e.content_block.id, name: e.content_block.name, json: '' });
          }
          if (e.content_block.type === 'text' && e.content_block.text) return [{ type: 'text', text: e.content_block.text }];
          return [];
        case 'content_block_delta':
          if (e.delta.type === 'text_delta' && e.delta.text) return [{ type: 'text', text: e.delta.text }];
          if (e.delta.type === 'input_json_delta') {
            const tool = tools.get(e.index);
            if (!tool) throw new ProviderError(`${PREFIX}_PROTOCOL`, `input_json_delta for block ${e.index}, which is not a tool_use block`, true, 'protocol');
            tool.json += e.delta.partial_json ?? '';
            if (tool.json.length > MAX_TOOL_ARGUMENTS_CHARS) throw new ProviderError(`${PREFIX}_PROTOCOL`, `tool input exceeded ${MAX_TOOL_ARGUMENTS_CHARS} characters`, false, 'protocol');
          }
          // thinking_delta, signature_delta, citations_delta: not spoken.
          return [];
        case 'content_block_stop': {
          const tool = tools.get(e.index);
          if (!tool) return [];
          tools.delete(e.index);
          const args = tool.json.trim() || '{}';
          try {
            JSON.parse(args);
          } catch {
            throw new ProviderError(`${PREFIX}_PROTOCOL`, `the input of tool call ${tool.name} is not valid JSON: ${args.slice(0, 120)}`, true, 'protocol');
          }
          return [{ type: 'toolCall', call: { id: tool.id, name: tool.name, arguments: args } }];
        }
        case 'message_delta':
          if (e.delta.stop_reason !== undefined) reason = e.delta.stop_reason;
          if (e.usage?.output_tokens !== undefined && e.usage.output_tokens !== null) output = e.usage.output_tokens;
          if (e.usage?.input_tokens) input = e.usage.input_tokens + (e.usage.cache_creation_input_tokens ?? 0) + (e.usage.cache_read_input_tokens ?? cached);
          return [];
        case 'message_stop':
          stopped = true;
          return [
            { type: 'usage', inputTokens: input, outputTokens: output, ...(cached ? { cachedInputTokens: cached } : {}) },
            { type: 'done', reason: stopReason(reason) },
          ];
        case 'ping':
          return [];
        case 'error':
          throw classifyStreamError(PREFIX, ID, { type: e.error.type, message: e.error.message ?? '', code: undefined });
      }
    },
    end() {
      if (!stopped) throw incompleteStream(PREFIX, ID, 'message_stop');
      return [];
    },
  };
}

export interface AnthropicLlm extends LanguageModel, Registrable {
  readonly optionsSchema: typeof anthropicOptionsSchema;
}

export function createAnthropicLlm(deps: LlmHttpDeps = {}): AnthropicLlm {
  return {
    id: ID,
    requiresCredential: true,
    capabilities: { tools: true, edgeCapable: true },
    optionsSchema: anthropicOptionsSchema,
    async *stream(request, signal): AsyncGenerator<LlmDelta> {
      const options = parseOptions(PREFIX, ID, anthropicOptionsSchema, request.options);
      if (!request.apiKey) throw new ProviderError(`${PREFIX}_AUTH`, 'no API key for Anthropic. Store an anthropic credential in the project or set ANTHROPIC_API_KEY.', false, 'auth');
      const headers: Record<string, string> = { 'x-api-key': request.apiKey, 'anthropic-version': options.version };
      if (options.beta) headers['anthropic-beta'] = options.beta;
      // The endpoint is the API's base (https://api.anthropic.com, or a proxy); `/v1` there is tolerated.
      const base = (request.endpoint ?? DEFAULT_BASE).replace(/\/+$/, '').replace(/\/v1$/, '');
      yield* streamLlm(
        {
          providerId: ID,
          codePrefix: PREFIX,
          url: joinUrl(base, '/v1/messages'),
          headers,
          body: anthropicRequestBody(request),
          decoder: createAnthropicDecoder,
          credentialHint: 'the anthropic credential of the project (or ANTHROPIC_API_KEY)',
        },
        signal,
        deps,
      );
    },
  };
}
