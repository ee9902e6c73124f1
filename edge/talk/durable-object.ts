/**
 * TalkSession: the Durable Object that runs one browser call (placeholder until the talk core lands; the
 * edge entry already routes `/v1/talk/web/ctx/:contextId` here).
 */
export class TalkSession {
  constructor(
    readonly ctx: unknown,
    readonly env: unknown,
  ) {}

  fetch(_request: Request): Response {
    return new Response(JSON.stringify({ error: { code: 'NOT_IMPLEMENTED', message: 'browser sessions are not served yet' } }), {
      status: 501,
      headers: { 'content-type': 'application/json' },
    });
  }
}
