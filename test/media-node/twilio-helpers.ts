import type { connectTwilioCarrier } from '../../media-node/simulator/twilio-carrier';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';

type Carrier = Awaited<ReturnType<typeof connectTwilioCarrier>>;

export interface InboundTarget {
  /** Where the node listens. */
  readonly url: string;
  /** What Twilio signs (the node's PUBLIC_BASE_URL). */
  readonly publicBaseUrl: string;
  readonly assistantId: string;
  readonly accountSid: string;
  readonly authToken: string;
}

/** Twilio calling the number's Voice URL, signed with the auth token (`token` overrides it to sign wrongly). */
export async function twilioInbound(target: InboundTarget, options: { token?: string; callSid?: string } = {}) {
  const path = `/v1/talk/twilio/call/${target.assistantId}`;
  const callSid = options.callSid ?? `CA${crypto.randomUUID().replace(/-/g, '')}`;
  const params = { AccountSid: target.accountSid, CallSid: callSid, From: '+15550101', To: '+15550199', CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01' };
  const signature = await signTwilioRequest({ authToken: options.token ?? target.authToken, url: `${target.publicBaseUrl}${path}`, params });
  const response = await fetch(`${target.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    body: new URLSearchParams(params).toString(),
  });
  const text = await response.text();
  const streamUrl = /<Stream url="([^"]+)"/.exec(text)?.[1];
  return { status: response.status, text, streamUrl, callSid };
}

/** The caller saying tone-coded words. */
export const say = (carrier: Carrier, text: string) => carrier.say(synthesizeWords(splitWords(text), 8000).pcm);
/** The words the caller heard (decoded from what the carrier played). */
export const heardWords = (carrier: Carrier, from = -Infinity, to = Infinity) => decodeWords(carrier.heardPcm(from, to), 8000);

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return predicate();
}
