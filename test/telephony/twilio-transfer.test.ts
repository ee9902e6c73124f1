import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTwilioTransfer } from '../../media-node/tools/call-tools';
import { TwilioApiError, dialTwiml, transferTwilioCall } from '../../shared/telephony/twilio-rest';
import { createFakeChannel } from '../fakes/channel';
import { createFakeClock } from '../fakes/clock';

// transfer_call on Twilio: the live call is redirected to <Dial> through `POST Calls/{CallSid}.json` with
// `Twiml`, against a local fake of Twilio's REST API (basic auth checked, the form recorded).

const ACCOUNT = 'AC' + '0123456789abcdef'.repeat(2);
const TOKEN = 'transfer-auth-token';
const CALL = 'CA' + 'fedcba9876543210'.repeat(2);
const AUTH = `Basic ${Buffer.from(`${ACCOUNT}:${TOKEN}`).toString('base64')}`;

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}
let server: Server;
let base: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, form: new URLSearchParams(body) });
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      if (req.headers.authorization !== AUTH) return reply(401, { code: 20003, message: 'Authenticate', status: 401 });
      const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls\/([^/]+)\.json$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match || match[1] !== ACCOUNT) return reply(404, { code: 20404, message: 'not found', status: 404 });
      if (match[2] !== CALL) return reply(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
      return reply(200, { sid: CALL, account_sid: ACCOUNT, status: 'in-progress' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('Twilio transfer (REST redirect to <Dial>)', () => {
  it('redirects the live call with <Dial><Number>, basic auth and a form body', async () => {
    seen.length = 0;
    const result = await transferTwilioCall({ accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: base, callSid: CALL, to: '+14155550123' });
    expect(result).toMatchObject({ callSid: CALL, status: 'in-progress' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', path: `/2010-04-01/Accounts/${ACCOUNT}/Calls/${CALL}.json` });
    expect(seen[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(seen[0]!.form.get('Twiml')).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Number>+14155550123</Number></Dial></Response>');
  });

  it('SIP targets use <Sip>, escaped', () => {
    expect(dialTwiml('sip:desk@pbx.example.com;transport=tls&x=1')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Sip>sip:desk@pbx.example.com;transport=tls&amp;x=1</Sip></Dial></Response>',
    );
  });

  it('refuses a bad target before any request; Twilio errors say what to do', async () => {
    seen.length = 0;
    await expect(transferTwilioCall({ accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: base, callSid: CALL, to: '<Hangup/>' })).rejects.toMatchObject({ code: 'TWILIO_BAD_REQUEST' });
    expect(seen).toHaveLength(0);
    const wrongToken = transferTwilioCall({ accountSid: ACCOUNT, authToken: 'nope', apiBaseUrl: base, callSid: CALL, to: '+14155550123' });
    await expect(wrongToken).rejects.toBeInstanceOf(TwilioApiError);
    await expect(wrongToken).rejects.toMatchObject({ code: 'TWILIO_AUTH', retryable: false });
  });

  it("the media node gives a Twilio call's channel a transfer with the project's credential and the CallSid", async () => {
    seen.length = 0;
    const fake = createFakeChannel({ clock: createFakeClock() });
    const credentials = { resolve: async (_p: string, provider: string) => (provider === 'twilio' ? JSON.stringify({ accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: base }) : undefined) };
    const context = { projectId: 'p1', provider: 'twilio', channelId: CALL };
    // A credential pointing elsewhere than Twilio is refused unless the node allows it (tests allow the fake).
    const strict = withTwilioTransfer(fake.channel, { credentials, context });
    expect(strict.capabilities.transfer).toBe(true);
    await expect(strict.transfer!('+14155550123')).rejects.toThrow(/apiBaseUrl/);
    const line = withTwilioTransfer(fake.channel, { credentials, context, allowApiBaseUrl: () => true });
    await line.transfer!('+14155550123');
    expect(seen.map((s) => s.form.get('Twiml'))).toEqual([dialTwiml('+14155550123')]);
    // Other calls keep their channel as it is.
    expect(withTwilioTransfer(fake.channel, { credentials, context: { ...context, provider: 'web' } })).toBe(fake.channel);
    expect(withTwilioTransfer(fake.channel, { credentials, context: { projectId: 'p1', provider: 'twilio' } }).capabilities.transfer).toBe(false);
  });
});
