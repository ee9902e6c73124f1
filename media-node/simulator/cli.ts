/**
 * `npm run simulate -- --assistant <id> [--carrier twilio|vonage|exotel|asterisk|audiosocket] [carrier flags]
 *   [--url http://127.0.0.1:9007] [--wav caller.wav] [--out heard.wav] [--seconds 20] [--api-key vr_sk_…]`
 *
 * Plays a carrier against a running node (see simulate.ts): dials the way that carrier does, streams the
 * caller in real time, plays back like the carrier, writes what the caller heard to a WAV, prints a summary
 * and, with an API key, the transcript and per-turn timings. Carrier flags:
 *   twilio       --account-sid AC… --auth-token … [--public-url …]   (the project's twilio credential)
 *   vonage       --signature-secret … [--vonage-api-key …] [--application-id …] [--rate 8000|16000]
 *   exotel       --exotel-user … --exotel-password …                  (Basic credentials of the dynamic URL)
 *   asterisk     --api-key vr_sk_…                                   (the CURL() key)
 *   audiosocket  --api-key vr_sk_… [--audiosocket-port 4573]
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { writeHeardWav } from './caller';
import { CARRIERS, formatSummary, simulateCall, type SimulateOptions } from './simulate';

function fail(message: string): never {
  console.error(`simulate: ${message}`);
  process.exit(2);
}

const OPTIONS = {
  carrier: { type: 'string', default: 'twilio' },
  url: { type: 'string', default: 'http://127.0.0.1:9007' },
  'public-url': { type: 'string' },
  assistant: { type: 'string' },
  'account-sid': { type: 'string' },
  'auth-token': { type: 'string' },
  'signature-secret': { type: 'string' },
  'vonage-api-key': { type: 'string' },
  'application-id': { type: 'string' },
  rate: { type: 'string' },
  'exotel-user': { type: 'string' },
  'exotel-password': { type: 'string' },
  'audiosocket-port': { type: 'string', default: '4573' },
  wav: { type: 'string' },
  out: { type: 'string', default: 'heard.wav' },
  seconds: { type: 'string', default: '20' },
  'api-key': { type: 'string' },
} as const;

function parseFlags() {
  try {
    return parseArgs({ options: OPTIONS }).values;
  } catch (error) {
    // An unknown flag or a flag without its value: node's message names it.
    return fail((error as Error).message.split('\n')[0]!);
  }
}
const values = parseFlags();

const required = (flag: string, why: string) => z.string({ error: `--${flag} is required (${why})` }).min(1, `--${flag} must not be empty`);
const Common = {
  url: z.url({ protocol: /^https?$/, error: '--url must be an http(s) URL' }),
  assistant: required('assistant', 'the assistant to call'),
  seconds: z.coerce.number().positive('--seconds must be positive').max(600, '--seconds is at most 600'),
  wav: z.string().optional(),
};
const Flags = z.discriminatedUnion(
  'carrier',
  [
    z.object({ carrier: z.literal('twilio'), ...Common, accountSid: required('account-sid', "the project's twilio credential"), authToken: required('auth-token', "the project's twilio credential"), publicUrl: z.url().optional() }),
    z.object({
      carrier: z.literal('vonage'),
      ...Common,
      signatureSecret: required('signature-secret', "the vonage credential's signatureSecret"),
      vonageApiKey: z.string().optional(),
      applicationId: z.string().optional(),
      sampleRateHz: z.enum(['8000', '16000'], { error: '--rate must be 8000 or 16000' }).transform((r) => Number(r) as 8000 | 16000).optional(),
    }),
    z.object({ carrier: z.literal('exotel'), ...Common, username: required('exotel-user', 'Basic credentials of the dynamic URL'), password: required('exotel-password', 'Basic credentials of the dynamic URL') }),
    z.object({ carrier: z.literal('asterisk'), ...Common, apiKey: required('api-key', 'a secret project key, as CURL() sends it') }),
    z.object({
      carrier: z.literal('audiosocket'),
      ...Common,
      apiKey: required('api-key', 'a secret project key, as CURL() sends it'),
      audioSocketPort: z.coerce.number().int().min(1).max(65535, '--audiosocket-port must be a TCP port'),
    }),
  ],
  { error: `--carrier must be one of ${CARRIERS.join(', ')}` },
);

async function printTranscript(base: string, apiKey: string, conversationId: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 1000)); // let the node flush the call's records
  const response = await fetch(`${base}/v1/conversations/${conversationId}`, { headers: { authorization: `Bearer ${apiKey}` } });
  if (!response.ok) fail(`GET /v1/conversations/${conversationId} answered HTTP ${response.status}`);
  const body = (await response.json()) as {
    messages: { role: string; text: string; heardText?: string; interrupted: boolean }[];
    turnMetrics: { turnId: number; kind: string; voiceToVoiceMs?: number; interrupted: boolean }[];
  };
  for (const m of body.messages) console.log(`${m.role.padEnd(9)} ${m.heardText ?? m.text}${m.interrupted ? '  (interrupted)' : ''}`);
  for (const t of body.turnMetrics) console.log(`turn ${t.turnId} ${t.kind}: voice-to-voice ${t.voiceToVoiceMs?.toFixed(0) ?? '-'} ms${t.interrupted ? ', interrupted' : ''}`);
}

async function main(): Promise<void> {
  const flags = Flags.safeParse({
    carrier: values.carrier,
    url: values.url,
    assistant: values.assistant,
    seconds: values.seconds,
    wav: values.wav,
    accountSid: values['account-sid'],
    authToken: values['auth-token'],
    publicUrl: values['public-url'],
    signatureSecret: values['signature-secret'],
    vonageApiKey: values['vonage-api-key'],
    applicationId: values['application-id'],
    sampleRateHz: values.rate,
    username: values['exotel-user'],
    password: values['exotel-password'],
    apiKey: values['api-key'],
    audioSocketPort: values['audiosocket-port'],
  });
  if (!flags.success) fail(flags.error.issues.map((issue) => issue.message).join('; '));
  const options: SimulateOptions = flags.data;
  const { summary, heard } = await simulateCall(options);
  await writeHeardWav(values.out!, heard, summary.sampleRateHz);
  console.log(formatSummary(summary));
  console.log(`what the caller heard → ${values.out}`);
  if (values['api-key']) {
    if (!summary.conversationId) console.log(`(no transcript: ${summary.carrier} does not tell the caller side the conversation id)`);
    else await printTranscript(options.url.replace(/\/+$/, ''), values['api-key'], summary.conversationId);
  }
}

/** `fetch failed` says little: the cause (ECONNREFUSED…) says which node did not answer. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

main().catch((error: unknown) => fail(describe(error)));
