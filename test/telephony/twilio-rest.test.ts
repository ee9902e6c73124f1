import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ProviderError } from '../../shared/contracts/errors';
import { TwilioApiError, createTwilioCall, hangupTwilioCall } from '../../shared/telephony/twilio-rest';
import { connectStreamTwiml } from '../../shared/telephony/twiml';

const ACCOUNT = 'AC' + '0123456789abcdef'.repeat(2);
const TOKEN = 'auth-token:with:colons-ünïcode';
const CALL = 'CA' + 'abcdef0123456789'.repeat(2);

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}

/** A tiny fake of Twilio's REST API: records each request and answers with the next scripted response. */
let server: Server;
let base: string;
let seen: Seen[] = [];
let answer: (req: Seen, res: ServerResponse) => void;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, form: new URLSearchParams(body) };
      seen.push(request);
      answer(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  seen = [];
  answer = (req, res) => json(res, 201, { sid: CALL, status: 'queued', to: req.form.get('To'), from: req.form.get('From'), account_sid: ACCOUNT });
});

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const call = (extra: Partial<Parameters<typeof createTwilioCall>[0]> = {}) =>
  createTwilioCall({
    accountSid: ACCOUNT,
    authToken: TOKEN,
    apiBaseUrl: base,
    to: '+15005550006',
    from: '+15005550001',
    twiml: connectStreamTwiml({ streamUrl: 'wss://media.example.com/v1/talk/twilio/ctx/ctx_9', parameters: { contextId: 'ctx_9' } }),
    statusCallback: 'https://voice.example.com/v1/talk/twilio/ctx/ctx_9/event',
    ...extra,
  } as Parameters<typeof createTwilioCall>[0]);

async function failure(promise: Promise<unknown>): Promise<TwilioApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TwilioApiError);
  expect(error).toBeInstanceOf(ProviderError);
  return error as TwilioApiError;
}

describe('createTwilioCall (§1.7)', () => {
  it('POSTs the form to Calls.json with Basic auth and answers with the call sid', async () => {
    const created = await call();
    expect(created).toMatchObject({ callSid: CALL, status: 'queued' });
    expect(created.raw.account_sid).toBe(ACCOUNT);
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request!.method).toBe('POST');
    expect(request!.path).toBe(`/2010-04-01/Accounts/${ACCOUNT}/Calls.json`);
    const [scheme, encoded] = (request!.headers.authorization ?? '').split(' ');
    expect(scheme).toBe('Basic');
    expect(Buffer.from(encoded!, 'base64').toString('utf8')).toBe(`${ACCOUNT}:${TOKEN}`);
    expect(request!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request!.headers.accept).toBe('application/json');
    const form = request!.form;
    expect(form.get('To')).toBe('+15005550006');
    expect(form.get('From')).toBe('+15005550001');
    expect(form.get('Twiml')).toContain('<Stream url="wss://media.example.com/v1/talk/twilio/ctx/ctx_9"><Parameter name="contextId" value="ctx_9"/>');
    expect(form.get('StatusCallback')).toBe('https://voice.example.com/v1/talk/twilio/ctx/ctx_9/event');
    expect(form.get('StatusCallbackMethod')).toBe('POST');
    expect(form.getAll('StatusCallbackEvent')).toEqual(['initiated', 'ringing', 'answered', 'completed']);
    expect(form.has('Url')).toBe(false);
  });

  it('with a TwiML URL, chosen events and limits; a trailing slash on the base URL is fine', async () => {
    await call({
      apiBaseUrl: `${base}/`,
      twiml: undefined,
      url: 'https://voice.example.com/v1/talk/twilio/call/asst_1',
      method: 'GET',
      statusCallbackEvents: ['answered', 'completed'],
      timeoutSeconds: 25,
      timeLimitSeconds: 600,
      machineDetection: 'Enable',
    });
    const form = seen[0]!.form;
    expect(seen[0]!.path).toBe(`/2010-04-01/Accounts/${ACCOUNT}/Calls.json`);
    expect(Object.fromEntries(form)).toMatchObject({ Url: 'https://voice.example.com/v1/talk/twilio/call/asst_1', Method: 'GET', Timeout: '25', TimeLimit: '600', MachineDetection: 'Enable' });
    expect(form.getAll('StatusCallbackEvent')).toEqual(['answered', 'completed']);
    expect(form.has('Twiml')).toBe(false);
  });

  it('authenticates as an API key when given one', async () => {
    await call({ username: 'SK' + '1'.repeat(32), authToken: 'key-secret' });
    expect(Buffer.from(seen[0]!.headers.authorization!.slice(6), 'base64').toString()).toBe(`SK${'1'.repeat(32)}:key-secret`);
    expect(seen[0]!.path).toContain(`/Accounts/${ACCOUNT}/`);
  });

  it('refuses bad input before any request', async () => {
    expect((await failure(call({ url: 'https://x/y' }))).code).toBe('TWILIO_BAD_REQUEST');
    expect((await failure(call({ twiml: undefined }))).message).toMatch(/exactly one of "twiml" and "url"/);
    expect((await failure(call({ to: '' }))).message).toMatch(/"to" is empty/);
    expect((await failure(call({ statusCallback: undefined, statusCallbackEvents: ['ringing'] }))).retryable).toBe(false);
    expect((await failure(call({ authToken: '' }))).code).toBe('TWILIO_AUTH');
    expect(seen).toHaveLength(0);
  });

  it('401 → an auth error that is not retryable and says what to check', async () => {
    answer = (_req, res) => json(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
    const error = await failure(call());
    expect(error).toMatchObject({ code: 'TWILIO_AUTH', retryable: false, kind: 'auth', httpStatus: 401, twilioCode: 20003, moreInfo: 'https://www.twilio.com/docs/errors/20003' });
    expect(error.message).toMatch(/^TWILIO_AUTH: .*\(401, Twilio error 20003: Authenticate\)\. Check the twilio credential/);
    expect(error.message).not.toContain(TOKEN);
  });

  it('400 with Twilio error JSON → rejected, not retryable, Twilio code and message surfaced', async () => {
    answer = (_req, res) =>
      json(res, 400, { code: 21211, message: "The 'To' number +1500 is not a valid phone number.", more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 });
    const error = await failure(call());
    expect(error).toMatchObject({ code: 'TWILIO_REJECTED', retryable: false, kind: 'bad-request', httpStatus: 400, twilioCode: 21211 });
    expect(error.message).toContain("Twilio error 21211: The 'To' number +1500 is not a valid phone number.");
    expect(error.message).toContain('See https://www.twilio.com/docs/errors/21211');
  });

  it('404 hints at the account sid and base URL', async () => {
    answer = (_req, res) => json(res, 404, { code: 20404, message: 'The requested resource was not found', status: 404 });
    expect((await failure(call())).message).toMatch(/Check the accountSid/);
  });

  it.each([
    [500, 'TWILIO_UNAVAILABLE', 'unavailable'],
    [502, 'TWILIO_UNAVAILABLE', 'unavailable'],
    [503, 'TWILIO_UNAVAILABLE', 'unavailable'],
    [429, 'TWILIO_RATE_LIMIT', 'rate-limit'],
  ])('%i (with an HTML body) → %s, retryable', async (status, code, kind) => {
    answer = (_req, res) => {
      res.writeHead(status, { 'content-type': 'text/html' });
      res.end('<html>Bad Gateway</html>');
    };
    const error = await failure(call());
    expect(error).toMatchObject({ code, retryable: true, kind, httpStatus: status, twilioCode: undefined });
  });

  it('an unreachable API → a retryable network error naming the base URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadBase = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(call({ apiBaseUrl: deadBase }));
    expect(error).toMatchObject({ code: 'TWILIO_NETWORK', retryable: true, kind: 'unavailable' });
    expect(error.message).toContain(deadBase);
  });

  it('no answer in time → a retryable time-out; the caller aborting → not retryable', async () => {
    answer = () => {}; // never answers
    const slow = await failure(call({ requestTimeoutMs: 100 }));
    expect(slow).toMatchObject({ code: 'TWILIO_TIMEOUT', retryable: true, kind: 'timeout' });
    const controller = new AbortController();
    const pending = call({ signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await failure(pending)).toMatchObject({ code: 'TWILIO_ABORTED', retryable: false });
    expect(await failure(call({ signal: AbortSignal.abort() }))).toMatchObject({ code: 'TWILIO_ABORTED' });
  });

  it('a 2xx answer that is not a call → a protocol error, not retryable (the call may exist)', async () => {
    answer = (_req, res) => json(res, 201, { status: 'queued' });
    expect(await failure(call())).toMatchObject({ code: 'TWILIO_BAD_RESPONSE', retryable: false, kind: 'protocol' });
    answer = (_req, res) => {
      res.writeHead(201);
      res.end('ok');
    };
    expect(await failure(call())).toMatchObject({ code: 'TWILIO_BAD_RESPONSE' });
  });

  it('uses an injected fetch', async () => {
    const requests: string[] = [];
    const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      requests.push(`${init?.method} ${String(input)}`);
      return new Response(JSON.stringify({ sid: CALL, status: 'queued' }), { status: 201 });
    }) as typeof fetch;
    await createTwilioCall({ accountSid: ACCOUNT, authToken: TOKEN, to: '+1', from: '+2', twiml: '<Response/>', fetch: fakeFetch });
    expect(requests).toEqual([`POST https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Calls.json`]);
  });
});

describe('hangupTwilioCall', () => {
  it('POSTs Status=completed to the call resource', async () => {
    answer = (_req, res) => json(res, 200, { sid: CALL, status: 'completed' });
    const result = await hangupTwilioCall({ accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: base, callSid: CALL });
    expect(result).toMatchObject({ callSid: CALL, status: 'completed' });
    expect(seen[0]!.path).toBe(`/2010-04-01/Accounts/${ACCOUNT}/Calls/${CALL}.json`);
    expect(Object.fromEntries(seen[0]!.form)).toEqual({ Status: 'completed' });
  });

  it('maps errors the same way', async () => {
    answer = (_req, res) => json(res, 404, { code: 20404, message: 'not found', status: 404 });
    expect(await failure(hangupTwilioCall({ accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: base, callSid: CALL }))).toMatchObject({ code: 'TWILIO_REJECTED', twilioCode: 20404 });
  });
});
