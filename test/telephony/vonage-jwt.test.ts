import { createHash, createHmac, generateKeyPairSync, verify as verifySignature } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createVonageApplicationJwt, importVonagePrivateKey, signVonageWebhook, verifyVonageWebhook, VonageKeyError } from '../../shared/telephony/vonage-jwt';

// Tokens here are built with node:crypto by hand (§2.4), so the Web Crypto verifier and signer are checked
// against an independent implementation.

const SECRET = 'signature-secret';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

function hs256(claims: Record<string, unknown>, options: { secret?: string; header?: Record<string, unknown> } = {}): string {
  const input = `${b64url(JSON.stringify(options.header ?? { alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', options.secret ?? SECRET).update(input).digest('base64url')}`;
}

const verify = (token: string | undefined, extra: Partial<Parameters<typeof verifyVonageWebhook>[0]> = {}) =>
  verifyVonageWebhook({ authorization: token === undefined ? undefined : `Bearer ${token}`, signatureSecret: SECRET, body: '', nowMs: NOW, ...extra });

const iat = Math.floor(NOW / 1000) - 2;

describe('Vonage signed webhooks (HS256)', () => {
  it('accepts a fresh token signed with the secret, with its claims', async () => {
    const result = await verify(hs256({ iat, jti: 'j1', iss: 'Vonage', api_key: 'key1', application_id: 'app1' }), { apiKey: 'key1', applicationId: 'app1' });
    expect(result).toEqual({ ok: true, claims: { iat, jti: 'j1', iss: 'Vonage', api_key: 'key1', application_id: 'app1' } });
  });

  it('refuses a missing header, another secret, a tampered payload, another algorithm and garbage', async () => {
    expect(await verify(undefined)).toMatchObject({ ok: false, reason: 'missing' });
    expect(await verifyVonageWebhook({ authorization: 'Basic abc', signatureSecret: SECRET, body: '', nowMs: NOW })).toMatchObject({ ok: false, reason: 'missing' });
    expect(await verify(hs256({ iat }, { secret: 'other' }))).toMatchObject({ ok: false, reason: 'bad-signature' });
    const [h, , s] = hs256({ iat, api_key: 'a' }).split('.');
    expect(await verify(`${h}.${b64url(JSON.stringify({ iat, api_key: 'b' }))}.${s}`))
      .toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(await verify(hs256({ iat }, { header: { alg: 'none' } }))).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await verify(hs256({ iat }, { header: { alg: 'HS512' } }))).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await verify('a.b')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await verify('!!.??.**')).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await verify(hs256({ jti: 'no iat' }))).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('refuses stale, future and expired tokens (5 minutes, 60 s of skew)', async () => {
    expect(await verify(hs256({ iat: iat - 301 }))).toMatchObject({ ok: false, reason: 'stale' });
    expect(await verify(hs256({ iat: iat - 290 }))).toMatchObject({ ok: true });
    expect(await verify(hs256({ iat: iat + 120 }))).toMatchObject({ ok: false, reason: 'stale' });
    expect(await verify(hs256({ iat, exp: iat - 1 }))).toMatchObject({ ok: false, reason: 'stale' });
    expect(await verify(hs256({ iat: iat - 100 }), { maxAgeMs: 60_000 })).toMatchObject({ ok: false, reason: 'stale' });
  });

  it("refuses another account's or application's token", async () => {
    expect(await verify(hs256({ iat, api_key: 'other' }), { apiKey: 'mine' })).toMatchObject({ ok: false, reason: 'wrong-account' });
    expect(await verify(hs256({ iat, application_id: 'other' }), { applicationId: 'mine' })).toMatchObject({ ok: false, reason: 'wrong-account' });
    // Claims the credential does not pin are not checked.
    expect(await verify(hs256({ iat, api_key: 'other' }))).toMatchObject({ ok: true });
  });

  it('checks payload_hash against the raw body, its compact form, or a GET query', async () => {
    const body = '{"status":"answered","uuid":"u1"}';
    const hash = (text: string) => createHash('sha256').update(text).digest('hex');
    expect(await verify(hs256({ iat, payload_hash: hash(body) }), { body })).toMatchObject({ ok: true });
    expect(await verify(hs256({ iat, payload_hash: hash(body) }), { body: '{ "status": "answered", "uuid": "u1" }' })).toMatchObject({ ok: true });
    expect(await verify(hs256({ iat, payload_hash: hash(body) }), { body: body.replace('answered', 'completed') })).toMatchObject({ ok: false, reason: 'payload-mismatch' });
    const query = new URLSearchParams({ uuid: 'u1', to: '447' });
    expect(await verify(hs256({ iat, payload_hash: hash('{"uuid":"u1","to":"447"}') }), { query })).toMatchObject({ ok: true });
    expect(await verify(hs256({ iat, payload_hash: 42 }), { body })).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('signVonageWebhook makes tokens node:crypto agrees with', async () => {
    const token = await signVonageWebhook({ signatureSecret: SECRET, claims: { iat }, body: '{}' });
    const [h, c, s] = token.split('.');
    expect(createHmac('sha256', SECRET).update(`${h}.${c}`).digest('base64url')).toBe(s);
    expect(JSON.parse(Buffer.from(c!, 'base64url').toString())).toEqual({ iat, payload_hash: createHash('sha256').update('{}').digest('hex') });
    expect(await verify(token, { body: '{}' })).toMatchObject({ ok: true });
  });
});

describe('the application JWT (RS256, Web Crypto)', () => {
  for (const type of ['pkcs8', 'pkcs1'] as const) {
    it(`signs with a ${type} PEM key; node:crypto verifies it with the public key`, async () => {
      const keys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type, format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
      expect(keys.privateKey).toContain(type === 'pkcs1' ? 'BEGIN RSA PRIVATE KEY' : 'BEGIN PRIVATE KEY');
      const token = await createVonageApplicationJwt({ applicationId: 'app-1', privateKey: keys.privateKey, nowMs: NOW, ttlSeconds: 60 });
      const [h, c, s] = token.split('.');
      expect(verifySignature('RSA-SHA256', Buffer.from(`${h}.${c}`), keys.publicKey, Buffer.from(s!, 'base64url'))).toBe(true);
      expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({ alg: 'RS256', typ: 'JWT' });
      const claims = JSON.parse(Buffer.from(c!, 'base64url').toString());
      expect(claims).toEqual({ application_id: 'app-1', iat: NOW / 1000, exp: NOW / 1000 + 60, jti: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    });
  }

  it('accepts a PEM pasted with literal \\n, and says what is wrong with a bad key', async () => {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    await expect(importVonagePrivateKey(keys.privateKey.replace(/\n/g, '\\n'))).resolves.toBeDefined();
    await expect(importVonagePrivateKey('not a key')).rejects.toThrow(VonageKeyError);
    await expect(importVonagePrivateKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----')).rejects.toThrow(/Web Crypto/);
  });
});
