import { z } from 'zod';
import { ConfigError } from '../contracts/errors';

/**
 * The assistant configuration: the one place where every default is written down.
 * Secrets never live here: a provider block names a stored credential (`credential`) or falls back to the
 * project's default credential for that provider, then the environment, then `local`.
 */

/** Option names that hold secrets ("maxTokens" is fine; "apiKey", "access_token", "token" are not). */
function looksLikeSecret(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_ ]/g, '');
  return k === 'key' || k === 'token' || /(apikey|secret|password|passwd|authorization|bearer|accesstoken|authtoken|privatekey|credentials?$)/.test(k);
}

const providerOptions = z
  .record(z.string(), z.unknown())
  .default({})
  .superRefine((options, ctx) => {
    for (const key of Object.keys(options)) {
      if (looksLikeSecret(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `"${key}" looks like a secret; store it as a project credential and reference it with "credential"`,
        });
      }
    }
  });

const providerBase = {
  /** Registry id, e.g. "deepgram"; resolved at call time. */
  provider: z.string().min(1),
  /** Base URL override (self-hosted or regional endpoints, local fakes in tests). */
  endpoint: z.url().optional(),
  /** Name of a stored project credential; omitted = the project's default credential for this provider. */
  credential: z.string().min(1).optional(),
  options: providerOptions,
};

const sttBlock = z.object({
  ...providerBase,
  model: z.string().optional(),
  /** BCP-47 language tag. */
  language: z.string().default('en-US'),
});

const llmBlock = z.object({
  ...providerBase,
  model: z.string().optional(),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.number().int().positive().optional(),
});

const ttsBlock = z.object({
  ...providerBase,
  model: z.string().optional(),
  voice: z.string().optional(),
  language: z.string().default('en-US'),
});

/** `fallbacks` are tried in order when the provider fails with a non-retryable error. */
const fallbacks = <T extends z.ZodType>(block: T) => z.array(block).max(5).default([]);

export const SttConfig = sttBlock.extend({ fallbacks: fallbacks(sttBlock) });
export const LlmConfig = llmBlock.extend({ fallbacks: fallbacks(llmBlock) });
export const TtsConfig = ttsBlock.extend({ fallbacks: fallbacks(ttsBlock) });

export const VadConfig = z
  .object({
    /** `silero` (default on media nodes) or `webrtc` (lighter; the only one on the edge). */
    provider: z.enum(['silero', 'webrtc']).default('silero'),
    /** Speech probability threshold. */
    threshold: z.number().min(0.05).max(0.95).default(0.5),
    /** WebRTC VAD aggressiveness, 0 (least) .. 3 (most). */
    webrtcMode: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]).default(2),
  })
  .default({ provider: 'silero', threshold: 0.5, webrtcMode: 2 });

export const TurnConfig = z
  .object({
    /** VAD silence that ends the caller's turn. */
    silenceMs: z.number().int().min(100).max(5000).default(500),
    /** Voiced audio needed before the caller counts as speaking (filters clicks). */
    minSpeechMs: z.number().int().min(20).max(1000).default(60),
    /** After the VAD silence, how long to wait for the STT's final before using the interim text. */
    finalWaitMs: z.number().int().min(0).max(5000).default(800),
    /** Honour the STT's own end-of-turn events (Deepgram Flux, AssemblyAI, ...). */
    sttEndOfTurn: z.boolean().default(true),
    /** Start the LLM on a stable transcript as soon as the caller pauses; discarded if they go on. */
    preemptiveGeneration: z.boolean().default(false),
    /** Pause that triggers preemptive generation. */
    preemptiveSilenceMs: z.number().int().min(20).max(2000).default(200),
  })
  .default({ silenceMs: 500, minSpeechMs: 60, finalWaitMs: 800, sttEndOfTurn: true, preemptiveGeneration: false, preemptiveSilenceMs: 200 });

export const DEFAULT_BACKCHANNELS = ['yeah', 'yes', 'yep', 'uh-huh', 'uh huh', 'okay', 'ok', 'mm-hmm', 'mhm', 'hmm', 'right', 'sure', 'i see'];

export const InterruptionConfig = z
  .object({
    enabled: z.boolean().default(true),
    /** `words`: pause on speech, confirm on words; `vad-only`: confirm on speech duration (STTs without interim results). */
    mode: z.enum(['words', 'vad-only']).default('words'),
    /** Caller speech over the assistant that pauses its output. */
    minSpeechMs: z.number().int().min(20).max(3000).default(200),
    /** Words (that are not backchannels) that confirm the interruption. */
    minWords: z.number().int().min(1).max(20).default(1),
    /** Continuous speech that confirms an interruption in `vad-only` mode. */
    vadOnlyConfirmMs: z.number().int().min(100).max(5000).default(600),
    /** No confirming words within this time after the pause: resume from where playout stopped. */
    falseInterruptionMs: z.number().int().min(200).max(10_000).default(1500),
    backchannels: z.array(z.string().min(1)).default(DEFAULT_BACKCHANNELS),
    /** A transcript matching the assistant's own recent words (echo) never interrupts. */
    echoGuard: z.boolean().default(true),
  })
  .default({
    enabled: true,
    mode: 'words',
    minSpeechMs: 200,
    minWords: 1,
    vadOnlyConfirmMs: 600,
    falseInterruptionMs: 1500,
    backchannels: DEFAULT_BACKCHANNELS,
    echoGuard: true,
  });

export const IdleConfig = z
  .object({
    /** Silence from the caller after the assistant finished speaking that triggers a reprompt. 0 disables. */
    timeoutMs: z.number().int().min(0).max(600_000).default(10_000),
    /** Spoken in turn; the last one repeats. */
    reprompts: z.array(z.string().min(1)).min(1).default(['Are you still there?']),
    maxReprompts: z.number().int().min(0).max(10).default(2),
    /** Said before hanging up after the last reprompt went unanswered. */
    hangupMessage: z.string().default('It seems you have stepped away. Goodbye.'),
  })
  .default({ timeoutMs: 10_000, reprompts: ['Are you still there?'], maxReprompts: 2, hangupMessage: 'It seems you have stepped away. Goodbye.' });

export const DtmfConfig = z
  .object({
    /** `llm`: digits reach the LLM as a user message; `ignore`: dropped. */
    mode: z.enum(['llm', 'ignore']).default('llm'),
    /** Key that ends a digit sequence early. */
    terminator: z.string().regex(/^[0-9*#A-D]$/).default('#'),
    interDigitTimeoutMs: z.number().int().min(200).max(30_000).default(2000),
    maxDigits: z.number().int().min(1).max(64).default(20),
    /** A key press while the assistant speaks interrupts it. */
    bargeIn: z.boolean().default(true),
    template: z.string().default('The caller pressed the keys: {{digits}}'),
  })
  .default({ mode: 'llm', terminator: '#', interDigitTimeoutMs: 2000, maxDigits: 20, bargeIn: true, template: 'The caller pressed the keys: {{digits}}' });

export const OutputConfig = z
  .object({
    /** Audio handed to the channel ahead of real time; the rest stays with the runtime (cheap pause and resume). */
    leadMs: z.number().int().min(20).max(1000).default(200),
    /** A playout mark is sent every this many ms of audio (channels that report marks). */
    markIntervalMs: z.number().int().min(20).max(2000).default(100),
    /** Most audio one turn may buffer ahead of playout (bounded memory); the LLM is throttled beyond it. */
    maxBufferedMs: z.number().int().min(5000).max(600_000).default(120_000),
  })
  .default({ leadMs: 200, markIntervalMs: 100, maxBufferedMs: 120_000 });

/** A header value read from a stored project credential (never a literal secret in the configuration). */
export const CredentialHeaderRef = z.object({
  /** Name of a stored project credential (`PUT /v1/credentials/:name`). */
  credential: z.string().min(1),
  /** Field of a JSON credential (default `apiKey`); a credential stored as plain text is used as it is. */
  field: z.string().min(1).default('apiKey'),
  /** Put before the secret, e.g. `Bearer `. */
  prefix: z.string().max(64).default(''),
});

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'not a valid HTTP header name');

const E164 = /^\+[1-9][0-9]{6,14}$/;
const SIP_URI = /^sips?:[^\s@<>"]+@[^\s<>"]+$/i;

/** How a tool runs. The model sees only the tool's name, description and parameters. */
export const ToolAction = z.discriminatedUnion('type', [
  z.object({
    /** The call ends after this reply: `goodbye` is said (not interruptible), then the line hangs up. */
    type: z.literal('end_call'),
    goodbye: z.string().max(1000).optional(),
  }),
  z.object({
    /** The caller is handed to `to` (channel capability; Twilio: the live call is redirected to `<Dial>`). */
    type: z.literal('transfer_call'),
    to: z.string().refine((to) => E164.test(to) || SIP_URI.test(to), 'must be an E.164 number (+14155550123) or a SIP URI (sip:user@host)'),
    /** Said before the transfer (not interruptible). */
    announcement: z.string().max(1000).optional(),
  }),
  z.object({
    /** Searches the assistant's knowledge bases with the model's `query`. */
    type: z.literal('knowledge_lookup'),
    /** Knowledge base ids to search; default all the assistant's. */
    knowledgeBases: z.array(z.string().min(1)).max(20).optional(),
    topK: z.number().int().min(1).max(20).default(4),
  }),
  z.object({
    type: z.literal('http'),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
    /** http(s) URL template; `{{name}}` comes from the call variables, then the call's arguments, URL-encoded. */
    url: z.string().regex(/^https?:\/\/[^\s]+$/i, 'must be an http:// or https:// URL (placeholders allowed)'),
    /** Literal values (templates allowed) or references to stored credentials. */
    headers: z.record(headerName, z.union([z.string().max(4096), CredentialHeaderRef])).default({}),
    /**
     * JSON body template: a string leaf that is exactly `{{name}}` takes the value itself (number, object...),
     * other strings are filled as text. Omitted: POST/PUT/PATCH send the call's arguments as JSON.
     */
    body: z.unknown().optional(),
    timeoutMs: z.number().int().min(100).max(30_000).default(5000),
    /** The response given back to the model is cut to this size. */
    responseMaxBytes: z.number().int().min(256).max(1_048_576).default(16_384),
  }),
]);

/** The JSON schema of a tool's arguments: an object at the top, as every LLM provider wants. */
const ToolParameters = z.looseObject({
  type: z.literal('object'),
  properties: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  required: z.array(z.string()).optional(),
});

export const ToolConfig = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    /** What the model reads to decide when to call it; the built-ins have a default. */
    description: z.string().min(1).max(2000).optional(),
    /** JSON schema of the arguments; the built-ins have a default (`knowledge_lookup`: `{ query }`). */
    parameters: ToolParameters.optional(),
    action: ToolAction,
    /** Said once when the tool has not answered after `fillerAfterMs` ("Let me check that for you."). */
    fillerPhrase: z.string().min(1).max(500).optional(),
    fillerAfterMs: z.number().int().min(0).max(30_000).default(700),
  })
  .superRefine((tool, ctx) => {
    if (tool.action.type === 'http' && !tool.description) {
      ctx.addIssue({ code: 'custom', path: ['description'], message: 'an http tool needs a description (the model reads it to decide when to call it)' });
    }
    const required = tool.parameters?.required ?? [];
    for (const name of required) {
      if (!tool.parameters?.properties || !Object.hasOwn(tool.parameters.properties, name)) {
        ctx.addIssue({ code: 'custom', path: ['parameters', 'required'], message: `"${name}" is required but not among the properties` });
      }
    }
    if (tool.action.type !== 'http') return;
    if (hasPlaceholderInOrigin(tool.action.url)) {
      ctx.addIssue({
        code: 'custom',
        path: ['action', 'url'],
        message: 'placeholders are not allowed in the scheme, host or port of the URL (only in its path, query and fragment)',
      });
    }
    for (const [name, value] of Object.entries(tool.action.headers)) {
      if (typeof value === 'string' && looksLikeSecretHeader(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['action', 'headers', name],
          message: `"${name}" carries a secret; store it as a project credential and reference it: { "credential": "<name>", "prefix": "Bearer " }`,
        });
      }
    }
    for (const name of queryNames(tool.action.url)) {
      if (looksLikeSecret(name)) {
        ctx.addIssue({ code: 'custom', path: ['action', 'url'], message: `the query parameter "${name}" looks like a secret; send it in a header from a stored credential` });
      }
    }
  });

function looksLikeSecretHeader(name: string): boolean {
  const k = name.toLowerCase().replace(/[-_ ]/g, '');
  return looksLikeSecret(name) || k === 'cookie' || k.endsWith('apikey') || k.endsWith('token') || k.endsWith('key') || k.endsWith('secret') || k.endsWith('signature');
}

/** Whether a URL template has `{{` before its path: in the scheme, user info, host or port. */
export function hasPlaceholderInOrigin(url: string): boolean {
  const scheme = url.indexOf('://');
  const head = scheme < 0 ? url : url.slice(0, scheme + 3 + url.slice(scheme + 3).search(/[/?#]|$/));
  return head.includes('{{') || head.includes('}}');
}

function queryNames(url: string): string[] {
  const query = url.split('#')[0]!.split('?')[1];
  if (!query) return [];
  return query.split('&').map((pair) => {
    try {
      return decodeURIComponent(pair.split('=')[0]!.replace(/\+/g, ' '));
    } catch {
      return pair.split('=')[0]!;
    }
  });
}

export const KnowledgeConfig = z.object({
  id: z.string().min(1),
  topK: z.number().int().min(1).max(20).default(4),
});

export const TelephonyConfig = z.object({
  provider: z.enum(['twilio', 'vonage', 'exotel', 'asterisk', 'audiosocket', 'sip']),
  credential: z.string().min(1).optional(),
  options: providerOptions,
});

export const AssistantConfig = z.object({
  name: z.string().default('Assistant'),
  /** System prompt; `{{variable}}` placeholders are filled from call variables. */
  prompt: z.string().min(1),
  /** First words of the call; empty = wait for the caller. */
  greeting: z.string().default(''),
  /** Defaults for template variables; call variables override them. */
  variables: z.record(z.string(), z.string()).default({}),
  stt: SttConfig,
  llm: LlmConfig,
  tts: TtsConfig,
  vad: VadConfig,
  turn: TurnConfig,
  interruption: InterruptionConfig,
  idle: IdleConfig,
  dtmf: DtmfConfig,
  output: OutputConfig,
  /** Longest a call may last; the goodbye is said, then the call ends. */
  maxDurationMs: z.number().int().min(10_000).max(4 * 3600_000).default(3600_000),
  goodbyeMessage: z.string().default('We have reached the time limit for this call. Goodbye.'),
  /** Spoken when every provider of a stage has failed; the call goes on. */
  fallbackMessage: z.string().default("Sorry, I'm having trouble right now. Could you say that again?"),
  /** Tool rounds the LLM may chain in one reply. */
  maxToolRounds: z.number().int().min(0).max(10).default(3),
  tools: z
    .array(ToolConfig)
    .default([])
    .refine((tools) => new Set(tools.map((t) => t.name)).size === tools.length, 'tool names must be unique (the model calls tools by name)'),
  knowledgeBases: z.array(KnowledgeConfig).default([]),
  telephony: TelephonyConfig.optional(),
});

export type AssistantConfig = z.output<typeof AssistantConfig>;
export type AssistantConfigInput = z.input<typeof AssistantConfig>;
export type SttConfig = z.output<typeof SttConfig>;
export type LlmConfig = z.output<typeof LlmConfig>;
export type TtsConfig = z.output<typeof TtsConfig>;
export type VadConfig = z.output<typeof VadConfig>;
export type SttBlock = z.output<typeof sttBlock>;
export type LlmBlock = z.output<typeof llmBlock>;
export type TtsBlock = z.output<typeof ttsBlock>;
export type ToolConfig = z.output<typeof ToolConfig>;
export type ToolAction = z.output<typeof ToolAction>;
export type CredentialHeaderRef = z.output<typeof CredentialHeaderRef>;
export type ProviderBlock = z.output<typeof sttBlock> | z.output<typeof llmBlock> | z.output<typeof ttsBlock>;

/** Parse and default an assistant configuration; a bad one yields a ConfigError listing every problem by path. */
export function parseAssistantConfig(input: unknown): AssistantConfig {
  const result = AssistantConfig.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new ConfigError('ASSISTANT_CONFIG_INVALID', 'the assistant configuration is invalid', issues);
}
