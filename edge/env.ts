import { z } from 'zod';
import { MIN_INTERNAL_SECRET_LENGTH } from '../shared/cluster/internal-auth';

/**
 * The Worker's environment (wrangler.toml bindings and vars, `wrangler secret put` secrets), checked with zod
 * on the first request of an isolate. Names match the media node's (media-node/config/env.ts) wherever both
 * read the same thing, so one deployment's secrets are set once under one name:
 *
 * | name                         | kind    | what                                                                 |
 * |------------------------------|---------|----------------------------------------------------------------------|
 * | HYPERDRIVE                   | binding | Hyperdrive in front of PostgreSQL (preferred), or:                   |
 * | DATABASE_URL                 | secret  | postgres:// reached over plain TCP (no Hyperdrive)                   |
 * | DATABASE_SCHEMA              | var     | optional search_path (tests; in production prefer a database of its own) |
 * | UPSTASH_REDIS_REST_URL/TOKEN | secret  | the Redis the media nodes register in, through Upstash's REST API    |
 * | SECRET_KEY                   | secret  | opens stored provider credentials (the nodes' SECRET_KEY)           |
 * | INTERNAL_SECRET              | secret  | signs the pre-warm requests to media nodes (the nodes' INTERNAL_SECRET) |
 * | PUBLIC_BASE_URL              | var     | the edge's public origin: Twilio signs webhooks against it           |
 * | PUBLIC_ASSISTANT_HOST        | var     | shorthand for PUBLIC_BASE_URL=https://<host>                         |
 * | DEFAULT_REGION               | var     | preferred media-node region when the caller's Cloudflare region has no node |
 * | LOG_LEVEL                    | var     | debug, info (default), warn, error or silent                         |
 * | TALK_SESSION                 | binding | the TalkSession Durable Object namespace (browser calls)             |
 *
 * ADMIN_API_KEY is not read here: the admin key lives hashed in the database, where a media node (or
 * `npm run db:migrate` + the first node start) put it; the edge authenticates it like any other key.
 *
 * A bad environment answers every request but liveness with 500 `WORKER_MISCONFIGURED`, naming each bad
 * variable and what is wrong with it, never its value.
 */

export interface HyperdriveBinding {
  readonly connectionString: string;
}

export interface DurableObjectStubLike {
  fetch(request: Request): Promise<Response>;
}

export interface DurableObjectNamespaceLike {
  getByName(name: string): DurableObjectStubLike;
}

export interface EdgeConfig {
  readonly database: {
    readonly connectionString: string;
    /** Which variable it came from (for messages). */
    readonly source: 'HYPERDRIVE' | 'DATABASE_URL';
    readonly schema?: string;
  };
  readonly upstash: { readonly url: string; readonly token: string };
  readonly secretKey: string;
  readonly internalSecret: string;
  /** No trailing slash. */
  readonly publicBaseUrl: string;
  readonly defaultRegion?: string;
  readonly logLevel: LogLevel;
  readonly talkSessions: DurableObjectNamespaceLike;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface EnvIssue {
  /** The variable or binding name. */
  readonly variable: string;
  readonly message: string;
}

export type EdgeConfigResult = { readonly ok: true; readonly config: EdgeConfig } | { readonly ok: false; readonly issues: readonly EnvIssue[] };

/** A string variable; `unset` says how to set it when it is missing. */
const text = (unset: string) =>
  z.string({ error: (issue) => (issue.input === undefined ? `is not set: ${unset}` : 'must be a string') }).min(1, `is empty: ${unset}`);

const urlWith = (schemes: readonly string[], example: string, unset: string) =>
  text(unset).refine((value) => {
    try {
      const url = new URL(value);
      return schemes.includes(url.protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${schemes.join(' or ')}// (e.g. ${example})`);

const secret = (name: string, minLength: number) =>
  text(`\`wrangler secret put ${name}\` (or .dev.vars for wrangler dev)`).min(minLength, `must be at least ${minLength} characters (e.g. \`openssl rand -base64 48\`)`);

const EnvSchema = z
  .object({
    HYPERDRIVE: z
      .object(
        { connectionString: z.string('the Hyperdrive binding has no connectionString').min(1, 'the Hyperdrive binding has an empty connectionString') },
        { error: 'must be a Hyperdrive binding ([[hyperdrive]] in wrangler.toml)' },
      )
      .optional(),
    DATABASE_URL: urlWith(['postgres:', 'postgresql:'], 'postgres://user:password@db.example.com:5432/voice', '`wrangler secret put DATABASE_URL`').optional(),
    DATABASE_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier (letters, digits, _)')
      .optional(),
    UPSTASH_REDIS_REST_URL: urlWith(['https:', 'http:'], 'https://eu1-example.upstash.io', '`wrangler secret put UPSTASH_REDIS_REST_URL`'),
    UPSTASH_REDIS_REST_TOKEN: text('`wrangler secret put UPSTASH_REDIS_REST_TOKEN`'),
    SECRET_KEY: secret('SECRET_KEY', 32),
    INTERNAL_SECRET: secret('INTERNAL_SECRET', MIN_INTERNAL_SECRET_LENGTH),
    PUBLIC_BASE_URL: urlWith(['https:', 'http:'], 'https://voice.example.com', '[vars] in wrangler.toml').optional(),
    PUBLIC_ASSISTANT_HOST: z
      .string()
      .regex(/^[a-z0-9.-]+(:\d{1,5})?$/i, 'must be a host name such as voice.example.com')
      .optional(),
    DEFAULT_REGION: z.string().min(1).max(64, 'must be at most 64 characters').optional(),
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    TALK_SESSION: z.custom<DurableObjectNamespaceLike>(
      (value) => typeof (value as DurableObjectNamespaceLike | undefined)?.getByName === 'function',
      'must be the TalkSession Durable Object binding ([[durable_objects.bindings]] in wrangler.toml)',
    ),
  });

/**
 * The either-or rules, checked on the raw input beside the schema (a zod refinement would only run once
 * every field is valid, and then a first deploy would learn about its problems one redeploy at a time).
 */
function missingAlternatives(env: Readonly<Record<string, unknown>>): EnvIssue[] {
  const issues: EnvIssue[] = [];
  if (env.HYPERDRIVE === undefined && env.DATABASE_URL === undefined) {
    issues.push({ variable: 'HYPERDRIVE', message: 'neither HYPERDRIVE (a Hyperdrive binding) nor DATABASE_URL is set: the edge needs PostgreSQL' });
  }
  if (env.PUBLIC_BASE_URL === undefined && env.PUBLIC_ASSISTANT_HOST === undefined) {
    issues.push({ variable: 'PUBLIC_BASE_URL', message: 'is not set: the public origin of the edge (e.g. https://voice.example.com), which Twilio signs webhooks against' });
  }
  return issues;
}

/** Vars set to '' count as unset (as on the node); bindings pass through untouched. */
function withoutEmpty(env: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
}

export function parseEdgeEnv(env: Readonly<Record<string, unknown>>): EdgeConfigResult {
  const present = withoutEmpty(env);
  const result = EnvSchema.safeParse(present);
  const issues = missingAlternatives(present);
  // zod's messages here are ours or its type messages: none of them quotes the input.
  if (!result.success) issues.push(...result.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '(environment)'), message: issue.message })));
  if (!result.success || issues.length > 0) return { ok: false, issues };
  const e = result.data;
  const connectionString = e.HYPERDRIVE?.connectionString ?? e.DATABASE_URL!;
  const publicBase = e.PUBLIC_BASE_URL ?? `https://${e.PUBLIC_ASSISTANT_HOST}`;
  return {
    ok: true,
    config: {
      database: { connectionString, source: e.HYPERDRIVE ? 'HYPERDRIVE' : 'DATABASE_URL', ...(e.DATABASE_SCHEMA ? { schema: e.DATABASE_SCHEMA } : {}) },
      upstash: { url: e.UPSTASH_REDIS_REST_URL, token: e.UPSTASH_REDIS_REST_TOKEN },
      secretKey: e.SECRET_KEY,
      internalSecret: e.INTERNAL_SECRET,
      publicBaseUrl: publicBase.replace(/\/+$/, ''),
      ...(e.DEFAULT_REGION ? { defaultRegion: e.DEFAULT_REGION } : {}),
      logLevel: e.LOG_LEVEL,
      talkSessions: e.TALK_SESSION,
    },
  };
}

/** The 500 every request gets while the environment is bad: which variables, and what to do; no values. */
export function misconfiguredResponse(issues: readonly EnvIssue[]): Response {
  const names = [...new Set(issues.map((issue) => issue.variable))];
  const body = {
    error: {
      code: 'WORKER_MISCONFIGURED',
      message: `the edge Worker's environment is invalid (${names.join(', ')}); fix it in wrangler.toml or with \`wrangler secret put\`, then redeploy`,
      issues: issues.map((issue) => ({ path: issue.variable, message: issue.message })),
    },
  };
  return new Response(JSON.stringify(body), { status: 500, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } });
}
