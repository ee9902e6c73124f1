import { describe, expect, it } from 'vitest';
import { buildAuthorization, parseDigestChallenge } from '../../../shared/telephony/sip/digest';
import { authorizeInbound, createNonceIssuer, NONCE_LIFETIME_MS, type InboundTrunk } from '../../../shared/telephony/sip/inbound-auth';
import { parseSipMessage, type SipRequest } from '../../../shared/telephony/sip/message';
import { isSipError } from '../../../shared/telephony/sip/sip-error';

const NOW = 1_800_000_000_000;
const SECRET = new TextEncoder().encode('a test nonce secret of enough length!!');

function invite(extra: string[] = []): SipRequest {
  const text = [
    'INVITE sip:+14155550123@198.51.100.10:5090 SIP/2.0',
    'Via: SIP/2.0/UDP 203.0.113.20:5060;branch=z9hG4bK-1',
    'From: <sip:pbx@203.0.113.20>;tag=1',
    'To: <sip:+14155550123@198.51.100.10>',
    'Call-ID: c1',
    'CSeq: 1 INVITE',
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const message = parseSipMessage(text);
  if (isSipError(message) || message.kind !== 'request') throw new Error('bad fixture');
  return message;
}

const digestTrunk = (challenge: 401 | 407 = 401, cidrs: string[] = []): InboundTrunk => ({
  name: 'pbx',
  cidrs,
  digest: { username: 'pbx', password: 'pbx-secret', realm: 'voice', challenge },
});

/** What a client does with our challenge: the Authorization (or Proxy-Authorization) header for this INVITE. */
async function answer(challengeHeader: string, password = 'pbx-secret', username = 'pbx'): Promise<string> {
  const challenge = parseDigestChallenge(challengeHeader);
  if (isSipError(challenge)) throw new Error(challenge.message);
  const value = await buildAuthorization(challenge, { method: 'INVITE', uri: 'sip:+14155550123@198.51.100.10:5090', username, password, cnonce: 'abc123' });
  if (isSipError(value)) throw new Error(value.message);
  return value;
}

describe('inbound trunk admission', () => {
  it('is closed by default: no trunk, or no trunk admitting the address → 403', async () => {
    const nonces = await createNonceIssuer(SECRET);
    expect(await authorizeInbound(invite(), '203.0.113.20', [], nonces, NOW)).toMatchObject({ ok: false, status: 403 });
    const listed: InboundTrunk = { name: 'carrier', cidrs: ['198.51.100.0/24'] };
    expect(await authorizeInbound(invite(), '203.0.113.20', [listed], nonces, NOW)).toMatchObject({ ok: false, status: 403 });
    // A trunk with neither check admits nobody.
    expect(await authorizeInbound(invite(), '203.0.113.20', [{ name: 'open', cidrs: [] }], nonces, NOW)).toMatchObject({ ok: false, status: 403 });
  });

  it('admits an address in an allow-list trunk without digest', async () => {
    const nonces = await createNonceIssuer(SECRET);
    const trunks: InboundTrunk[] = [{ name: 'a', cidrs: ['10.0.0.0/8'] }, { name: 'carrier', cidrs: ['203.0.113.0/24', '2001:db8::/32'] }];
    expect(await authorizeInbound(invite(), '203.0.113.20', trunks, nonces, NOW)).toEqual({ ok: true, trunk: 'carrier' });
    expect(await authorizeInbound(invite(), '2001:db8::7', trunks, nonces, NOW)).toEqual({ ok: true, trunk: 'carrier' });
  });

  it('challenges a digest trunk (401 or 407), then admits the right password and refuses a wrong one', async () => {
    const nonces = await createNonceIssuer(SECRET);
    for (const challenge of [401, 407] as const) {
      const first = await authorizeInbound(invite(), '203.0.113.20', [digestTrunk(challenge)], nonces, NOW);
      expect(first).toMatchObject({ ok: false, status: challenge });
      if (first.ok || first.status === 403) throw new Error('expected a challenge');
      expect(first.header[0]).toBe(challenge === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate');
      const header = challenge === 401 ? 'Authorization' : 'Proxy-Authorization';
      const good = await authorizeInbound(invite([`${header}: ${await answer(first.header[1])}`]), '203.0.113.20', [digestTrunk(challenge)], nonces, NOW + 1000);
      expect(good).toEqual({ ok: true, trunk: 'pbx' });
      const bad = await authorizeInbound(invite([`${header}: ${await answer(first.header[1], 'guess')}`]), '203.0.113.20', [digestTrunk(challenge)], nonces, NOW + 1000);
      expect(bad).toMatchObject({ ok: false, status: challenge });
      const otherUser = await authorizeInbound(invite([`${header}: ${await answer(first.header[1], 'pbx-secret', 'mallory')}`]), '203.0.113.20', [digestTrunk(challenge)], nonces, NOW + 1000);
      expect(otherUser).toMatchObject({ ok: false, status: challenge });
    }
  });

  it('a digest trunk with an allow-list needs both; an old nonce is answered stale, a forged one refused', async () => {
    const nonces = await createNonceIssuer(SECRET);
    const trunk = digestTrunk(401, ['203.0.113.0/24']);
    expect(await authorizeInbound(invite(), '192.0.2.1', [trunk], nonces, NOW)).toMatchObject({ ok: false, status: 403 });
    const first = await authorizeInbound(invite(), '203.0.113.20', [trunk], nonces, NOW);
    if (first.ok || first.status === 403) throw new Error('expected a challenge');
    const authorization = `Authorization: ${await answer(first.header[1])}`;
    // From outside the allow-list even the right credentials are refused.
    expect(await authorizeInbound(invite([authorization]), '192.0.2.1', [trunk], nonces, NOW)).toMatchObject({ ok: false, status: 403 });
    const late = await authorizeInbound(invite([authorization]), '203.0.113.20', [trunk], nonces, NOW + NONCE_LIFETIME_MS + 1000);
    expect(late).toMatchObject({ ok: false, status: 401 });
    if (late.ok || late.status === 403) throw new Error('expected a challenge');
    expect(late.header[1]).toContain('stale=true');
    // A nonce another secret signed is not ours.
    const foreign = await createNonceIssuer(new TextEncoder().encode('another secret entirely, also long'));
    const forged = await answer(`Digest realm="voice", nonce="${await foreign.issue(NOW, 'c1|203.0.113.20')}", algorithm=MD5, qop="auth"`);
    expect(await authorizeInbound(invite([`Authorization: ${forged}`]), '203.0.113.20', [trunk], nonces, NOW)).toMatchObject({ ok: false, status: 401 });
    expect(await nonces.check('not-a-nonce', NOW, 'c1|203.0.113.20')).toBe('unknown');
  });

  it('a captured Authorization cannot be replayed: not twice, not for another call, not from elsewhere', async () => {
    const nonces = await createNonceIssuer(SECRET);
    const trunk = digestTrunk(401);
    const first = await authorizeInbound(invite(), '203.0.113.20', [trunk], nonces, NOW);
    if (first.ok || first.status === 403) throw new Error('expected a challenge');
    const authorization = `Authorization: ${await answer(first.header[1])}`;
    // Another source, or another call (Call-ID) with the same header: the nonce was not issued for them.
    expect(await authorizeInbound(invite([authorization]), '198.51.100.99', [trunk], nonces, NOW + 10)).toMatchObject({ ok: false, status: 401 });
    const otherCall = invite([authorization]);
    expect(await authorizeInbound({ ...otherCall, callId: 'c2' }, '203.0.113.20', [trunk], nonces, NOW + 10)).toMatchObject({ ok: false, status: 401 });
    // The real retry is admitted once; the same header again is stale.
    expect(await authorizeInbound(invite([authorization]), '203.0.113.20', [trunk], nonces, NOW + 20)).toEqual({ ok: true, trunk: 'pbx' });
    const replay = await authorizeInbound(invite([authorization]), '203.0.113.20', [trunk], nonces, NOW + 30);
    expect(replay).toMatchObject({ ok: false, status: 401 });
    if (replay.ok || replay.status === 403) throw new Error('expected a challenge');
    expect(replay.header[1]).toContain('stale=true');
    // A response without qop (RFC 2069 style) binds no client nonce: refused.
    const noQop = (await answer(first.header[1])).replace(/, qop=auth/, '').replace(/, nc=\w+/, '').replace(/, cnonce="[^"]*"/, '');
    expect(await authorizeInbound(invite([`Authorization: ${noQop}`]), '203.0.113.20', [trunk], nonces, NOW + 40)).toMatchObject({ ok: false, status: 401 });
  });
});
