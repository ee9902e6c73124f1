import { z } from 'zod';
import { parseVonageContentType } from '../../shared/telephony/vonage';
import { signVonageWebhook } from '../../shared/telephony/vonage-jwt';
import { createCallerQueue } from './caller';
import { createPlayback } from './playback';
import { dialFailure, DialError, openCarrierSocket, startFrameClock, type SimulatedCall } from './simulated-call';

/**
 * Vonage taking an inbound call (telephony reference §2): fetches the application's answer URL (a GET with
 * query parameters, signed like a Vonage webhook: HS256 JWT with the signature secret), follows the NCCO's
 * `connect` → `websocket` endpoint, sends `websocket:connected` with the NCCO headers, then one binary L16
 * frame per 20 ms. What the node sends plays one 20 ms frame per 20 ms; `{"action":"notify"}` is echoed as
 * `websocket:notify` when playback reaches it; `{"action":"clear"}` drops the queue (and the notifies in it)
 * and is acknowledged with `websocket:cleared`. The caller hanging up closes the socket (Vonage sends no stop).
 */
export interface VonageDialOptions {
  readonly url: string;
  readonly assistant: string;
  /** The signature secret of the project's vonage credential. */
  readonly signatureSecret: string;
  /** The token's `api_key` and `application_id` claims (checked when the credential has them). */
  readonly vonageApiKey?: string;
  readonly applicationId?: string;
  /** Narrowband: the answer URL's `rate=8000`. */
  readonly sampleRateHz?: 8000 | 16000;
}

const Ncco = z
  .array(z.object({ action: z.string() }).loose())
  .min(1, 'an NCCO is a non-empty array of actions');
const ConnectWebSocket = z.object({
  action: z.literal('connect'),
  endpoint: z.array(z.object({ type: z.literal('websocket'), uri: z.string().regex(/^wss?:\/\//, 'a ws:// or wss:// URI'), 'content-type': z.string(), headers: z.record(z.string(), z.unknown()).optional() })).length(1),
});
const Control = z.union([z.object({ action: z.literal('clear') }), z.object({ action: z.literal('notify'), payload: z.unknown() })]);

export async function dialVonage(options: VonageDialOptions): Promise<SimulatedCall> {
  const base = options.url.replace(/\/+$/, '');
  const uuid = crypto.randomUUID();
  const params = { from: '447700900001', to: '447700900000', uuid, conversation_uuid: `CON-${crypto.randomUUID()}`, ...(options.sampleRateHz === 8000 ? { rate: '8000' } : {}) };
  const token = await signVonageWebhook({
    signatureSecret: options.signatureSecret,
    claims: {
      iat: Math.floor(Date.now() / 1000),
      jti: crypto.randomUUID(),
      iss: 'Vonage',
      ...(options.vonageApiKey ? { api_key: options.vonageApiKey } : {}),
      ...(options.applicationId ? { application_id: options.applicationId } : {}),
    },
  });
  const response = await fetch(`${base}/v1/talk/vonage/call/${encodeURIComponent(options.assistant)}?${new URLSearchParams(params)}`, { headers: { authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw await dialFailure('the Vonage answer URL', response);
  const ncco = Ncco.safeParse(await response.json().catch(() => undefined));
  if (!ncco.success) throw new DialError(`the answer URL did not answer an NCCO: ${z.prettifyError(ncco.error)}`);
  const connect = ConnectWebSocket.safeParse(ncco.data[0]);
  if (!connect.success) throw new DialError(`the NCCO does not connect a websocket (it says ${JSON.stringify(ncco.data).slice(0, 300)}): ${z.prettifyError(connect.error)}`);
  const endpoint = connect.data.endpoint[0]!;
  const rate = parseVonageContentType(endpoint['content-type']);
  if (rate !== 8000 && rate !== 16000) throw new DialError(`Vonage streams L16 at 8000 or 16000 Hz; the NCCO asks for ${endpoint['content-type']}`);
  const frameSamples = rate / 50;

  const ws = await openCarrierSocket(endpoint.uri);
  const counters = { notifiesEchoed: 0, badFrames: 0 };
  let closed = false;
  let callerHungUp = false;
  const sendText = (message: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const playback = createPlayback<unknown>({
    onMarkReached: (payload) => {
      counters.notifiesEchoed++;
      sendText({ event: 'websocket:notify', payload });
    },
  });
  const closedPromise = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('close', () => (closed = true));
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      // Vonage takes exactly one 20 ms frame per message.
      if (data.byteLength !== frameSamples * 2) counters.badFrames++;
      const pcm = new Int16Array(data.byteLength >> 1);
      for (let i = 0; i < pcm.length; i++) pcm[i] = data.readInt16LE(i * 2);
      playback.queueAudio(pcm, frameSamples);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    const control = Control.safeParse(parsed);
    if (!control.success) return;
    if (control.data.action === 'notify') playback.queueMark(control.data.payload);
    else {
      playback.clear();
      sendText({ event: 'websocket:cleared' });
    }
  });
  ws.send(JSON.stringify({ event: 'websocket:connected', 'content-type': endpoint['content-type'], ...endpoint.headers }));

  const caller = createCallerQueue(frameSamples);
  const stopClock = startFrameClock(() => {
    if (closed) return;
    playback.tick();
    const pcm = caller.next();
    const frame = Buffer.alloc(pcm.length * 2);
    for (let i = 0; i < pcm.length; i++) frame.writeInt16LE(pcm[i]!, i * 2);
    if (ws.readyState === ws.OPEN) ws.send(frame, { binary: true });
  });
  void closedPromise.then(stopClock);
  const conversationId = typeof endpoint.headers?.conversationId === 'string' ? endpoint.headers.conversationId : undefined;

  return {
    carrier: 'vonage',
    sampleRateHz: rate,
    ...(conversationId ? { conversationId } : {}),
    say: (pcm) => void caller.say(pcm),
    heardPcm: () => playback.heardPcm(),
    counters: () => ({ framesPlayed: playback.stats.framesPlayed, clears: playback.stats.clears, notifiesEchoed: counters.notifiesEchoed, badFrames: counters.badFrames }),
    async hangUp() {
      callerHungUp = true;
      stopClock();
      ws.close(1000);
      await closedPromise;
    },
    closed: closedPromise,
    endedByNode: () => closed && !callerHungUp,
  };
}
