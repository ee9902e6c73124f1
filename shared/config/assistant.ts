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

export const ToolConfig = z.object({
  name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
  description: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} }),
  /** How the tool runs: filled in by the tools issue (http, end_call, transfer, knowledge). */
  action: z.record(z.string(), z.unknown()).default({}),
});

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
  tools: z.array(ToolConfig).default([]),
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
export type ProviderBlock = z.output<typeof sttBlock> | z.output<typeof llmBlock> | z.output<typeof ttsBlock>;

/** Parse and default an assistant configuration; a bad one yields a ConfigError listing every problem by path. */
export function parseAssistantConfig(input: unknown): AssistantConfig {
  const result = AssistantConfig.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new ConfigError('ASSISTANT_CONFIG_INVALID', 'the assistant configuration is invalid', issues);
}
