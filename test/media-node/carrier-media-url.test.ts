import { describe, expect, it } from 'vitest';
import { resolveCarrierMediaUrl } from '../../media-node/channels/carriers';

// Which carrier and context a media WebSocket URL names (media-node/server.ts dispatches upgrades with it).

const ID = '0b7c6f1e-3f0e-4a43-9f59-6f3c1b2a9d10';
const resolve = (path: string) => {
  const target = resolveCarrierMediaUrl(new URL(`ws://node.test${path}`));
  return 'refused' in target ? target : { provider: target.media.provider, contextId: target.contextId };
};

describe('media WebSocket URLs', () => {
  it('takes the id from the path for every carrier, ignoring other query parameters', () => {
    expect(resolve(`/v1/talk/twilio/ctx/${ID}`)).toEqual({ provider: 'twilio', contextId: ID });
    expect(resolve(`/v1/talk/asterisk/ctx/${ID}/?leg=a&x=1`)).toEqual({ provider: 'asterisk', contextId: ID });
    expect(resolve(`/v1/talk/asterisk/ctx/${ID}?contextId=${ID}`)).toEqual({ provider: 'asterisk', contextId: ID });
    expect(resolve('/v1/talk/asterisk/ctx/a%20b')).toEqual({ provider: 'asterisk', contextId: 'a b' });
  });

  it('takes ?contextId= on /ctx or the carrier root where the carrier can only append parameters (Asterisk v())', () => {
    expect(resolve(`/v1/talk/asterisk/ctx?contextId=${ID}`)).toEqual({ provider: 'asterisk', contextId: ID });
    expect(resolve(`/v1/talk/asterisk?leg=a&contextId=${ID}`)).toEqual({ provider: 'asterisk', contextId: ID });
    expect(resolve(`/v1/talk/asterisk/?contextId=${ID}`)).toEqual({ provider: 'asterisk', contextId: ID });
  });

  it('refuses what names no context, or two', () => {
    expect(resolve('/v1/talk/asterisk/ctx')).toMatchObject({ refused: 400 });
    expect(resolve('/v1/talk/asterisk?contextId=')).toMatchObject({ refused: 400 });
    expect(resolve(`/v1/talk/asterisk/ctx/${ID}?contextId=other`)).toMatchObject({ refused: 400, reason: expect.stringMatching(/different/) });
    expect(resolve('/v1/talk/asterisk/ctx/%E0%A4%A')).toMatchObject({ refused: 400 });
    // Twilio keeps the id in the path only (its parameter is not read at all).
    expect(resolve(`/v1/talk/twilio/ctx?contextId=${ID}`)).toMatchObject({ refused: 404 });
    expect(resolve(`/v1/talk/twilio/ctx/${ID}?contextId=other`)).toEqual({ provider: 'twilio', contextId: ID });
    expect(resolve(`/v1/talk/nobody/ctx/${ID}`)).toMatchObject({ refused: 404 });
    expect(resolve(`/v1/talk/asterisk/ctx/${ID}/extra`)).toMatchObject({ refused: 404 });
  });
});
