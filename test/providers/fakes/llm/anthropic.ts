import type { ServerResponse } from 'node:http';
import { createScriptQueue, fragments, pause, sendStatus, startEventStream, startSseHost, tokens, writeSplit, type LlmScript, type RecordedRequest, type WriteOptions } from './sse-host';

/**
 * A local Anthropic Messages server (reference/providers.md §3.3), written from the reference, not from the
 * adapter. `POST /v1/messages` with `x-api-key` and `anthropic-version`.
 *
 * Refusals (`{"type":"error","error":{"type","message"}}`): a wrong key → 401 `authentication_error`; no
 * `anthropic-version`, no `max_tokens`, messages not starting with `user` or not alternating, an empty text
 * block, a `tool_result` whose id is not a `tool_use` of the preceding assistant turn → 400
 * `invalid_request_error`.
 *
 * Answer (`event: <type>\ndata: <json>\n\n`): `message_start` (usage with input and cache-read tokens) →
 * text block (`content_block_start`, a `ping`, an unknown `future_event`, one `text_delta` per word,
 * `content_block_stop`) → per tool call a `tool_use` block whose `input_json_delta` fragments start with ""
 * and then come 5 characters at a time → `message_delta` (stop_reason, cumulative output tokens) →
 * `message_stop`. 7-byte writes with pauses. Mid-stream error: `event: error` `overloaded_error`.
 */

export const ANTHROPIC_FAKE_KEY = 'sk-ant-fake';

const errorBody = (type: string, message: string): string => JSON.stringify({ type: 'error', error: { type, message } });

type Block = { type: string; text?: string; id?: string; tool_use_id?: string };

function validate(request: RecordedRequest): string | undefined {
  if (!request.headers['anthropic-version']) return 'anthropic-version: header is required';
  const body = request.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return 'invalid JSON body';
  if (typeof body.model !== 'string') return 'model: Field required';
  if (typeof body.max_tokens !== 'number') return 'max_tokens: Field required';
  if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) return 'system: Input should be a valid string';
  const messages = body.messages as { role: string; content: string | Block[] }[] | undefined;
  if (!Array.isArray(messages) || messages.length === 0) return 'messages: at least one message is required';
  let previousToolUses = new Set<string>();
  for (const [i, m] of messages.entries()) {
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i === 0 && m.role !== 'user') return 'messages: first message must use the "user" role';
    if (i > 0 && messages[i - 1]?.role === m.role) return 'messages: roles must alternate between "user" and "assistant"';
    const blocks: Block[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    const toolUses = new Set<string>();
    for (const block of blocks) {
      if (block.type === 'text' && !block.text) return `messages.${i}: text content blocks must be non-empty`;
      if (block.type === 'tool_use') toolUses.add(String(block.id));
      if (block.type === 'tool_result' && !previousToolUses.has(String(block.tool_use_id))) {
        return `messages.${i}: unexpected tool_use_id found in tool_result blocks: ${String(block.tool_use_id)}. Each tool_result block must have a corresponding tool_use block in the previous message.`;
      }
    }
    previousToolUses = toolUses;
  }
  return undefined;
}

const event = (type: string, data: unknown): string => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

export async function startAnthropicFake(options: WriteOptions = {}) {
  const scripts = createScriptQueue({ type: 'reply', text: 'Hello from the fake.' });
  const host = await startSseHost(async (request, res) => {
    if (request.method !== 'POST' || request.url !== '/v1/messages') return sendStatus(res, { status: 404, body: errorBody('not_found_error', 'Not Found') });
    if (request.headers['x-api-key'] !== ANTHROPIC_FAKE_KEY) return sendStatus(res, { status: 401, body: errorBody('authentication_error', 'invalid x-api-key') });
    const invalid = validate(request);
    if (invalid) return sendStatus(res, { status: 400, body: errorBody('invalid_request_error', invalid) });
    const script = scripts.next();
    if (script.type === 'status') return sendStatus(res, script);
    await answer(res, script, options);
  });
  return {
    endpoint: host.endpoint,
    apiKey: ANTHROPIC_FAKE_KEY,
    requests: host.requests,
    script: (...next: LlmScript[]) => scripts.push(...next),
    close: host.close,
  };
}

async function answer(res: ServerResponse, script: Extract<LlmScript, { type: 'reply' }>, options: WriteOptions): Promise<void> {
  startEventStream(res);
  const send = (text: string): Promise<boolean> => writeSplit(res, text, options);
  const u = script.usage ?? { input: 12, output: 0 };
  if (script.firstTokenDelayMs) await pause(script.firstTokenDelayMs);
  const start = {
    type: 'message_start',
    message: { id: 'msg_fake', type: 'message', role: 'assistant', content: [], model: 'claude-fake', stop_reason: null, stop_sequence: null, usage: { input_tokens: u.input, cache_creation_input_tokens: 0, cache_read_input_tokens: u.cached ?? 0, output_tokens: 1 } },
  };
  if (!(await send(event('message_start', start)))) return;
  const words = tokens(script.text);
  let index = 0;
  if (words.length > 0) {
    if (!(await send(event('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }) + event('ping', { type: 'ping' })))) return;
    if (!(await send(event('future_event', { type: 'future_event', detail: 'ignore me' })))) return;
    for (const [i, word] of words.entries()) {
      if (script.errorAfterTokens === i) {
        await send(event('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
        return void res.end();
      }
      if (script.endAfterTokens === i) return void res.end();
      if (i > 0 && script.tokenDelayMs) await pause(script.tokenDelayMs);
      if (!(await send(event('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: word } })))) return;
    }
    if (!(await send(event('content_block_stop', { type: 'content_block_stop', index })))) return;
    index++;
  }
  const calls = script.toolCalls ?? [];
  for (const [n, call] of calls.entries()) {
    const id = call.id ?? `toolu_fake_${n}`;
    if (!(await send(event('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id, name: call.name, input: {} } })))) return;
    for (const piece of ['', ...fragments(call.arguments, 5)]) {
      if (!(await send(event('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } })))) return;
    }
    if (!(await send(event('content_block_stop', { type: 'content_block_stop', index })))) return;
    index++;
  }
  const stopReason = script.finish ?? (calls.length ? 'tool_use' : 'end_turn');
  const output = script.usage?.output ?? words.length + calls.length * 10;
  if (!(await send(event('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: output } })))) return;
  await send(event('message_stop', { type: 'message_stop' }));
  res.end();
}

export type AnthropicFake = Awaited<ReturnType<typeof startAnthropicFake>>;
