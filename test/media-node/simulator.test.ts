import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNodeEnv } from '../../media-node/config/env';
import { startNode, type NodeRuntime } from '../../media-node/node';
import { startMediaServer, type MediaServer } from '../../media-node/server';
import { writeHeardWav } from '../../media-node/simulator/caller';
import { formatSummary, simulateCall, type DialOptions, type CarrierName } from '../../media-node/simulator/simulate';
import { pcm16Bytes, pcm16View } from '../../shared/audio/format';
import { decodeWav, encodeWav } from '../../shared/audio/wav';
import { createProviderRegistry } from '../../shared/providers/registry';
import { audioRuntime } from '../fakes/call';
import { lastUserText } from '../fakes/llm';
import { phoneAssistant, registerPhoneFakes } from '../fakes/phone';
import { decodeWords, splitWords, synthesizeWords } from '../fakes/tones';

// `npm run simulate` for every carrier, run as a function against a real node with the fake providers: the
// caller WAV (silence, then a tone-coded question) goes in, the carrier dials its own way, and what the
// caller heard (greeting, then the answer) comes back out as a WAV, with a summary of the carrier's counters.

const TWILIO = { accountSid: `AC${'b'.repeat(32)}`, authToken: 'simulator-twilio-token' };
const VONAGE = { signatureSecret: 'simulator-vonage-signature-secret', apiKey: 'abcd1234', applicationId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee' };
const EXOTEL = { accountSid: 'acme1', apiKey: 'exo-key', apiToken: 'exo-token-secret', callerId: '+918047491899' };
const SECONDS = 6;

describe('the call simulator plays every carrier', () => {
  let dir: string;
  let node: NodeRuntime;
  let server: MediaServer;
  let apiKey: string;
  let assistantId: string;
  let callerWav: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'simulator-'));
    node = await startNode(parseNodeEnv({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: '' }));
    const { resamplers, webrtc } = await audioRuntime();
    const registry = createProviderRegistry();
    registerPhoneFakes(registry, (m) => (lastUserText(m).includes('weather') ? 'it is sunny' : 'okay sure'));
    server = await startMediaServer({ node, registry, vads: { webrtc }, resamplers });

    const api = async (path: string, body: unknown, init: { method?: string; key?: string } = {}) => {
      const response = await fetch(`${server.url}${path}`, {
        method: init.method ?? 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${init.key ?? apiKey}` },
        body: JSON.stringify(body),
      });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBeLessThan(300);
      return response.json();
    };
    apiKey = (await api('/v1/projects', { name: 'Simulator' }, { key: node.generatedAdminKey! })).apiKey.key;
    await api('/v1/credentials/twilio-main', { provider: 'twilio', ...TWILIO }, { method: 'PUT' });
    await api('/v1/credentials/vonage-main', { provider: 'vonage', ...VONAGE }, { method: 'PUT' });
    await api('/v1/credentials/exotel-main', { provider: 'exotel', ...EXOTEL }, { method: 'PUT' });
    assistantId = (await api('/v1/assistants', phoneAssistant({ name: 'Simulated', prompt: 'You answer the phone.', greeting: 'hello welcome' }))).id;

    // The caller: 2.5 s of silence (the greeting plays), then a question; a 16 kHz WAV, resampled per carrier.
    const question = synthesizeWords(splitWords('what is the weather today'), 16000).pcm;
    const pcm = new Int16Array(40000 + question.length);
    pcm.set(question, 40000);
    callerWav = join(dir, 'caller.wav');
    await writeFile(callerWav, encodeWav({ encoding: 'pcm16', sampleRateHz: 16000 }, pcm16Bytes(pcm)));
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await node?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const dialOptions = (carrier: CarrierName): DialOptions => {
    const common = { url: server.url, assistant: assistantId };
    switch (carrier) {
      case 'twilio':
        return { carrier, ...common, ...TWILIO, publicUrl: server.publicBaseUrl() };
      case 'vonage':
        return { carrier, ...common, signatureSecret: VONAGE.signatureSecret, vonageApiKey: VONAGE.apiKey, applicationId: VONAGE.applicationId };
      case 'exotel':
        return { carrier, ...common, username: EXOTEL.apiKey, password: EXOTEL.apiToken };
      case 'asterisk':
        return { carrier, ...common, apiKey };
      case 'audiosocket':
        return { carrier, ...common, apiKey, audioSocketPort: server.audioSocketPort! };
    }
  };

  /** Per carrier: its wire rate, and the counter that proves its playout tracking (marks) came back. */
  const expected: Record<CarrierName, { rate: number; marks?: string; mustBeZero: string[] }> = {
    twilio: { rate: 8000, marks: 'marksEchoed', mustBeZero: [] },
    vonage: { rate: 16000, marks: 'notifiesEchoed', mustBeZero: ['badFrames'] },
    exotel: { rate: 8000, marks: 'marksEchoed', mustBeZero: ['chunkViolations'] },
    asterisk: { rate: 16000, marks: 'marksProcessed', mustBeZero: ['droppedRemainderBytes'] },
    audiosocket: { rate: 8000, mustBeZero: ['violations'] },
  };

  it.each(Object.keys(expected) as CarrierName[])('%s: dials, greets, answers the WAV caller, writes what was heard, sums up', async (carrier) => {
    const { summary, heard } = await simulateCall({ ...dialOptions(carrier), seconds: SECONDS, wav: callerWav });
    const want = expected[carrier];
    const words = decodeWords(heard, summary.sampleRateHz).join(' ');
    expect(words, formatSummary(summary)).toBe('hello welcome it is sunny');

    expect(summary).toMatchObject({ carrier, sampleRateHz: want.rate, endedBy: 'caller' });
    expect(summary.callMs).toBeGreaterThanOrEqual(SECONDS * 1000);
    expect(summary.callMs).toBeLessThan(SECONDS * 1000 + 5000);
    // Both replies are a few hundred ms of tones each; everything heard was played in 20 ms frames.
    expect(summary.audibleMs).toBeGreaterThan(500);
    expect(summary.audibleMs).toBeLessThanOrEqual(summary.heardMs);
    expect(summary.heardMs).toBeLessThan(SECONDS * 1000);
    expect(summary.counters.framesPlayed! * 20).toBeGreaterThanOrEqual(summary.heardMs - 20);
    if (want.marks) expect(summary.counters[want.marks], formatSummary(summary)).toBeGreaterThan(0);
    for (const name of want.mustBeZero) expect(summary.counters[name], `${name}: ${formatSummary(summary)}`).toBe(0);
    expect(formatSummary(summary)).toMatch(new RegExp(`^${carrier}: heard \\d+\\.\\d s .* ended by the caller; framesPlayed \\d+`));

    // The node's record of the same call, when the carrier learnt its conversation id while dialling.
    if (carrier !== 'exotel') {
      expect(summary.conversationId).toBeDefined();
      const conversation = await (await fetch(`${server.url}/v1/conversations/${summary.conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
      expect(conversation.conversation.channel).toBe(carrier === 'audiosocket' ? 'asterisk' : carrier);
    }

    // --out: the WAV holds exactly what was heard, at the call's rate.
    const out = join(dir, `${carrier}-heard.wav`);
    await writeHeardWav(out, heard, summary.sampleRateHz);
    const wav = decodeWav(new Uint8Array(await readFile(out)));
    if ('code' in wav) throw wav;
    expect(wav.format).toEqual({ encoding: 'pcm16', sampleRateHz: want.rate });
    expect(decodeWords(pcm16View(wav.data), want.rate).join(' ')).toBe(words);
  }, 20_000);

  it('vonage --rate 8000: the answer URL asks for narrowband and the call runs at 8 kHz', async () => {
    const { summary, heard } = await simulateCall({ ...dialOptions('vonage'), sampleRateHz: 8000, seconds: SECONDS, wav: callerWav } as DialOptions & { seconds: number; wav: string });
    expect(summary).toMatchObject({ carrier: 'vonage', sampleRateHz: 8000, endedBy: 'caller', counters: { badFrames: 0 } });
    expect(decodeWords(heard, 8000).join(' '), formatSummary(summary)).toBe('hello welcome it is sunny');
  }, 20_000);

  it('a carrier whose credentials the node refuses fails to dial, saying what answered', async () => {
    await expect(simulateCall({ ...dialOptions('vonage'), signatureSecret: 'wrong-secret', seconds: 1 } as DialOptions & { seconds: number })).rejects.toThrow(/Vonage answer URL answered HTTP 403/);
    await expect(simulateCall({ ...dialOptions('exotel'), password: 'wrong', seconds: 1 } as DialOptions & { seconds: number })).rejects.toThrow(/Exotel dynamic URL answered HTTP 401/);
    await expect(simulateCall({ ...dialOptions('asterisk'), apiKey: 'vr_sk_unknown', seconds: 1 } as DialOptions & { seconds: number })).rejects.toThrow(/asterisk\/call answered HTTP 401/);
  }, 20_000);
});
