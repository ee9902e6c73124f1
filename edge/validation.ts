import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError, badRequest, type ValidationIssue } from './errors';

/**
 * Request input, validated with zod: JSON bodies (size-limited, parsed, then checked) and query strings.
 * A bad body answers 400 `BAD_JSON`; one that parses but fails its schema answers 400 `VALIDATION_FAILED`
 * with every issue by path (`stt.options.apiKey`, `tools.0.name`); too large answers 413 `BODY_TOO_LARGE`.
 */

/** Bodies of small control requests (names, keys, credentials). */
export const SMALL_BODY_BYTES = 64 * 1024;
/** Assistant configurations: long prompts and tool schemas fit comfortably. */
export const ASSISTANT_BODY_BYTES = 1024 * 1024;

export function zodIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((part) => String(part)).join('.');
    return path ? { path, message: issue.message } : { message: issue.message };
  });
}

const tooLarge = (maxBytes: number) =>
  new ApiError(413, 'BODY_TOO_LARGE', `the request body is larger than the ${maxBytes} bytes this endpoint accepts`);

/** The body as text, refusing more than `maxBytes` (by Content-Length when given, else while reading). */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const body = c.req.raw.body;
  if (!body) return '';
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badRequest('BAD_JSON', 'the request body is not valid UTF-8');
  }
}

/** The JSON body, unvalidated (for routes that take apart the body before validating its pieces). */
export async function readJsonValue(c: Context, maxBytes = SMALL_BODY_BYTES): Promise<unknown> {
  const contentType = c.req.header('content-type');
  if (contentType !== undefined && !/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(contentType.trim())) {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the body as JSON with "Content-Type: application/json" (got "${contentType}")`);
  }
  const text = await readBodyText(c, maxBytes);
  if (text.trim() === '') throw badRequest('BAD_JSON', 'the request needs a JSON body');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Never the parser's message: V8 quotes part of the input, which may be a secret (credentials).
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw badRequest('BAD_JSON', `the request body is not valid JSON${position ? ` (error at character ${position})` : ''}`);
  }
}

export function validate<S extends z.ZodType>(schema: S, value: unknown, what = 'the request body'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw badRequest('VALIDATION_FAILED', `${what} is invalid`, { issues: zodIssues(result.error) });
  return result.data;
}

/** Reads, parses and validates the JSON body. */
export async function readJson<S extends z.ZodType>(c: Context, schema: S, maxBytes = SMALL_BODY_BYTES): Promise<z.output<S>> {
  return validate(schema, await readJsonValue(c, maxBytes));
}

/** Validates the query string (each parameter's first value) against an object schema of strings. */
export function readQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return validate(schema, c.req.query(), 'the query string');
}
