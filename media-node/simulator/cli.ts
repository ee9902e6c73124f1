/**
 * `npm run simulate -- --assistant <id> --account-sid AC… --auth-token … [--url http://127.0.0.1:9007]
 *   [--wav caller.wav] [--out heard.wav] [--seconds 20] [--api-key vr_sk_…]`
 *
 * Plays Twilio against a running node: signs and posts the Voice webhook, follows the TwiML to the media
 * stream, streams the caller (a WAV file, or speech-like bursts) in real time, plays back like Twilio,
 * writes what the caller heard to a WAV, and with an API key prints the transcript and per-turn timings.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createAudioConverter } from '../../shared/audio/convert';
import { pcm16Bytes, pcm16View } from '../../shared/audio/format';
import { createSpeexResamplerFactory } from '../../shared/audio/resampler';
import { decodeWav, encodeWav } from '../../shared/audio/wav';
import { signTwilioRequest } from '../../shared/telephony/twilio-signature';
import { loadWasmModulesNode } from '../audio/wasm-node';
import { connectTwilioCarrier } from './twilio-carrier';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:9007' },
    'public-url': { type: 'string' },
    assistant: { type: 'string' },
    'account-sid': { type: 'string' },
    'auth-token': { type: 'string' },
    wav: { type: 'string' },
    out: { type: 'string', default: 'heard.wav' },
    seconds: { type: 'string', default: '20' },
    'api-key': { type: 'string' },
  },
});

function fail(message: string): never {
  console.error(`simulate: ${message}`);
  process.exit(2);
}

/** Speech-like caller audio: voiced bursts (a 120 Hz buzz with harmonics) of 0.4–1.2 s between pauses. */
function speechLike(seconds: number): Int16Array {
  const pcm = new Int16Array(seconds * 8000);
  let t = 8000; // one second of silence first
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  while (t < pcm.length) {
    const burst = Math.floor((0.4 + random() * 0.8) * 8000);
    for (let i = 0; i < burst && t + i < pcm.length; i++) {
      let v = 0;
      for (let h = 1; h <= 8; h++) v += Math.sin((2 * Math.PI * 120 * h * i) / 8000) / h;
      pcm[t + i] = Math.round(4000 * v * Math.min(1, i / 400, (burst - i) / 400));
    }
    t += burst + Math.floor((1.5 + random() * 2.5) * 8000);
  }
  return pcm;
}

async function callerAudio(path: string | undefined, seconds: number): Promise<Int16Array> {
  if (!path) return speechLike(seconds);
  const wav = decodeWav(new Uint8Array(await readFile(path)));
  if ('code' in wav) fail(`${path}: ${wav.message}`);
  const wasm = await loadWasmModulesNode();
  const convert = createAudioConverter(wav.format, { encoding: 'pcm16', sampleRateHz: 8000 }, await createSpeexResamplerFactory(wasm.speexResampler));
  return pcm16View(convert.convert(wav.data)).slice();
}

async function main(): Promise<void> {
  const assistant = values.assistant ?? fail('--assistant <id> is required');
  const accountSid = values['account-sid'] ?? fail('--account-sid is required (the project\'s twilio credential)');
  const authToken = values['auth-token'] ?? fail('--auth-token is required (the project\'s twilio credential)');
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0) fail('--seconds must be a positive number');
  const base = values.url!.replace(/\/+$/, '');
  const signedBase = (values['public-url'] ?? base).replace(/\/+$/, '');
  const path = `/v1/talk/twilio/call/${assistant}`;
  const callSid = `CA${crypto.randomUUID().replace(/-/g, '')}`;
  const params = { AccountSid: accountSid, CallSid: callSid, From: '+15550100', To: '+15550199', CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01' };
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': await signTwilioRequest({ authToken, url: `${signedBase}${path}`, params }) },
    body: new URLSearchParams(params).toString(),
  });
  const twiml = await response.text();
  if (response.status !== 200) fail(`the webhook answered ${response.status}: ${twiml}`);
  const streamUrl = /<Stream url="([^"]+)"/.exec(twiml)?.[1];
  if (!streamUrl) fail(`the webhook did not open a stream:\n${twiml}`);
  console.log(`webhook → ${streamUrl}`);

  const carrier = await connectTwilioCarrier({ mediaUrl: streamUrl, callSid, accountSid });
  carrier.say(await callerAudio(values.wav, Math.min(seconds, 60)));
  await Promise.race([carrier.closed, new Promise((r) => setTimeout(r, seconds * 1000))]);
  if (carrier.stats.closeCode === 0) await carrier.hangUp();
  const heard = carrier.heardPcm();
  await writeFile(values.out!, encodeWav({ encoding: 'pcm16', sampleRateHz: 8000 }, pcm16Bytes(heard)));
  console.log(`heard ${(heard.length / 8000).toFixed(1)} s of audio → ${values.out} (clears: ${carrier.stats.clears}, marks echoed: ${carrier.stats.marksEchoed})`);

  if (values['api-key']) {
    const contextId = new URL(streamUrl).pathname.split('/').at(-1)!;
    // The conversation id travels as a stream parameter in the TwiML.
    const conversationId = /name="conversationId" value="([^"]+)"/.exec(twiml)?.[1];
    if (!conversationId) fail(`no conversation id in the TwiML for context ${contextId}`);
    await new Promise((r) => setTimeout(r, 1000)); // let the node flush the call's records
    const body = (await (await fetch(`${base}/v1/conversations/${conversationId}`, { headers: { authorization: `Bearer ${values['api-key']}` } })).json()) as {
      messages: { role: string; text: string; heardText?: string; interrupted: boolean }[];
      turnMetrics: { turnId: number; kind: string; voiceToVoiceMs?: number; interrupted: boolean }[];
    };
    for (const m of body.messages) console.log(`${m.role.padEnd(9)} ${m.heardText ?? m.text}${m.interrupted ? '  (interrupted)' : ''}`);
    for (const t of body.turnMetrics) console.log(`turn ${t.turnId} ${t.kind}: voice-to-voice ${t.voiceToVoiceMs?.toFixed(0) ?? '-'} ms${t.interrupted ? ', interrupted' : ''}`);
  }
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
