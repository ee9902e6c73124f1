import { describe, expect, it } from 'vitest';
import { restRequest } from '../../shared/telephony/rest-request';

// The deadline and failure classes every carrier REST client (Twilio, Exotel, Vonage) maps to its own errors.

const hanging: typeof fetch = (_url, init) =>
  new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));

describe('carrier REST request', () => {
  it('returns the response and its body', async () => {
    const ok: typeof fetch = async () => new Response('{"sid":"CA1"}', { status: 201 });
    const sent = await restRequest({ url: 'https://api.example/x', init: { method: 'POST' }, fetch: ok });
    expect(sent.ok && sent.response.status).toBe(201);
    expect(sent.ok && sent.text).toBe('{"sid":"CA1"}');
  });

  it('a request past its deadline is a timeout', async () => {
    const sent = await restRequest({ url: 'https://api.example/x', init: {}, fetch: hanging, timeoutMs: 30 });
    expect(sent).toMatchObject({ ok: false, failure: 'timeout', timeoutMs: 30 });
  });

  it("the caller's cancel is `aborted`, a refused connection is `network` with its reason", async () => {
    const controller = new AbortController();
    const pending = restRequest({ url: 'https://api.example/x', init: {}, fetch: hanging, timeoutMs: 5_000, signal: controller.signal });
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, failure: 'aborted' });
    const refused: typeof fetch = async () => {
      throw new TypeError('connect ECONNREFUSED 127.0.0.1:9');
    };
    expect(await restRequest({ url: 'https://api.example/x', init: {}, fetch: refused })).toMatchObject({ ok: false, failure: 'network', reason: 'connect ECONNREFUSED 127.0.0.1:9' });
  });
});
