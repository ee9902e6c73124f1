import { z } from 'zod';
import { ConfigError } from '../../shared/contracts/errors';

const url = (schemes: string[]) =>
  z.string().refine((v) => {
    try {
      return schemes.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${schemes.join(' or ')}//`);

/** Every environment variable the media node reads, with its default. Unknown variables are ignored. */
export const NodeEnv = z.object({
  /** PostgreSQL; unset = embedded PGlite in DATA_DIR/pglite. */
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** PostgreSQL schema the node's tables live in (search_path); unset = the server's default (public). */
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier (letters, digits, _)')
    .optional(),
  /** OpenSearch for knowledge retrieval (BM25; k-NN with an embedding provider); unset = PostgreSQL/PGlite full-text search. */
  OPENSEARCH_URL: url(['https:', 'http:']).optional(),
  /** Redis; unset = in-memory cache (single node). */
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  /** Where embedded data and generated secrets live. */
  DATA_DIR: z.string().min(1).default('.data'),
  /** `auto`: apply migrations at start-up (always done on PGlite); `off`: run `npm run db:migrate` yourself. */
  MIGRATE: z.enum(['auto', 'off']).default('off'),
  /** Seals provider credentials (AES-256-GCM). At least 32 characters. */
  SECRET_KEY: z.string().min(32, 'must be at least 32 characters (e.g. `openssl rand -base64 48`)').optional(),
  /** Signs node-to-node calls (`POST /internal/prewarm`). At least 32 characters. */
  INTERNAL_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** The admin API key; unset = generated at first start, printed once, stored hashed. */
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** The one port for HTTP, WebSocket and gRPC. */
  PORT: z.coerce.number().int().min(0).max(65_535).default(9007),
  /** Address to bind. */
  HOST: z.string().min(1).default('0.0.0.0'),
  /**
   * Asterisk AudioSocket TCP listener (on HOST); `off` disables it. Default 4573, or a random port when PORT
   * is 0 (an ephemeral node, as in tests: two such nodes must not fight over 4573). Read it through `audioSocketPort`.
   */
  AUDIOSOCKET_PORT: z.union([z.literal('off'), z.coerce.number().int().min(0).max(65_535)], { error: 'must be a port number (0 = random) or off' }).optional(),
  /** SIP over UDP (on HOST); `off` disables it. Default 5090, or a random port when PORT is 0 (tests). Read it through `sipPort`. */
  SIP_PORT: z.union([z.literal('off'), z.coerce.number().int().min(0).max(65_535)], { error: 'must be a port number (0 = random) or off' }).optional(),
  /** The address written in our SDP (c=, o=), Via and Contact: the node's public IP behind NAT. Default: HOST, or 127.0.0.1 when HOST is a wildcard. */
  SIP_PUBLIC_IP: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' }).optional(),
  /** RTP ports for SIP calls (even ports are used, one per call; open them in the firewall). */
  RTP_PORT_MIN: z.coerce.number().int().min(1024).max(65_534).default(10_000),
  RTP_PORT_MAX: z.coerce.number().int().min(1024).max(65_535).default(10_199),
  /** A SIP call with no RTP from the caller this long is over (dead peer, lost BYE); held calls are exempt. */
  SIP_RTP_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(30_000),
  /** How this node is reached from outside (webhook signatures and media URLs derive from it). Default http://127.0.0.1:$PORT. */
  PUBLIC_BASE_URL: url(['https:', 'http:']).optional(),
  PUBLIC_ASSISTANT_HOST: z.string().min(1).optional(),
  /** Calls this node takes at once; above it webhooks answer 503 so the carrier fails over. */
  CAPACITY: z.coerce.number().int().min(0).max(100_000).default(200),
  /** Concurrent calls one project may have (0 = no limit). */
  PROJECT_CALL_LIMIT: z.coerce.number().int().min(0).default(0),
  /** On SIGTERM, running calls may finish for this long before the node exits. */
  DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).default(600_000),
  NODE_ID: z.string().min(1).optional(),
  REGION: z.string().min(1).default('local'),
  /**
   * `on`: an assistant naming a cloud provider for which neither the project nor the environment has a key
   * is served by the offline `local` engines. Default: on for embedded defaults (no DATABASE_URL), else off.
   */
  LOCAL_FALLBACK: z.enum(['on', 'off']).optional(),
  /** The demo page's local keys for a browser on this machine (embedded defaults only); `off` always asks for keys. */
  DEMO_LOCAL_KEYS: z.enum(['on', 'off']).default('on'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type NodeEnv = z.output<typeof NodeEnv>;

/** Parse the process environment; every problem is listed by variable name in one error. */
export function parseNodeEnv(env: Readonly<Record<string, string | undefined>>): NodeEnv {
  // Empty strings count as unset (a blank line in a .env file).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = NodeEnv.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(
    'ENV_INVALID',
    'the environment is invalid',
    result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
  );
}

/** The AudioSocket port to bind (0 = random), or undefined when it is off. */
export function audioSocketPort(env: NodeEnv): number | undefined {
  if (env.AUDIOSOCKET_PORT === 'off') return undefined;
  return env.AUDIOSOCKET_PORT ?? (env.PORT === 0 ? 0 : 4573);
}

/** The SIP port to bind (0 = random), or undefined when it is off. */
export function sipPort(env: NodeEnv): number | undefined {
  if (env.SIP_PORT === 'off') return undefined;
  return env.SIP_PORT ?? (env.PORT === 0 ? 0 : 5090);
}

/** What a SIP peer is told to send to: SIP_PUBLIC_IP, else HOST unless it is a wildcard. */
export function sipPublicIp(env: NodeEnv): string {
  if (env.SIP_PUBLIC_IP) return env.SIP_PUBLIC_IP;
  return env.HOST === '0.0.0.0' || env.HOST === '::' ? '127.0.0.1' : env.HOST;
}

/** The RTP port range, checked (at least two even ports: one call). */
export function rtpPortRange(env: NodeEnv): { min: number; max: number } {
  const min = env.RTP_PORT_MIN + (env.RTP_PORT_MIN % 2);
  if (env.RTP_PORT_MAX < min) {
    throw new ConfigError('ENV_INVALID', 'the environment is invalid', [`RTP_PORT_MAX: must be at least RTP_PORT_MIN (${env.RTP_PORT_MIN}) rounded up to even`]);
  }
  return { min, max: env.RTP_PORT_MAX };
}

/** PUBLIC_BASE_URL, else https://PUBLIC_ASSISTANT_HOST, else the local port. No trailing slash. */
export function publicBaseUrl(env: NodeEnv, boundPort = env.PORT): string {
  const base = env.PUBLIC_BASE_URL ?? (env.PUBLIC_ASSISTANT_HOST ? `https://${env.PUBLIC_ASSISTANT_HOST}` : `http://127.0.0.1:${boundPort}`);
  return base.replace(/\/+$/, '');
}

/** Media WebSocket base: https → wss, http → ws. */
export function mediaBaseUrl(publicBase: string): string {
  return publicBase.replace(/^http/, 'ws');
}
