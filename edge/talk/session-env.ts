import { z } from 'zod';
import { parseHostAllowList } from '../../shared/tools/http-tool';
import { parseEdgeEnv, type EdgeConfig, type EnvIssue } from '../env';

/**
 * What a browser-call Durable Object reads from the Worker's environment: the Worker's own configuration
 * (edge/env.ts: database, SECRET_KEY, log level; the object shares the script and env with the Worker, which
 * only forwards calls while that env is valid) plus what only calls need: the http tools' allow-list, the
 * default Azure region and the `<PROVIDER>_API_KEY` secrets (the environment step of credential precedence).
 * The object is constructed by the runtime with the raw env, so it checks it again, naming bad variables
 * and never their values.
 */
const CallEnvSchema = z.object({
  /** Hosts and ranges http tools may reach although they are private (e.g. `10.0.0.0/8,api.internal`). */
  TOOL_HTTP_ALLOW: z
    .string('must be a string')
    .superRefine((value, ctx) => {
      try {
        parseHostAllowList(value);
      } catch (error) {
        // The parser's message quotes the bad entry: a host or range, not a secret.
        ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^TOOL_HTTP_ALLOW: /, '') });
      }
    })
    .optional(),
  AZURE_SPEECH_SERVICE_REGION: z.string('must be a string').min(1, 'is empty').optional(),
});

export interface TalkEnv {
  readonly edge: EdgeConfig;
  readonly toolHttpAllow?: string;
  readonly azureRegion?: string;
  readonly providerKeys: Readonly<Record<string, string>>;
}

export class TalkEnvError extends Error {
  override readonly name = 'TalkEnvError';
  readonly code = 'WORKER_MISCONFIGURED';
  constructor(readonly issues: readonly EnvIssue[]) {
    super(`WORKER_MISCONFIGURED: the browser-call object cannot start: ${issues.map((issue) => `${issue.variable} ${issue.message}`).join('; ')}`);
  }
}

const PROVIDER_KEY = /^[A-Z0-9_]+_API_KEY$/;

export function parseTalkEnv(env: unknown): TalkEnv {
  const raw = (typeof env === 'object' && env !== null ? env : {}) as Record<string, unknown>;
  const edge = parseEdgeEnv(raw);
  const extra = CallEnvSchema.safeParse(raw);
  const issues: EnvIssue[] = [...(edge.ok ? [] : edge.issues)];
  if (!extra.success) issues.push(...extra.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '(environment)'), message: issue.message })));
  if (!edge.ok || !extra.success || issues.length > 0) throw new TalkEnvError(issues);
  const providerKeys: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (PROVIDER_KEY.test(name) && typeof value === 'string' && value) providerKeys[name] = value;
  }
  return {
    edge: edge.config,
    ...(extra.data.TOOL_HTTP_ALLOW ? { toolHttpAllow: extra.data.TOOL_HTTP_ALLOW } : {}),
    ...(extra.data.AZURE_SPEECH_SERVICE_REGION ? { azureRegion: extra.data.AZURE_SPEECH_SERVICE_REGION } : {}),
    providerKeys,
  };
}
