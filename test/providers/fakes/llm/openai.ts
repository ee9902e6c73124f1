import type { ServerResponse } from 'node:http';
import { createScriptQueue, fragments, pause, sendStatus, startEventStream, startSseHost, tokens, writeSplit, type LlmScript, type RecordedRequest, type WriteOptions } from './sse-host';

/**
 * A local OpenAI Chat Completions server (reference/providers.md §3.1), written from the reference, not
 * from the adapter. `POST /v1/chat/completions` with `Authorization: Bearer <key>`, and the Azure form
 * `POST /openai/deployments/{deployment}/chat/completions?api-version=…` with an `api-key` header.
 *
 * Refusals: a wrong key → 401 `{"error":{"message","type":"invalid_request_error","code":"invalid_api_key"}}`;
 * a body without `model` (Azure excepted), `stream: true` or valid messages (a `tool` message must answer a
 * preceding assistant `tool_calls` id) → 400 with the same error shape.
 *
 * Answer (text/event-stream, `data: <json>\n\n`): an OpenRouter-style `: comment` line, a role chunk, one
 * chunk per word, per tool call a first chunk with `id`/`name` and empty arguments then argument fragments of
 * 5 characters (by `index`, parallel calls 0, 1, …), a chunk with `finish_reason`, with
 * `stream_options.include_usage` a usage-only chunk (`choices: []`), then `data: [DONE]`. Every other chunk
 * has `"usage": null`. Bytes go out in 7-byte writes with pauses. A mid-stream error is
 * `data: {"error":{…"type":"server_error"}}` and the body ends.
 */

export const OPENAI_FAKE_KEY = 'sk-fake-openai';

export interface OpenAiFakeOptions extends WriteOptions {
  /** Refuse `stream_options` with 400 (like some compatible servers). */
  readonly rejectStreamOptions?: boolean;
}

const errorBody = (message: string, type: string, code: string | null = null): string => JSON.stringify({ error: { message, type, param: null, code } });

function validate(request: RecordedRequest, azure: boolean, options: OpenAiFakeOptions): string | undefined {
  const body = request.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return 'We could not parse the JSON body of your request.';
  if (!azure && typeof body.model !== 'string') return "you must provide a model parameter";
  if (body.stream !== true) return 'this fake only streams: stream must be true';
  if (options.rejectStreamOptions && body.stream_options !== undefined) return "Unrecognized request argument supplied: stream_options";
  if (!Array.isArray(body.messages) || body.messages.length === 0) return "'messages' must be a non-empty array";
  const callIds = new Set<string>();
  for (const [i, m] of (body.messages as Record<string, unknown>[]).entries()) {
    if (!['system', 'user', 'assistant', 'tool', 'developer'].includes(String(m.role))) return `Invalid value for 'messages[${i}].role'`;
    if (m.role === 'assistant' && Array.isArray(m.tool_calls)) for (const c of m.tool_calls as { id: string }[]) callIds.add(c.id);
    if (m.role === 'tool' && !callIds.has(String(m.tool_call_id))) {
      return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.`;
    }
    if (m.role !== 'assistant' && typeof m.content !== 'string') return `Invalid type for 'messages[${i}].content'`;
  }
  return undefined;
}

const chunk = (choices: unknown[], usage: unknown = null): string =>
  `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-fake', system_fingerprint: 'fp_x', choices, usage })}\n\n`;

const choice = (delta: unknown, finish: string | null = null): unknown => ({ index: 0, delta, logprobs: null, finish_reason: finish });

export async function startOpenAiFake(options: OpenAiFakeOptions = {}) {
  const scripts = createScriptQueue({ type: 'reply', text: 'Hello from the fake.' });
  const host = await startSseHost(async (request, res) => {
    const url = new URL(request.url, 'http://fake');
    const azure = /^\/openai\/deployments\/[^/]+\/chat\/completions$/.test(url.pathname);
    if (request.method !== 'POST' || (!azure && url.pathname !== '/v1/chat/completions')) {
      return sendStatus(res, { status: 404, body: errorBody(`Invalid URL (${request.method} ${url.pathname})`, 'invalid_request_error') });
    }
    if (azure && !url.searchParams.get('api-version')) return sendStatus(res, { status: 404, body: JSON.stringify({ error: { code: '404', message: 'Resource not found' } }) });
    const authorised = azure ? request.headers['api-key'] === OPENAI_FAKE_KEY : request.headers.authorization === `Bearer ${OPENAI_FAKE_KEY}`;
    if (!authorised) {
      return sendStatus(res, { status: 401, body: errorBody('Incorrect API key provided: sk-wr***ey. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', 'invalid_api_key') });
    }
    const invalid = validate(request, azure, options);
    if (invalid) return sendStatus(res, { status: 400, body: errorBody(invalid, 'invalid_request_error') });
    const script = scripts.next();
    if (script.type === 'status') return sendStatus(res, script);
    await answer(res, script, request.body as { stream_options?: { include_usage?: boolean } }, options);
  });
  return {
    endpoint: host.endpoint,
    apiKey: OPENAI_FAKE_KEY,
    requests: host.requests,
    /** Scripts for the next requests, in order; afterwards "Hello from the fake.". */
    script: (...next: LlmScript[]) => scripts.push(...next),
    close: host.close,
  };
}

async function answer(res: ServerResponse, script: Extract<LlmScript, { type: 'reply' }>, body: { stream_options?: { include_usage?: boolean } }, options: OpenAiFakeOptions): Promise<void> {
  startEventStream(res);
  const send = (text: string): Promise<boolean> => writeSplit(res, text, options);
  if (script.firstTokenDelayMs) await pause(script.firstTokenDelayMs);
  if (!(await send(`: OPENROUTER PROCESSING\n\n${chunk([choice({ role: 'assistant', content: '' })])}`))) return;
  const words = tokens(script.text);
  for (const [i, word] of words.entries()) {
    if (script.errorAfterTokens === i) {
      await send(`data: ${errorBody('The server had an error while processing your request. Sorry about that!', 'server_error')}\n\n`);
      return void res.end();
    }
    if (script.endAfterTokens === i) return void res.end();
    if (i > 0 && script.tokenDelayMs) await pause(script.tokenDelayMs);
    if (!(await send(chunk([choice({ content: word })])))) return;
  }
  const calls = script.toolCalls ?? [];
  for (const [index, call] of calls.entries()) {
    const id = call.id ?? `call_fake_${index}`;
    if (!(await send(chunk([choice({ tool_calls: [{ index, id, type: 'function', function: { name: call.name, arguments: '' } }] })])))) return;
    for (const piece of fragments(call.arguments, 5)) {
      if (!(await send(chunk([choice({ tool_calls: [{ index, function: { arguments: piece } }] })])))) return;
    }
  }
  const finish = script.finish ?? (calls.length ? 'tool_calls' : 'stop');
  if (!(await send(chunk([choice({}, finish)])))) return;
  if (body.stream_options?.include_usage) {
    const u = script.usage ?? { input: 12, output: words.length };
    const usage = { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output, prompt_tokens_details: { cached_tokens: u.cached ?? 0 }, completion_tokens_details: { reasoning_tokens: 0 } };
    if (!(await send(chunk([], usage)))) return;
  }
  await send('data: [DONE]\n\n');
  res.end();
}

export type OpenAiFake = Awaited<ReturnType<typeof startOpenAiFake>>;
