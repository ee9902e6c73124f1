import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKCHANNELS, parseAssistantConfig } from '../../shared/config/assistant';
import { fillTemplate } from '../../shared/config/template';
import { ConfigError } from '../../shared/contracts/errors';

const MINIMAL = {
  prompt: 'You are a helpful receptionist for {{company}}.',
  stt: { provider: 'deepgram' },
  llm: { provider: 'openai' },
  tts: { provider: 'cartesia' },
};

/** The ConfigError a bad configuration throws (fails the test if none is thrown). */
function configError(input: unknown): ConfigError {
  try {
    parseAssistantConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('assistant config: defaults', () => {
  it('fills every default from a minimal configuration', () => {
    const config = parseAssistantConfig(MINIMAL);
    expect(config.turn.silenceMs).toBe(500);
    expect(config.turn.finalWaitMs).toBe(800);
    expect(config.interruption.minSpeechMs).toBe(200);
    expect(config.interruption.falseInterruptionMs).toBe(1500);
    expect(config.interruption.minWords).toBe(1);
    expect(config.interruption.mode).toBe('words');
    expect(config.interruption.backchannels).toEqual(DEFAULT_BACKCHANNELS);
    expect(config.output.leadMs).toBe(200);
    expect(config.vad.provider).toBe('silero');
    expect(config.idle.maxReprompts).toBe(2);
    expect(config.dtmf.terminator).toBe('#');
    expect(config.maxDurationMs).toBe(3_600_000);
    expect(config.stt.language).toBe('en-US');
    expect(config.stt.options).toEqual({});
    expect(config.stt.fallbacks).toEqual([]);
    expect(config.greeting).toBe('');
  });

  it('an empty section gets the same defaults as an omitted one', () => {
    const omitted = parseAssistantConfig(MINIMAL);
    const empty = parseAssistantConfig({ ...MINIMAL, vad: {}, turn: {}, interruption: {}, idle: {}, dtmf: {}, output: {} });
    expect(empty).toEqual(omitted);
  });

  it('a partly given section keeps the other defaults', () => {
    const config = parseAssistantConfig({ ...MINIMAL, turn: { silenceMs: 700 }, interruption: { minWords: 2 } });
    expect(config.turn).toMatchObject({ silenceMs: 700, minSpeechMs: 60, finalWaitMs: 800, sttEndOfTurn: true });
    expect(config.interruption).toMatchObject({ minWords: 2, minSpeechMs: 200, falseInterruptionMs: 1500, echoGuard: true });
  });
});

describe('assistant config: errors', () => {
  it('a ConfigError lists every problem by its path', () => {
    const error = configError({
      stt: { provider: 'deepgram' },
      tts: { provider: '' },
      turn: { silenceMs: 50 },
      output: { leadMs: 'fast' },
    });
    expect(error.code).toBe('ASSISTANT_CONFIG_INVALID');
    const paths = error.issues.map((i) => i.split(':')[0]);
    expect(paths).toEqual(expect.arrayContaining(['prompt', 'llm', 'tts.provider', 'turn.silenceMs', 'output.leadMs']));
    expect(paths).toHaveLength(5);
    for (const issue of error.issues) expect(error.message).toContain(issue);
  });

  it('a non-object input is reported at the root', () => {
    expect(configError(null).issues[0]).toMatch(/^\(root\): /);
  });

  it("rejects a secret-looking key in a provider's options and says to use a credential", () => {
    const error = configError({ ...MINIMAL, stt: { provider: 'deepgram', options: { apiKey: 'dg_123', smartFormat: true } } });
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatch(/^stt\.options\.apiKey: /);
    expect(error.issues[0]).toMatch(/credential/);
    expect(error.message).not.toContain('dg_123');
  });

  it.each(['api_key', 'API-KEY', 'secret', 'clientSecret', 'accessToken', 'password', 'Authorization', 'bearer'])(
    'the key %j counts as a secret',
    (key) => {
      const error = configError({ ...MINIMAL, tts: { provider: 'cartesia', options: { [key]: 'x' } } });
      expect(error.issues).toEqual([expect.stringMatching(new RegExp(`^tts\\.options\\.${key}: .*credential`))]);
    },
  );

  it.each(['max_tokens', 'maxOutputTokens', 'keywords', 'keyterm', 'tokenizer'])('the ordinary option %j is not mistaken for a secret', (key) => {
    expect(() => parseAssistantConfig({ ...MINIMAL, llm: { provider: 'openai', options: { [key]: 5 } } })).not.toThrow();
  });

  it.each(['token', 'key', 'access_token', 'private_key', 'credentials'])('the key %j counts as a secret', (key) => {
    expect(configError({ ...MINIMAL, llm: { provider: 'openai', options: { [key]: 'x' } } }).issues).toHaveLength(1);
  });

  it('checks fallbacks and telephony options for secrets too', () => {
    const error = configError({
      ...MINIMAL,
      llm: { provider: 'openai', fallbacks: [{ provider: 'anthropic', options: { apiKey: 'x' } }] },
      telephony: { provider: 'twilio', options: { authToken: 'x' } },
    });
    expect(error.issues.map((i) => i.split(':')[0]).sort()).toEqual(['llm.fallbacks.0.options.apiKey', 'telephony.options.authToken']);
  });

  it('ordinary provider options pass', () => {
    const config = parseAssistantConfig({ ...MINIMAL, stt: { provider: 'deepgram', options: { smartFormat: true, endpointing: 300 } } });
    expect(config.stt.options).toEqual({ smartFormat: true, endpointing: 300 });
  });
});

describe('assistant config: tools', () => {
  it('refuses two tools with the same name (the model calls tools by name)', () => {
    const tool = { name: 'hang_up', action: { type: 'end_call' } };
    const error = configError({ ...MINIMAL, tools: [tool, { ...tool }] });
    expect(error.issues.join('\n')).toContain('tool names must be unique');
    expect(parseAssistantConfig({ ...MINIMAL, tools: [tool, { ...tool, name: 'bye' }] }).tools).toHaveLength(2);
  });
});

describe('assistant config: providers', () => {
  it('parses fallbacks in order, each with its own defaults', () => {
    const config = parseAssistantConfig({
      ...MINIMAL,
      stt: { provider: 'deepgram', credential: 'dg-main', fallbacks: [{ provider: 'assemblyai' }, { provider: 'google', language: 'de-DE' }] },
    });
    expect(config.stt.fallbacks.map((f) => [f.provider, f.language, f.options])).toEqual([
      ['assemblyai', 'en-US', {}],
      ['google', 'de-DE', {}],
    ]);
    expect(config.stt.credential).toBe('dg-main');
  });

  it('at most five fallbacks', () => {
    const fallbacks = Array.from({ length: 6 }, () => ({ provider: 'openai' }));
    expect(configError({ ...MINIMAL, llm: { provider: 'openai', fallbacks } }).issues[0]).toMatch(/^llm\.fallbacks: /);
  });

  it('an endpoint must be a URL', () => {
    expect(configError({ ...MINIMAL, tts: { provider: 'cartesia', endpoint: 'not a url' } }).issues[0]).toMatch(/^tts\.endpoint: /);
    expect(parseAssistantConfig({ ...MINIMAL, tts: { provider: 'cartesia', endpoint: 'http://127.0.0.1:9000/tts' } }).tts.endpoint).toBe(
      'http://127.0.0.1:9000/tts',
    );
  });
});

describe('fillTemplate', () => {
  it('fills placeholders, with or without inner spaces', () => {
    expect(fillTemplate('Hi {{name}}, welcome to {{ company }}.', { name: 'Ana', company: 'Acme' })).toBe('Hi Ana, welcome to Acme.');
  });

  it('leaves unknown placeholders as written', () => {
    expect(fillTemplate('Order {{order.id}} for {{name}}', { name: 'Ana' })).toBe('Order {{order.id}} for Ana');
  });

  it('fills every occurrence, and an empty value is a value', () => {
    expect(fillTemplate('{{x}}-{{x}}-{{y}}', { x: 'a', y: '' })).toBe('a-a-');
  });

  it('does not take inherited object properties for variables', () => {
    expect(fillTemplate('{{constructor}} {{toString}}', {})).toBe('{{constructor}} {{toString}}');
  });
});
