import { lookup } from 'node:dns/promises';
import { isTwilioApiUrl } from '../../edge/routes/calls';
import { resolveTwilioCredential } from '../../edge/routes/twilio';
import { resolveVonageCredential } from '../../edge/routes/vonage';
import { isVonageApiUrl } from '../../edge/routes/vonage-calls';
import type { AssistantConfig } from '../../shared/config/assistant';
import type { Channel } from '../../shared/contracts/channel';
import type { CallContext } from '../../shared/store/call-contexts';
import type { CredentialStore } from '../../shared/store/credentials';
import { transferTwilioCall } from '../../shared/telephony/twilio-rest';
import { transferVonageCall } from '../../shared/telephony/vonage-rest';
import type { KnowledgeSearch } from '../../shared/tools/builtins';
import type { CallTools } from '../../shared/tools/control';
import { createToolExecutor } from '../../shared/tools/executor';
import { parseHostAllowList, type HostAllowList, type ResolveHost } from '../../shared/tools/http-tool';

/**
 * The media node's side of tools: DNS for the http tool's SSRF guard, the allow-list from `TOOL_HTTP_ALLOW`,
 * stored credentials for http headers, and the Twilio transfer (the live call redirected to `<Dial>` through
 * the REST API with the project's twilio credential and the call's CallSid).
 */

/** Every address of `host` (IPv4 and IPv6), as the system resolver gives them. */
export const resolveWithDns: ResolveHost = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** `TOOL_HTTP_ALLOW` of the environment; a malformed entry is a startup error, not a silently wider guard. */
export function toolAllowList(env: Readonly<Record<string, string | undefined>> | undefined): HostAllowList {
  return parseHostAllowList(env?.TOOL_HTTP_ALLOW);
}

/** The provider a credential must be stored under for an http tool's header to use it. */
export const HTTP_TOOL_CREDENTIAL_PROVIDER = 'http';

export interface CallToolsOptions {
  readonly config: AssistantConfig;
  readonly context: Pick<CallContext, 'projectId' | 'variables'>;
  /** Only credentials stored with provider `http` are given to tools (never another provider's secret). */
  readonly credentials: Pick<CredentialStore, 'resolveForProvider'>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly search?: KnowledgeSearch;
  readonly fetch?: typeof fetch;
  readonly resolve?: ResolveHost;
}

/** The executor of one call's tools (undefined when the assistant has none). */
export function createCallTools(options: CallToolsOptions): CallTools | undefined {
  const { config, context } = options;
  if (config.tools.length === 0) return undefined;
  return createToolExecutor(config.tools, {
    variables: { ...config.variables, ...context.variables },
    ...(options.search ? { search: options.search } : {}),
    http: {
      allow: toolAllowList(options.env),
      resolve: options.resolve ?? resolveWithDns,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      credential: (name) => options.credentials.resolveForProvider(context.projectId, HTTP_TOOL_CREDENTIAL_PROVIDER, name).catch(() => undefined),
    },
  });
}

export interface TwilioTransferOptions {
  readonly credentials: Pick<CredentialStore, 'resolve'>;
  readonly context: Pick<CallContext, 'projectId' | 'provider' | 'channelId'>;
  readonly fetch?: typeof fetch;
  /** Which `apiBaseUrl` a stored twilio credential may name (default: https Twilio hosts only). */
  readonly allowApiBaseUrl?: (url: string) => boolean;
}

/**
 * The channel with a Twilio transfer when the call is a Twilio call with a CallSid and the channel has no
 * transfer of its own; otherwise the channel as it is. The credential is read when the transfer happens.
 */
export function withTwilioTransfer(channel: Channel, options: TwilioTransferOptions): Channel {
  const { context } = options;
  const callSid = context.channelId;
  if (channel.transfer || context.provider !== 'twilio' || !callSid) return channel;
  return withTransfer(channel, async (to) => {
    const credential = await resolveTwilioCredential(options.credentials, context.projectId);
    if (!credential) throw new Error('the project has no twilio credential {accountSid, authToken} to transfer the call with');
    if (credential.apiBaseUrl !== undefined && !(options.allowApiBaseUrl ?? isTwilioApiUrl)(credential.apiBaseUrl)) {
      throw new Error("the twilio credential's apiBaseUrl must be an https Twilio API URL");
    }
    await transferTwilioCall({ ...credential, callSid, to, ...(options.fetch ? { fetch: options.fetch } : {}) });
  });
}

/**
 * The same for Vonage: the live call (its uuid) is moved to an NCCO that connects the caller to the target,
 * through the Voice API with the project's vonage credential (applicationId + privateKey).
 */
export function withVonageTransfer(channel: Channel, options: TwilioTransferOptions): Channel {
  const { context } = options;
  const uuid = context.channelId;
  if (channel.transfer || context.provider !== 'vonage' || !uuid) return channel;
  return withTransfer(channel, async (to) => {
    const credential = await resolveVonageCredential(options.credentials, context.projectId);
    if (!credential?.applicationId || !credential.privateKey) throw new Error('the project has no vonage credential {applicationId, privateKey} to transfer the call with');
    if (credential.apiBaseUrl !== undefined && !(options.allowApiBaseUrl ?? isVonageApiUrl)(credential.apiBaseUrl)) {
      throw new Error("the vonage credential's apiBaseUrl must be an https Vonage API URL");
    }
    await transferVonageCall({
      applicationId: credential.applicationId,
      privateKey: credential.privateKey,
      ...(credential.apiBaseUrl ? { apiBaseUrl: credential.apiBaseUrl } : {}),
      uuid,
      to,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
  });
}

/** `channel` with a transfer of its own (the carrier's way to hand the caller over). */
export function withTransfer(channel: Channel, transfer: (to: string) => Promise<void>): Channel {
  return {
    id: channel.id,
    get outputFormat() {
      return channel.outputFormat;
    },
    capabilities: { ...channel.capabilities, transfer: true },
    start: (handlers) => channel.start(handlers),
    play: (frame) => channel.play(frame),
    clear: () => channel.clear(),
    mark: (name) => channel.mark(name),
    hangup: (reason) => channel.hangup(reason),
    transfer,
  };
}
