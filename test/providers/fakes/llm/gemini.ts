import type { ServerResponse } from 'node:http';
import { createScriptQueue, pause, sendStatus, startEventStream, startSseHost, tokens, writeSplit, type LlmScript, type RecordedRequest, type WriteOptions } from './sse-host';

/**
 * A local Gemini API (reference/providers.md §3.4), written from the reference, not from the adapter.
 * `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` with `x-goog-api-key`.
 *
 * Refusals (`{"error":{"code","message","status"}}`): a wrong key → 400 `INVALID_ARGUMENT` "API key not
 * valid" with reason `API_KEY_INVALID` (what Google answers for a bad key [MEM]; `authFailureStatus` makes
 * it 401 `UNAUTHENTICATED` or 403 `PERMISSION_DENIED`); no `alt=sse`, empty `contents`, a role other than
 * user/model, a content without parts, a `functionResponse` not named after a `functionCall` of the preceding
 * model turn, a function declaration whose parameters carry JSON-schema keywords outside Gemini's Schema
 * (`additionalProperties`, `$schema`, …) or an OBJECT without properties → 400 `INVALID_ARGUMENT`.
 *
 * Answer: `data: <GenerateContentResponse>\r\n\r\n` per chunk (one word per chunk; function calls as whole
 * `functionCall` parts without ids), the last chunk with `finishReason` and the full `usageMetadata`; no end
 * marker, the body just ends. 7-byte writes with pauses (CRLFs get split). Mid-stream error:
 * `data: {"error":{"code":503,…,"status":"UNAVAILABLE"}}`, then the body ends.
 */

export const GEMINI_FAKE_KEY = 'AIza-fake-gemini';

export interface GeminiFakeOptions extends WriteOptions {
  readonly authFailureStatus?: 400 | 401 | 403;
}

const errorBody = (code: number, status: string, message: string, reason?: string): string =>
  JSON.stringify({ error: { code, message, status, ...(reason ? { details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'googleapis.com' }] } : {}) } });

const SCHEMA_KEYS = new Set(['type', 'format', 'title', 'description', 'nullable', 'enum', 'items', 'properties', 'required', 'minItems', 'maxItems', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'anyOf', 'propertyOrdering', 'minProperties', 'maxProperties']);

function schemaProblem(schema: unknown, path: string): string | undefined {
  if (!schema || typeof schema !== 'object') return undefined;
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s)) if (!SCHEMA_KEYS.has(key)) return `Invalid JSON payload received. Unknown name "${key}" at '${path}': Cannot find field.`;
  if (typeof s.type === 'string' && s.type.toLowerCase() === 'object' && (!s.properties || Object.keys(s.properties).length === 0)) {
    return `${path}.properties: should be non-empty for OBJECT type`;
  }
  for (const [name, sub] of Object.entries((s.properties as Record<string, unknown>) ?? {})) {
    const problem = schemaProblem(sub, `${path}.properties[${name}]`);
    if (problem) return problem;
  }
  return schemaProblem(s.items, `${path}.items`);
}

type Part = { text?: string; functionCall?: { name: string }; functionResponse?: { name: string } };

function validate(request: RecordedRequest): string | undefined {
  const body = request.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return 'Invalid JSON payload received.';
  const contents = body.contents as { role?: string; parts?: Part[] }[] | undefined;
  if (!Array.isArray(contents) || contents.length === 0) return '* GenerateContentRequest.contents: contents is not specified';
  let previousCalls = new Set<string>();
  for (const [i, c] of contents.entries()) {
    if (c.role !== 'user' && c.role !== 'model') return `Please use a valid role: user, model. (contents[${i}])`;
    if (!Array.isArray(c.parts) || c.parts.length === 0) return `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`;
    const calls = new Set<string>();
    for (const part of c.parts) {
      if (part.functionCall) calls.add(part.functionCall.name);
      if (part.functionResponse && !previousCalls.has(part.functionResponse.name)) {
        return `Please ensure that function response turn comes immediately after a function call turn (contents[${i}] ${part.functionResponse.name}).`;
      }
    }
    previousCalls = calls;
  }
  for (const tool of (body.tools as { functionDeclarations?: { parameters?: unknown }[] }[] | undefined) ?? []) {
    for (const [i, declaration] of (tool.functionDeclarations ?? []).entries()) {
      const problem = schemaProblem(declaration.parameters, `tools[0].function_declarations[${i}].parameters`);
      if (problem) return problem;
    }
  }
  return undefined;
}

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\r\n\r\n`;

export async function startGeminiFake(options: GeminiFakeOptions = {}) {
  const scripts = createScriptQueue({ type: 'reply', text: 'Hello from the fake.' });
  const host = await startSseHost(async (request, res) => {
    const url = new URL(request.url, 'http://fake');
    const match = /^\/v1beta\/models\/([^/:]+):streamGenerateContent$/.exec(url.pathname);
    if (request.method !== 'POST' || !match) return sendStatus(res, { status: 404, body: errorBody(404, 'NOT_FOUND', `models/${url.pathname} is not found`) });
    const key = request.headers['x-goog-api-key'] ?? url.searchParams.get('key');
    if (key !== GEMINI_FAKE_KEY) {
      const status = options.authFailureStatus ?? 400;
      if (status === 400) return sendStatus(res, { status, body: errorBody(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', 'API_KEY_INVALID') });
      if (status === 401) return sendStatus(res, { status, body: errorBody(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.') });
      return sendStatus(res, { status, body: errorBody(403, 'PERMISSION_DENIED', 'Method doesn\'t allow unregistered callers (callers without established identity).') });
    }
    if (url.searchParams.get('alt') !== 'sse') return sendStatus(res, { status: 400, body: errorBody(400, 'INVALID_ARGUMENT', 'this fake streams with alt=sse only') });
    const invalid = validate(request);
    if (invalid) return sendStatus(res, { status: 400, body: errorBody(400, 'INVALID_ARGUMENT', invalid) });
    const script = scripts.next();
    if (script.type === 'status') return sendStatus(res, script);
    await answer(res, script, match[1] ?? '', options);
  });
  return {
    endpoint: host.endpoint,
    apiKey: GEMINI_FAKE_KEY,
    requests: host.requests,
    script: (...next: LlmScript[]) => scripts.push(...next),
    close: host.close,
  };
}

async function answer(res: ServerResponse, script: Extract<LlmScript, { type: 'reply' }>, model: string, options: WriteOptions): Promise<void> {
  startEventStream(res);
  const send = (text: string): Promise<boolean> => writeSplit(res, text, options);
  const u = script.usage ?? { input: 8, output: 0 };
  const words = tokens(script.text);
  const calls = script.toolCalls ?? [];
  const usage = (output: number, last: boolean) => ({
    promptTokenCount: u.input,
    ...(last ? { candidatesTokenCount: output, totalTokenCount: u.input + output, ...(u.cached ? { cachedContentTokenCount: u.cached } : {}) } : { totalTokenCount: u.input }),
  });
  const response = (parts: unknown[], finishReason?: string, last = false) => ({
    candidates: [{ content: { parts, role: 'model' }, ...(finishReason ? { finishReason } : {}), index: 0 }],
    usageMetadata: usage(script.usage?.output ?? words.length + calls.length * 5, last),
    modelVersion: model,
    responseId: 'resp-fake',
  });
  if (script.firstTokenDelayMs) await pause(script.firstTokenDelayMs);
  const finish = script.finish ?? 'STOP';
  // The last chunk carries the finish reason: the last word, or the function calls, or an empty text.
  for (const [i, word] of words.entries()) {
    if (script.errorAfterTokens === i) {
      await send(data({ error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } }));
      return void res.end();
    }
    if (script.endAfterTokens === i) return void res.end();
    if (i > 0 && script.tokenDelayMs) await pause(script.tokenDelayMs);
    const last = i === words.length - 1 && calls.length === 0;
    if (!(await send(data(response([{ text: word }], last ? finish : undefined, last))))) return;
  }
  if (calls.length > 0) {
    const parts = calls.map((c) => ({ functionCall: { name: c.name, args: JSON.parse(c.arguments) as unknown } }));
    if (!(await send(data(response(parts, finish, true))))) return;
  } else if (words.length === 0) {
    if (!(await send(data(response([{ text: '' }], finish, true))))) return;
  }
  res.end();
}

export type GeminiFake = Awaited<ReturnType<typeof startGeminiFake>>;
