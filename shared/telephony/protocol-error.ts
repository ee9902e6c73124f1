import type { z } from 'zod';

/**
 * Bad input from a carrier, returned (never thrown) by the pure telephony codecs and webhook parsers, so a
 * malformed frame costs one counter increment and a log line, not a stack trace or a dropped call.
 * Structurally a `CarrierProtocolError` (`type: 'protocolError'`), so it flows through `CarrierCodec.decode`.
 */
export type ProtocolErrorCode =
  /** The frame is not JSON (or not a JSON object). */
  | 'bad-json'
  /** Well-formed, but an event this protocol does not define. */
  | 'unknown-event'
  /** A known event with missing or wrongly typed fields. */
  | 'invalid-message'
  /** An audio payload that is not valid base64. */
  | 'bad-base64'
  /** An HTTP webhook / callback form that lacks required parameters or has invalid ones. */
  | 'invalid-webhook';

export class ProtocolError {
  readonly type = 'protocolError' as const;
  constructor(
    /** Which wire protocol, e.g. `twilio-media-streams`, `twilio-webhook`. */
    readonly protocol: string,
    readonly code: ProtocolErrorCode,
    readonly message: string,
    /** The event name when the frame had one. */
    readonly event?: string,
    /** One line per problem, `path: what is wrong`. */
    readonly issues: readonly string[] = [],
  ) {}

  toString(): string {
    return `${this.protocol} ${this.code}: ${this.message}`;
  }
}

export function isProtocolError(value: unknown): value is ProtocolError {
  return value instanceof ProtocolError;
}

/** Zod issues as `path: message` lines (`(root)` for the top level; an absent required field says `missing`). */
export function describeZodIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const message = /^Invalid input: expected \w+, received undefined$/.test(issue.message) ? 'missing' : issue.message;
    return `${issue.path.length ? issue.path.join('.') : '(root)'}: ${message}`;
  });
}

/**
 * The error constructors of one carrier codec: `error` for a code and message, `invalid` for a message that
 * failed its schema (`noun`: how the protocol calls one message, e.g. "frame").
 */
export function protocolErrorsFor(protocol: string, noun = 'frame') {
  const error = (code: ProtocolErrorCode, message: string, event?: string, issues?: readonly string[]): ProtocolError =>
    new ProtocolError(protocol, code, message, event, issues);
  const invalid = (event: string, zodError: z.ZodError): ProtocolError => {
    const issues = describeZodIssues(zodError);
    return error('invalid-message', `malformed "${event}" ${noun}: ${issues.join('; ')}`, event, issues);
  };
  return { error, invalid };
}

/** Names and values from the wire go into log lines: an attacker-sized one is cut short. */
export function clipForLog(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
