import { z } from 'zod';
import type { ToolConfig } from '../config/assistant';
import type { ToolCall, ToolDefinition } from '../contracts/llm';
import { BUILTIN_DEFAULTS, type KnowledgeSearch, runEndCall, runKnowledgeLookup, runTransferCall } from './builtins';
import type { CallControl, CallTools, ToolFiller } from './control';
import { EMPTY_ALLOW_LIST, type HttpToolDeps, runHttpTool, ToolError } from './http-tool';

/**
 * The tools of one call, from the assistant's configuration: the definitions the LLM sees (JSON-schema
 * parameters; each LLM adapter converts them to its vendor's format) and `execute`, which never throws:
 * invalid JSON from the model, arguments that do not fit the schema, an unknown tool, a refused or failed
 * request all come back as the tool result `{"error": "..."}`, which the model reads and answers from.
 */

export interface ToolExecutorDeps {
  /** Call variables: fill `{{name}}` in http tools (before the model's arguments, which cannot override them). */
  readonly variables?: Readonly<Record<string, string>>;
  /** For `http` tools: the SSRF guard (allow-list, resolver), fetch and stored credentials. */
  readonly http?: HttpToolDeps;
  /** For `knowledge_lookup`. */
  readonly search?: KnowledgeSearch;
}

/** Longest arguments text quoted back to the model in an error. */
const QUOTE_CHARS = 200;

export const toolError = (message: string): string => JSON.stringify({ error: message });

/** Definition the LLM sees for a configured tool (built-ins fill in a description and parameters). */
export function toolDefinition(tool: ToolConfig): ToolDefinition {
  const builtin = tool.action.type === 'http' ? undefined : BUILTIN_DEFAULTS[tool.action.type];
  return {
    name: tool.name,
    description: tool.description ?? builtin?.description ?? tool.name,
    parameters: tool.parameters ?? builtin?.parameters ?? { type: 'object', properties: {} },
  };
}

type ArgumentsCheck = (value: unknown) => string | undefined;

/** A checker of arguments against the tool's JSON schema (zod's converter; a schema it cannot read is not checked beyond "an object"). */
function argumentsCheck(parameters: Readonly<Record<string, unknown>>): ArgumentsCheck {
  let schema: z.ZodType | undefined;
  try {
    schema = z.fromJSONSchema(parameters as z.core.JSONSchema.JSONSchema, { registry: z.registry() });
  } catch {
    schema = undefined;
  }
  return (value) => {
    if (!schema) return undefined;
    const result = schema.safeParse(value);
    if (result.success) return undefined;
    return result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`).join('; ');
  };
}

/** The model's arguments text → an object, or why not. */
export function parseArguments(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  const trimmed = text.trim();
  if (!trimmed) return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (error) {
    const quoted = trimmed.length > QUOTE_CHARS ? `${trimmed.slice(0, QUOTE_CHARS)}…` : trimmed;
    return { ok: false, error: `the arguments are not valid JSON (${error instanceof Error ? error.message : String(error)}): ${quoted}; call the tool again with a JSON object` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'the arguments must be a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}

export function createToolExecutor(tools: readonly ToolConfig[], deps: ToolExecutorDeps = {}): CallTools {
  const byName = new Map<string, { tool: ToolConfig; definition: ToolDefinition; check: ArgumentsCheck }>();
  for (const tool of tools) {
    // Names are unique in a valid configuration; should two collide, the first one is the tool.
    if (byName.has(tool.name)) continue;
    const definition = toolDefinition(tool);
    byName.set(tool.name, { tool, definition, check: argumentsCheck(definition.parameters) });
  }
  const definitions = [...byName.values()].map((t) => t.definition);
  const variables = deps.variables ?? {};
  const http: HttpToolDeps = deps.http ?? { allow: EMPTY_ALLOW_LIST };
  let control: CallControl | undefined;

  async function run(entry: { tool: ToolConfig }, args: Record<string, unknown>, signal: AbortSignal): Promise<string> {
    const { action } = entry.tool;
    switch (action.type) {
      case 'end_call':
        return runEndCall(action, control);
      case 'transfer_call':
        return runTransferCall(action, control);
      case 'knowledge_lookup':
        return runKnowledgeLookup(action, args, deps.search, signal);
      case 'http':
        return runHttpTool(action, args, variables, http, signal);
    }
  }

  return {
    definitions,
    bind(c) {
      control = c;
    },
    fillerFor(name): ToolFiller | undefined {
      const tool = byName.get(name)?.tool;
      return tool?.fillerPhrase ? { phrase: tool.fillerPhrase, afterMs: tool.fillerAfterMs } : undefined;
    },
    async execute(call: ToolCall, signal: AbortSignal): Promise<string> {
      const entry = byName.get(call.name);
      if (!entry) return toolError(`there is no tool "${call.name}"; the tools are: ${definitions.map((d) => d.name).join(', ') || 'none'}`);
      const parsed = parseArguments(call.arguments);
      if (!parsed.ok) return toolError(parsed.error);
      const problem = entry.check(parsed.value);
      if (problem) return toolError(`the arguments do not fit the tool's parameters: ${problem}`);
      try {
        return await run(entry, parsed.value, signal);
      } catch (error) {
        if (error instanceof ToolError) return toolError(error.message);
        if (signal.aborted) return toolError('the tool call was cancelled');
        return toolError(`the tool failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    },
  };
}
