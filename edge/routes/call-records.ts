import type { CallDirection, CallStatus } from '../../shared/contracts/call-status';
import type { CallContext } from '../../shared/store/call-contexts';
import type { Conversation } from '../../shared/store/conversations';
import type { AppStores } from '../app';
import { ApiError } from '../errors';
import type { CallHooks, PinnedAssistant } from './twilio';

/**
 * The two records every new call starts with, whatever carries it: the conversation (history, metrics,
 * status) and the call context its media connection claims by the id in its URL. Used by the Twilio webhook
 * and `POST /v1/calls` (edge/routes/twilio.ts) and by browser sessions (edge/routes/web-session.ts).
 */
export interface CallRecordsInput extends PinnedAssistant {
  /** The conversation's channel and the context's provider: `twilio`, `web`, ... */
  readonly channel: string;
  readonly direction: CallDirection;
  /** The call context's carrier status. */
  readonly callStatus: CallStatus;
  /** The conversation's status; default `callStatus`. */
  readonly conversationStatus?: CallStatus;
  readonly caller?: string;
  readonly callee?: string;
  /** The carrier's id of the call, when known already. */
  readonly channelId?: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly variables?: Readonly<Record<string, string>>;
  /** How long the context waits for its media connection; default the store's (10 minutes). */
  readonly ttlMs?: number;
}

export async function createCallRecords(
  stores: Pick<AppStores, 'conversations' | 'callContexts'>,
  input: CallRecordsInput,
): Promise<{ conversation: Conversation; context: CallContext }> {
  const pinned = { projectId: input.projectId, assistantId: input.assistantId, assistantVersion: input.assistantVersion };
  const variables = input.variables ? { variables: input.variables } : {};
  const conversation = await stores.conversations.create({
    ...pinned,
    channel: input.channel,
    direction: input.direction,
    status: input.conversationStatus ?? input.callStatus,
    ...(input.metadata ? { metadata: input.metadata } : {}),
    ...variables,
  });
  const context = await stores.callContexts.create({
    ...pinned,
    conversationId: conversation.id,
    provider: input.channel,
    direction: input.direction,
    ...(input.caller !== undefined ? { caller: input.caller } : {}),
    ...(input.callee !== undefined ? { callee: input.callee } : {}),
    ...(input.channelId !== undefined ? { channelId: input.channelId } : {}),
    callStatus: input.callStatus,
    ...variables,
    ...(input.ttlMs !== undefined ? { ttlMs: input.ttlMs } : {}),
  });
  return { conversation, context };
}

/**
 * What every outbound call checks before anything is created or dialled: the assistant can take calls now
 * (providers, credentials: 400 ASSISTANT_NOT_CALLABLE) and there is room for one more (503 AT_CAPACITY).
 */
export async function admitOutboundCall(deps: Pick<CallHooks, 'checkCallable' | 'admitCall'>, pinned: PinnedAssistant): Promise<void> {
  const unusable = await deps.checkCallable?.(pinned);
  if (unusable) throw new ApiError(400, 'ASSISTANT_NOT_CALLABLE', `assistant ${pinned.assistantId} cannot take calls right now: ${unusable}`);
  if (deps.admitCall && !(await deps.admitCall(pinned.projectId))) {
    throw new ApiError(503, 'AT_CAPACITY', 'this node or the project is at its concurrent-call limit (or the node is draining); retry shortly', {}, { 'Retry-After': '5' });
  }
}
