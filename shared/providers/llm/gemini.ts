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
  vendorErrorDetail,
  type LlmHttpDeps,
  type LlmStreamDecoder,
} from './http';

/**
 * `gemini`: `models/{model}:streamGenerateContent?alt=sse` (reference/providers.md §3.4), key in
 * `x-goog-api-key`. No end marker: the stream ends with the body, the last chunk carrying `finishReason`.
 * Function calls arrive as whole `functionCall` parts without ids: each gets a stable id
 * `gemini_<messages in the request>_<n>` (deterministic for a request, unique within a conversation since
 * every tool round adds messages), unless the part carries its own `id`.
 */

const PREFIX = 'GEMINI';
const ID = 'gemini';
const DEFAULT_BASE = 'https://generativelanguage.googleapis.com/v1beta';
export const DEFAULT_GEMINI_MODEL = 'gemini-2.5-flash';

export const geminiOptionsSchema = z.strictObject({
  /** `generationConfig.thinkingConfig.thinkingBudget` (0 turns thinking off on Flash models: lowest latency). */
  thinkingBudget: z.number().int().min(-1).optional(),
});
export type GeminiOptions = z.output<typeof geminiOptionsSchema>;

/**
 * Gemini's `Schema` is an OpenAPI 3.0 subset: JSON-schema keywords outside it (`additionalProperties`,
 * `$schema`, `$ref`, `$defs`, `const`, `default`, `examples`, `oneOf`, `allOf`, `not`, ...) make the request fail
 * with 400, so only the keywords below are kept. A `type` list with "null" becomes `nullable: true`.
 */
const GEMINI_SCHEMA_KEYS = new Set([
  'type', 'format', 'title', 'description', 'nullable', 'enum', 'items', 'properties', 'required', 'minItems', 'maxItems',
  'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'anyOf', 'propertyOrdering', 'minProperties', 'maxProperties',
]);

export function toGeminiSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toGeminiSchema);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    if (!GEMINI_SCHEMA_KEYS.has(key)) continue;
    if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([name, sub]) => [name, toGeminiSchema(sub)]));
    } else if (key === 'type' && Array.isArray(value)) {
      const types = value.filter((t) => t !== 'null');
      if (types.length !== value.length) out.nullable = true;
      if (types[0] !== undefined) out.type = types[0];
    } else if (key === 'items' || key === 'anyOf') {
      out[key] = toGeminiSchema(value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function toGeminiTools(tools: readonly ToolDefinition[]): unknown[] {
  if (tools.length === 0) return [];
  return [
    {
      functionDeclarations: tools.map((t) => {
        const parameters = toGeminiSchema(t.parameters) as Record<string, unknown>;
        const properties = parameters.properties as Record<string, unknown> | undefined;
        // An OBJECT without properties is refused: a tool without arguments declares no parameters.
        const hasParameters = properties !== undefined && Object.keys(properties).length > 0;
        return { name: t.name, description: t.description, ...(hasParameters ? { parameters } : {}) };
      }),
    },
  ];
}

type Part =
  | { readonly text: string }
  | { readonly functionCall: { readonly name: string; readonly args: unknown } }
  | { readonly functionResponse: { readonly name: string; readonly response: unknown } };

interface GeminiContent {
  readonly role: 'user' | 'model';
  readonly parts: Part[];
}

function objectOf(text: string, wrapKey: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Plain text.
  }
  return { [wrapKey]: text };
}

/**
 * ChatMessages → `systemInstruction` + `contents`: assistant → role `model` with `functionCall` parts; a tool
 * result → a `functionResponse` part of a user turn, named after its call (found by id in the history), its
 * response the result's JSON object or `{ result: text }`. Consecutive turns of one role merge.
 */
export function toGeminiContents(messages: readonly ChatMessage[]): { systemInstruction: { parts: { text: string }[] } | undefined; contents: GeminiContent[] } {
  const system: string[] = [];
  const contents: GeminiContent[] = [];
  const callNames = new Map<string, string>();
  const append = (role: 'user' | 'model', parts: Part[]): void => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of messages) {
    switch (m.role) {
      case 'system':
        if (m.content) system.push(m.content);
        break;
      case 'user':
        append('user', m.content ? [{ text: m.content }] : []);
        break;
      case 'assistant': {
        const parts: Part[] = m.content ? [{ text: m.content }] : [];
        for (const call of m.toolCalls ?? []) {
          callNames.set(call.id, call.name);
          parts.push({ functionCall: { name: call.name, args: objectOf(call.arguments || '{}', 'value') } });
        }
        append('model', parts);
        break;
      }
      case 'tool': {
        const name = callNames.get(m.toolCallId ?? '') ?? 'tool';
        append('user', [{ functionResponse: { name, response: objectOf(m.content, 'result') } }]);
        break;
      }
    }
  }
  return { systemInstruction: system.length ? { parts: [{ text: system.join('\n\n') }] } : undefined, contents };
}

export function geminiRequestBody(request: LlmRequest, options: GeminiOptions): Record<string, unknown> {
  const { systemInstruction, contents } = toGeminiContents(request.messages);
  const body: Record<string, unknown> = { contents };
  if (systemInstruction) body.systemInstruction = systemInstruction;
  const tools = toGeminiTools(request.tools);
  if (tools.length) body.tools = tools;
  const generationConfig: Record<string, unknown> = {};
  if (request.temperature !== undefined) generationConfig.temperature = request.temperature;
  if (request.maxTokens !== undefined) generationConfig.maxOutputTokens = request.maxTokens;
  if (options.thinkingBudget !== undefined) generationConfig.thinkingConfig = { thinkingBudget: options.thinkingBudget };
  if (Object.keys(generationConfig).length) body.generationConfig = generationConfig;
  return body;
}

const chunkSchema = z.object({
  candidates: z
    .array(
      z.object({
        index: z.number().int().nonnegative().optional(),
        content: z
          .object({
            parts: z
              .array(
                z.object({
                  text: z.string().optional(),
                  thought: z.boolean().optional(),
                  functionCall: z.object({ id: z.string().optional(), name: z.string(), args: z.record(z.string(), z.unknown()).nullish() }).optional(),
                }),
              )
              .nullish(),
          })
          .nullish(),
        finishReason: z.string().nullish(),
      }),
    )
    .nullish(),
  promptFeedback: z.object({ blockReason: z.string().nullish() }).nullish(),
  usageMetadata: z
    .object({
      promptTokenCount: z.number().nonnegative().nullish(),
      candidatesTokenCount: z.number().nonnegative().nullish(),
      thoughtsTokenCount: z.number().nonnegative().nullish(),
      cachedContentTokenCount: z.number().nonnegative().nullish(),
    })
    .nullish(),
  error: z.unknown().optional(),
});

function finishReason(reason: string, sawCalls: boolean): 'stop' | 'length' | 'tool_calls' | 'other' {
  if (reason === 'STOP') return sawCalls ? 'tool_calls' : 'stop';
  if (reason === 'MAX_TOKENS') return 'length';
  return 'other';
}

/** GenerateContentResponse chunks → deltas; `idBase` makes the ids of the response's function calls. */
export function createGeminiDecoder(idBase: string): LlmStreamDecoder {
  let calls = 0;
  let finish: string | undefined;
  let usage: z.output<typeof chunkSchema>['usageMetadata'];
  return {
    onEvent(event) {
      const chunk = parseEventJson(PREFIX, ID, chunkSchema, event.data);
      if (chunk.error !== undefined && chunk.error !== null) {
        throw classifyStreamError(PREFIX, ID, vendorErrorDetail(JSON.stringify({ error: chunk.error })));
      }
      if (chunk.promptFeedback?.blockReason) {
        throw new ProviderError(`${PREFIX}_BLOCKED`, `gemini blocked the prompt (${chunk.promptFeedback.blockReason})`, false, 'bad-request');
      }
      if (chunk.usageMetadata) usage = chunk.usageMetadata;
      const out: LlmDelta[] = [];
      const candidate = chunk.candidates?.find((c) => (c.index ?? 0) === 0);
      for (const part of candidate?.content?.parts ?? []) {
        if (part.functionCall) {
          const args = JSON.stringify(part.functionCall.args ?? {});
          if (args.length > MAX_TOOL_ARGUMENTS_CHARS) throw new ProviderError(`${PREFIX}_PROTOCOL`, `tool call arguments exceeded ${MAX_TOOL_ARGUMENTS_CHARS} characters`, false, 'protocol');
          out.push({ type: 'toolCall', call: { id: part.functionCall.id || `${idBase}_${calls}`, name: part.functionCall.name, arguments: args } });
          calls++;
        } else if (part.text && !part.thought) {
          out.push({ type: 'text', text: part.text });
        }
      }
      if (candidate?.finishReason) finish = candidate.finishReason;
      return out;
    },
    end() {
      if (finish === undefined) throw incompleteStream(PREFIX, ID, 'a finishReason');
      const out: LlmDelta[] = [];
      if (usage) {
        const cached = usage.cachedContentTokenCount ?? 0;
        out.push({
          type: 'usage',
          inputTokens: usage.promptTokenCount ?? 0,
          outputTokens: (usage.candidatesTokenCount ?? 0) + (usage.thoughtsTokenCount ?? 0),
          ...(cached ? { cachedInputTokens: cached } : {}),
        });
      }
      out.push({ type: 'done', reason: finishReason(finish, calls > 0) });
      return out;
    },
  };
}

function withVersion(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, '');
  const path = new URL(trimmed).pathname;
  return path === '/' || path === '' ? `${trimmed}/v1beta` : trimmed;
}

export interface GeminiLlm extends LanguageModel, Registrable {
  readonly optionsSchema: typeof geminiOptionsSchema;
}

export function createGeminiLlm(deps: LlmHttpDeps = {}): GeminiLlm {
  return {
    id: ID,
    requiresCredential: true,
    capabilities: { tools: true, edgeCapable: true },
    optionsSchema: geminiOptionsSchema,
    async *stream(request, signal): AsyncGenerator<LlmDelta> {
      const options = parseOptions(PREFIX, ID, geminiOptionsSchema, request.options);
      if (!request.apiKey) throw new ProviderError(`${PREFIX}_AUTH`, 'no API key for Gemini. Store a gemini credential in the project or set GEMINI_API_KEY.', false, 'auth');
      const model = (request.model ?? DEFAULT_GEMINI_MODEL).replace(/^models\//, '');
      // The endpoint is the API base with its version (…/v1beta, …/v1); a bare origin gets `/v1beta`.
      const base = request.endpoint ? withVersion(request.endpoint) : DEFAULT_BASE;
      const url = joinUrl(base, `/models/${encodeURIComponent(model)}:streamGenerateContent?alt=sse`);
      yield* streamLlm(
        {
          providerId: ID,
          codePrefix: PREFIX,
          url,
          headers: { 'x-goog-api-key': request.apiKey },
          body: geminiRequestBody(request, options),
          decoder: () => createGeminiDecoder(`gemini_${request.messages.length}`),
          credentialHint: 'the gemini credential of the project (or GEMINI_API_KEY)',
        },
        signal,
        deps,
      );
    },
  };
}
