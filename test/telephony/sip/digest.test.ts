import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  buildAuthorization,
  computeDigestResponse,
  constantTimeEqual,
  parseDigestChallenge,
  parseDigestCredentials,
  verifyDigestCredentials,
  type DigestChallenge,
  type DigestCredentials,
} from '../../../shared/telephony/sip/digest';
import { md5Hex } from '../../../shared/telephony/sip/md5';
import { SipError } from '../../../shared/telephony/sip/sip-error';

describe('MD5 in pure TypeScript (RFC 1321)', () => {
  it('matches the RFC 1321 test suite', () => {
    expect(md5Hex('')).toBe('d41d8cd98f00b204e9800998ecf8427e');
    expect(md5Hex('a')).toBe('0cc175b9c0f1b6a831c399e269772661');
    expect(md5Hex('abc')).toBe('900150983cd24fb0d6963f7d28e17f72');
    expect(md5Hex('message digest')).toBe('f96b697d7cb7938d525a2f31aaf161d0');
    expect(md5Hex('abcdefghijklmnopqrstuvwxyz')).toBe('c3fcd3d76192e4007dfb496cca67e13b');
    expect(md5Hex('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789')).toBe('d174ab98d277d9f5a5611c2c9f419d9f');
    expect(md5Hex('1234567890'.repeat(8))).toBe('57edf4a22be3c955ac49da2e2107b67a');
  });

  it('agrees with node:crypto across the padding boundaries and on binary input', () => {
    for (const length of [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 1000]) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 31 + length) & 0xff);
      expect(md5Hex(bytes)).toBe(createHash('md5').update(bytes).digest('hex'));
    }
    expect(md5Hex('pässwörd')).toBe(createHash('md5').update('pässwörd', 'utf8').digest('hex'));
  });
});

/** RFC 2617 §3.5's worked example. */
const RFC2617 = {
  username: 'Mufasa', realm: 'testrealm@host.com', password: 'Circle Of Life', method: 'GET', uri: '/dir/index.html',
  nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', nc: '00000001', cnonce: '0a4f113b', qop: 'auth' as const,
};

/** RFC 7616 §3.9.1's example (note: "Circle of Life" there, lower-case o). */
const RFC7616 = {
  username: 'Mufasa', realm: 'http-auth@example.org', password: 'Circle of Life', method: 'GET', uri: '/dir/index.html',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v', nc: '00000001', cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ', qop: 'auth' as const,
};

describe('digest response computation', () => {
  it('reproduces RFC 2617 §3.5 (MD5, qop=auth)', async () => {
    expect(await computeDigestResponse({ algorithm: 'MD5', ...RFC2617 })).toBe('6629fae49393a05397450978507c4ef1');
  });

  it('reproduces RFC 7616 §3.9.1 for MD5 and SHA-256 (RFC 8760 for SIP)', async () => {
    expect(await computeDigestResponse({ algorithm: 'MD5', ...RFC7616 })).toBe('8ca523f5e9506fed4657c9700eebdbec');
    expect(await computeDigestResponse({ algorithm: 'SHA-256', ...RFC7616 })).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  });

  it('computes the no-qop form and MD5-sess as the formulas of reference §6.6 say', async () => {
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    const base = { username: 'u', realm: 'r', password: 'p', method: 'REGISTER', uri: 'sip:registrar.example', nonce: 'n' };
    const ha1 = md5('u:r:p');
    const ha2 = md5('REGISTER:sip:registrar.example');
    expect(await computeDigestResponse({ algorithm: 'MD5', ...base })).toBe(md5(`${ha1}:n:${ha2}`));
    const sessHa1 = md5(`${ha1}:n:c`);
    expect(await computeDigestResponse({ algorithm: 'MD5-sess', ...base, qop: 'auth', nc: '00000002', cnonce: 'c' })).toBe(md5(`${sessHa1}:n:00000002:c:auth:${ha2}`));
    expect(await computeDigestResponse({ algorithm: 'MD5', ...base, qop: 'auth' })).toMatchObject({ code: 'invalid-argument' });
    expect(await computeDigestResponse({ algorithm: 'MD5-sess', ...base })).toMatchObject({ code: 'invalid-argument' });
  });
});

describe('challenge and credentials parsing', () => {
  it('reads a SIP 401 challenge with quoted and token values', () => {
    const challenge = parseDigestChallenge('Digest realm="atlanta.example.com", nonce="84a4cc6f3082121f32b42a2187831a9e", qop="auth,auth-int", algorithm=MD5, opaque="xyz", stale=TRUE');
    expect(challenge).toEqual({ realm: 'atlanta.example.com', nonce: '84a4cc6f3082121f32b42a2187831a9e', algorithm: 'MD5', qop: ['auth', 'auth-int'], stale: true, opaque: 'xyz' });
    expect(parseDigestChallenge('digest realm="r",nonce="n"')).toMatchObject({ algorithm: 'MD5', qop: [], stale: false });
    expect(parseDigestChallenge('Digest realm="r", nonce="n", algorithm=sha-256')).toMatchObject({ algorithm: 'SHA-256' });
  });

  it.each([
    ['Basic scheme', 'Basic realm="r"', 'unsupported'],
    ['no parameters', 'Digest', 'malformed'],
    ['missing nonce', 'Digest realm="r"', 'missing'],
    ['missing realm', 'Digest nonce="n"', 'missing'],
    ['unterminated quote', 'Digest realm="r, nonce="n', 'malformed'],
    ['unknown algorithm', 'Digest realm="r", nonce="n", algorithm=SHA-1', 'unsupported'],
    ['duplicate parameter', 'Digest realm="r", realm="s", nonce="n"', 'malformed'],
    ['junk between parameters', 'Digest realm="r" nonce="n"', 'malformed'],
    ['oversize', `Digest realm="${'r'.repeat(5000)}", nonce="n"`, 'too-large'],
  ])('rejects a challenge with %s', (_name, header, code) => {
    expect(parseDigestChallenge(header)).toMatchObject({ type: 'protocolError', code });
  });

  it('reads an Authorization header, with escaped quotes in the username', () => {
    const credentials = parseDigestCredentials('Digest username="bo\\"b", realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629FAE49393A05397450978507C4EF1", opaque="5ccc"');
    expect(credentials).toEqual({ username: 'bo"b', realm: 'biloxi.com', nonce: 'dcd98b', uri: 'sip:bob@biloxi.com', qop: 'auth', nc: '00000001', cnonce: '0a4f113b', response: '6629fae49393a05397450978507c4ef1', opaque: '5ccc', algorithm: 'MD5' });
  });

  it.each([
    ['no response', 'Digest username="u", realm="r", nonce="n", uri="sip:x"', 'missing'],
    ['no uri', 'Digest username="u", realm="r", nonce="n", response="ab"', 'missing'],
    ['qop=auth without nc', 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ab", qop=auth, cnonce="c"', 'malformed'],
    ['bad nc', 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ab", qop=auth, cnonce="c", nc=1', 'malformed'],
    ['qop=auth without cnonce', 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ab", qop=auth, nc=00000001', 'missing'],
    ['qop=auth-int', 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="ab", qop=auth-int, nc=00000001, cnonce="c"', 'unsupported'],
    ['non-hex response', 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="zz"', 'malformed'],
  ])('rejects credentials with %s', (_name, header, code) => {
    expect(parseDigestCredentials(header)).toMatchObject({ code });
  });

  it('never throws on random header text (fixed seed)', () => {
    let state = 3;
    const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0);
    const alphabet = 'Digest realmnoceuriqp="\\, =auth';
    for (let round = 0; round < 2000; round += 1) {
      let text = round % 2 ? 'Digest ' : '';
      const length = next() % 80;
      for (let i = 0; i < length; i += 1) text += alphabet[next() % alphabet.length];
      const a = parseDigestChallenge(text);
      const b = parseDigestCredentials(text);
      expect(a instanceof SipError || typeof a.nonce === 'string').toBe(true);
      expect(b instanceof SipError || typeof b.response === 'string').toBe(true);
    }
  });
});

describe('client Authorization and server verification', () => {
  const challenge = parseDigestChallenge('Digest realm="voice.example", nonce="abc123", qop="auth", algorithm=MD5, opaque="op"') as DigestChallenge;
  const nonceIsCurrent = (nonce: string) => (nonce === 'abc123' ? 'current' : nonce === 'old' ? 'stale' : 'unknown') as 'current' | 'stale' | 'unknown';
  const expected = { realm: 'voice.example', password: 's3cret', method: 'INVITE', requestUri: 'sip:+15551234567@voice.example', nonceIsCurrent };

  async function credentialsFor(password: string, overrides: Partial<Parameters<typeof buildAuthorization>[1]> = {}, withChallenge = challenge) {
    const header = await buildAuthorization(withChallenge, { method: 'INVITE', uri: 'sip:+15551234567@voice.example', username: 'trunk1', password, cnonce: 'cn0', ...overrides });
    expect(typeof header).toBe('string');
    return parseDigestCredentials(header as string) as DigestCredentials;
  }

  it('builds an Authorization that the verifier accepts with the right password', async () => {
    const header = await buildAuthorization(challenge, { method: 'INVITE', uri: 'sip:+15551234567@voice.example', username: 'trunk1', password: 's3cret', cnonce: 'cn0' });
    expect(header).toMatch(/^Digest username="trunk1", realm="voice.example", nonce="abc123", uri="sip:\+15551234567@voice.example", response="[0-9a-f]{32}", algorithm=MD5, cnonce="cn0", qop=auth, nc=00000001, opaque="op"$/);
    expect(await verifyDigestCredentials(await credentialsFor('s3cret'), expected)).toEqual({ ok: true });
  });

  it('refuses a wrong password, another realm, an unknown nonce, another URI; flags a stale nonce', async () => {
    expect(await verifyDigestCredentials(await credentialsFor('wrong'), expected)).toEqual({ ok: false, reason: 'wrong-response' });
    expect(await verifyDigestCredentials(await credentialsFor('s3cret'), { ...expected, realm: 'other' })).toEqual({ ok: false, reason: 'wrong-realm' });
    expect(await verifyDigestCredentials(await credentialsFor('s3cret'), { ...expected, requestUri: 'sip:other@voice.example' })).toEqual({ ok: false, reason: 'uri-mismatch' });
    expect(await verifyDigestCredentials(await credentialsFor('s3cret'), { ...expected, method: 'BYE' })).toEqual({ ok: false, reason: 'wrong-response' });
    const unknown = { ...challenge, nonce: 'forged' };
    expect(await verifyDigestCredentials(await credentialsFor('s3cret', {}, unknown), expected)).toEqual({ ok: false, reason: 'unknown-nonce' });
    const stale = { ...challenge, nonce: 'old' };
    expect(await verifyDigestCredentials(await credentialsFor('s3cret', {}, stale), expected)).toEqual({ ok: false, reason: 'stale' });
    expect(await verifyDigestCredentials(await credentialsFor('wrong', {}, stale), expected)).toEqual({ ok: false, reason: 'wrong-response' });
  });

  it('verifies SHA-256 only when the server allows it (no silent downgrade)', async () => {
    const sha = { ...challenge, algorithm: 'SHA-256' as const };
    const credentials = await credentialsFor('s3cret', { nc: 2 }, sha);
    expect(credentials).toMatchObject({ algorithm: 'SHA-256', nc: '00000002' });
    expect(credentials.response).toMatch(/^[0-9a-f]{64}$/);
    expect(await verifyDigestCredentials(credentials, { ...expected, algorithms: ['SHA-256'] })).toEqual({ ok: true });
    expect(await verifyDigestCredentials(credentials, expected)).toEqual({ ok: false, reason: 'wrong-algorithm' });
    const md5Credentials = await credentialsFor('s3cret');
    expect(await verifyDigestCredentials(md5Credentials, { ...expected, algorithms: ['SHA-256'] })).toEqual({ ok: false, reason: 'wrong-algorithm' });
  });

  it('answers an RFC 2069-style challenge (no qop) and refuses an auth-int-only one', async () => {
    const legacy = parseDigestChallenge('Digest realm="voice.example", nonce="abc123"') as DigestChallenge;
    const header = (await buildAuthorization(legacy, { method: 'INVITE', uri: 'sip:+15551234567@voice.example', username: 'trunk1', password: 's3cret', cnonce: 'x' })) as string;
    expect(header).not.toContain('qop=');
    expect(await verifyDigestCredentials(parseDigestCredentials(header) as DigestCredentials, expected)).toEqual({ ok: true });
    const authInt = parseDigestChallenge('Digest realm="r", nonce="n", qop="auth-int"') as DigestChallenge;
    expect(await buildAuthorization(authInt, { method: 'INVITE', uri: 'sip:x', username: 'u', password: 'p', cnonce: 'c' })).toMatchObject({ code: 'unsupported' });
  });

  it('compares in constant time over the full length', () => {
    expect(constantTimeEqual('abcdef', 'abcdef')).toBe(true);
    expect(constantTimeEqual('abcdef', 'abcdeg')).toBe(false);
    expect(constantTimeEqual('abc', 'abcdef')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
  });
});
