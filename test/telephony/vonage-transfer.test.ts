import { generateKeyPairSync, verify as verifySignature } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withVonageTransfer } from '../../media-node/tools/call-tools';
import { transferVonageCall, VonageApiError } from '../../shared/telephony/vonage-rest';
import { createFakeChannel } from '../fakes/channel';
import { createFakeClock } from '../fakes/clock';

// transfer_call on Vonage: `PUT /v1/calls/{uuid}` with a transfer action to an NCCO that connects the target,
// against a local fake of the Voice API that checks the RS256 application JWT with the public key.

const APPLICATION = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const CALL = '63f61863-4a51-4f6b-86e1-46edebcf9356';
const keys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });

interface Seen {
  method: string;
  path: string;
  body: unknown;
  jwtValid: boolean;
  claims: Record<string, unknown> | undefined;
}
let server: Server;
let base: string;
const seen: Seen[] = [];

function checkJwt(req: IncomingMessage): { valid: boolean; claims: Record<string, unknown> | undefined } {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const parts = token?.split('.');
  if (!parts || parts.length !== 3) return { valid: false, claims: undefined };
  const valid = verifySignature('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), keys.publicKey, Buffer.from(parts[2]!, 'base64url'));
  return { valid, claims: JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown> };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const jwt = checkJwt(req);
      seen.push({ method: req.method ?? '', path: req.url ?? '', body: text ? JSON.parse(text) : undefined, jwtValid: jwt.valid, claims: jwt.claims });
      if (!jwt.valid) return res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ title: 'Unauthorized', detail: 'invalid token' }));
      if (req.method !== 'PUT' || req.url !== `/v1/calls/${CALL}`) return res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ title: 'Not found' }));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('Vonage transfer (the live call moved to a connect NCCO)', () => {
  it('PUTs a transfer to an NCCO that connects the phone number, signed with the application key', async () => {
    seen.length = 0;
    await transferVonageCall({ applicationId: APPLICATION, privateKey: keys.privateKey, apiBaseUrl: base, uuid: CALL, to: '+14155550123' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'PUT', path: `/v1/calls/${CALL}`, jwtValid: true });
    expect(seen[0]!.claims).toMatchObject({ application_id: APPLICATION });
    expect(seen[0]!.body).toEqual({ action: 'transfer', destination: { type: 'ncco', ncco: [{ action: 'connect', endpoint: [{ type: 'phone', number: '14155550123' }] }] } });
  });

  it('a SIP target becomes a sip endpoint; Vonage errors say what to do', async () => {
    seen.length = 0;
    await transferVonageCall({ applicationId: APPLICATION, privateKey: keys.privateKey, apiBaseUrl: base, uuid: CALL, to: 'sip:desk@pbx.example.com' });
    expect(seen[0]!.body).toMatchObject({ destination: { ncco: [{ endpoint: [{ type: 'sip', uri: 'sip:desk@pbx.example.com' }] }] } });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const refused = transferVonageCall({ applicationId: APPLICATION, privateKey: other.privateKey, apiBaseUrl: base, uuid: CALL, to: '+14155550123' });
    await expect(refused).rejects.toBeInstanceOf(VonageApiError);
    await expect(refused).rejects.toMatchObject({ code: 'VONAGE_AUTH', retryable: false });
    await expect(transferVonageCall({ applicationId: APPLICATION, privateKey: keys.privateKey, apiBaseUrl: base, uuid: 'gone', to: '+14155550123' })).rejects.toMatchObject({ code: 'VONAGE_REJECTED' });
  });

  it("the media node gives a Vonage call's channel a transfer with the project's credential and the call uuid", async () => {
    seen.length = 0;
    const fake = createFakeChannel({ clock: createFakeClock() });
    const stored = JSON.stringify({ applicationId: APPLICATION, privateKey: keys.privateKey, apiBaseUrl: base });
    const credentials = { resolve: async (_p: string, provider: string) => (provider === 'vonage' ? stored : undefined) };
    const context = { projectId: 'p1', provider: 'vonage', channelId: CALL };
    // A credential pointing elsewhere than Vonage's API hosts is refused unless the node allows it (tests allow the fake).
    const strict = withVonageTransfer(fake.channel, { credentials, context });
    expect(strict.capabilities.transfer).toBe(true);
    await expect(strict.transfer!('+14155550123')).rejects.toThrow(/apiBaseUrl/);
    expect(seen).toHaveLength(0);
    const line = withVonageTransfer(fake.channel, { credentials, context, allowApiBaseUrl: () => true });
    await line.transfer!('+14155550123');
    expect(seen.map((s) => s.path)).toEqual([`/v1/calls/${CALL}`]);
    // Other calls keep their channel as it is; a Vonage call without its uuid has no transfer.
    expect(withVonageTransfer(fake.channel, { credentials, context: { ...context, provider: 'twilio' } })).toBe(fake.channel);
    expect(withVonageTransfer(fake.channel, { credentials, context: { projectId: 'p1', provider: 'vonage' } }).capabilities.transfer).toBe(false);
  });
});
