import { fromBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import type { AppStores } from '../../edge/app';
import { bearerKey } from '../../edge/auth';
import { createCallRecords } from '../../edge/routes/call-records';
import type { CallHooks } from '../../edge/routes/twilio';
import { WebSessionBody } from '../../edge/routes/web-session';
import { isUuid } from '../../shared/store/rows';
import { PUBLISHABLE_KEY_PREFIX } from '../../shared/store/projects';
import { AssistantTalkRequestSchema, type Initialization } from '../../shared/talk/gen/talk_api_pb';
import type { TalkLog } from '../../shared/talk/session';
import { grpcTalkTransport, refuseGrpcCall, type RawTalkCall } from './grpc-transport';
import type { TalkConnection, TalkHost } from './talk-host';

/** Frames a client may send while its key and context are being checked (its microphone runs already). */
const MAX_EARLY_FRAMES = 100;
/** A stream without `x-context-id` must send its Initialization within this time. */
const DEFAULT_FIRST_MESSAGE_TIMEOUT_MS = 10_000;

export interface GrpcTalkDeps extends Pick<CallHooks, 'checkCallable' | 'admitCall'> {
  readonly stores: Pick<AppStores, 'projects' | 'assistants' | 'conversations' | 'callContexts'>;
  readonly host: TalkHost;
  readonly log?: TalkLog;
  readonly firstMessageTimeoutMs?: number;
}

/** Why a stream is refused before it reaches a session: a gRPC status, an Error code, a message. */
class Refusal extends Error {
  constructor(
    readonly status: grpc.status,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The binding metadata: zod-checked so a bad header is named in the answer. */
const BindingMetadata = z.object({
  contextId: z.string().refine(isUuid, 'x-context-id must be a call context id (a UUID)').optional(),
  projectId: z.string().refine(isUuid, 'x-project-id must be a project id (a UUID)').optional(),
});

/**
 * `talk_api.TalkService/AssistantTalk` on the node's gRPC server (the same port as HTTP, via the listener's
 * h2c sniffing). Metadata:
 * - `authorization: Bearer <secret key>`: a project key, or the admin key with `x-project-id` (as the REST
 *   API); missing, unknown or publishable → UNAUTHENTICATED;
 * - `x-context-id` (optional): the web call context to join (from `POST /v1/talk/web/session`); another
 *   project's → PERMISSION_DENIED, unknown or not a web context → NOT_FOUND. Without it the first message's
 *   Initialization names the assistant (`version` 0: the latest) and a context is created for it, exactly as
 *   the web-session route does (conversation + pending `web` context), after the same callable and
 *   capacity checks.
 * From there the stream is a talk connection like a WebSocket: same session, same messages, close codes
 * mapped to statuses (grpc-transport.ts); a client cancel is a dropped connection (the call waits for it to
 * resume with its token, over gRPC with `x-context-id` or over the WebSocket). A client's half-close ends
 * nothing (it may still listen): a call ends with a Disconnection message, or by the assistant.
 */
export function createAssistantTalkHandler(deps: GrpcTalkDeps): (call: RawTalkCall) => void {
  const log = deps.log ?? (() => undefined);
  const firstMessageTimeoutMs = deps.firstMessageTimeoutMs ?? DEFAULT_FIRST_MESSAGE_TIMEOUT_MS;
  const { stores } = deps;

  /** The caller's project and key (the key's id goes into the conversation's metadata, never the key). */
  async function callerOf(metadata: grpc.Metadata, projectHeader: string | undefined): Promise<{ projectId: string; keyId: string }> {
    const header = metadataValue(metadata, 'authorization');
    const key = bearerKey(header);
    if (!key) throw new Refusal(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 'send metadata "authorization: Bearer <secret API key>"');
    if (key.startsWith(PUBLISHABLE_KEY_PREFIX)) {
      throw new Refusal(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 'publishable keys start browser sessions over POST /v1/talk/web/session; gRPC needs a secret API key');
    }
    const principal = await stores.projects.authenticate(key);
    if (!principal) throw new Refusal(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 'the API key is unknown or revoked');
    if (principal.kind === 'project') {
      if (projectHeader !== undefined && projectHeader.toLowerCase() !== principal.projectId.toLowerCase()) {
        throw new Refusal(grpc.status.PERMISSION_DENIED, 'FORBIDDEN', 'this API key belongs to another project than the one named in x-project-id');
      }
      return { projectId: principal.projectId, keyId: principal.keyId };
    }
    if (projectHeader === undefined) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'PROJECT_REQUIRED', 'the admin key acts inside a project only when the call names it in x-project-id metadata');
    const project = await stores.projects.getProject(projectHeader);
    if (!project) throw new Refusal(grpc.status.NOT_FOUND, 'PROJECT_NOT_FOUND', `project ${projectHeader} (from x-project-id) does not exist`);
    return { projectId: project.id, keyId: principal.keyId };
  }

  async function existingContext(projectId: string, contextId: string): Promise<string> {
    const context = await stores.callContexts.get(contextId);
    if (!context || context.provider !== 'web') throw new Refusal(grpc.status.NOT_FOUND, 'CONTEXT_UNKNOWN', `call context ${contextId} does not exist or is not a web session`);
    if (context.projectId !== projectId) throw new Refusal(grpc.status.PERMISSION_DENIED, 'FORBIDDEN', `call context ${contextId} belongs to another project`);
    return context.id;
  }

  /** A new web context for the assistant the Initialization names (the web-session route's path). */
  async function createContext(projectId: string, keyId: string, init: Initialization): Promise<string> {
    const ref = init.assistant;
    if (!ref?.id) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'ASSISTANT_REQUIRED', 'without x-context-id metadata the initialization must name an assistant (assistant.id)');
    if (init.resumeToken) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'CONTEXT_REQUIRED', 'a resume token re-attaches to a running call: send its context id in x-context-id metadata');
    const parsed = WebSessionBody.safeParse({ assistantId: ref.id, ...(ref.version ? { assistantVersion: ref.version } : {}), variables: init.variables });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.').replace(/^assistantId/, 'assistant.id').replace(/^assistantVersion/, 'assistant.version');
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'INITIALIZATION_INVALID', `initialization.${field}: ${issue.message}`);
    }
    const body = parsed.data;
    const assistant = await stores.assistants.get(body.assistantId, body.assistantVersion);
    if (!assistant || assistant.projectId !== projectId || assistant.deletedAt) {
      const which = body.assistantVersion === undefined ? `assistant ${body.assistantId}` : `version ${body.assistantVersion} of assistant ${body.assistantId}`;
      throw new Refusal(grpc.status.NOT_FOUND, 'ASSISTANT_NOT_FOUND', `${which} does not exist in this key's project`);
    }
    const pinned = { projectId, assistantId: assistant.id, assistantVersion: assistant.version };
    const unusable = await deps.checkCallable?.(pinned);
    if (unusable) throw new Refusal(grpc.status.FAILED_PRECONDITION, 'ASSISTANT_NOT_CALLABLE', `assistant ${assistant.id} cannot take calls right now: ${unusable}`);
    if (deps.admitCall && !(await deps.admitCall(projectId))) {
      throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, 'AT_CAPACITY', 'the project or this node is at its concurrent-call limit (or draining); retry shortly');
    }
    const { context } = await createCallRecords(stores, {
      ...pinned,
      channel: 'web',
      direction: 'inbound',
      callStatus: 'queued',
      metadata: { auth: 'api-key', keyId, transport: 'grpc' },
      ...(body.variables ? { variables: body.variables } : {}),
    });
    return context.id;
  }

  return (call) => {
    const early: Uint8Array[] = [];
    let connection: TalkConnection | undefined;
    let gone = false;
    let overflowed = false;
    let firstFrame: ((frame: Uint8Array) => void) | undefined;

    const onGone = () => {
      if (gone) return;
      gone = true;
      early.length = 0;
      connection?.disconnected();
    };
    call.on('data', (frame: Uint8Array) => {
      if (gone) return;
      if (connection) return connection.receive(frame);
      if (early.length >= MAX_EARLY_FRAMES) {
        overflowed = true;
        return;
      }
      early.push(frame);
      firstFrame?.(frame);
    });
    call.on('cancelled', onGone);
    call.on('finish', onGone);
    call.on('close', onGone);

    const nextFrame = () =>
      new Promise<Uint8Array | undefined>((resolve) => {
        if (early[0]) return resolve(early[0]);
        const timer = setTimeout(() => resolve(undefined), firstMessageTimeoutMs);
        firstFrame = (frame) => {
          clearTimeout(timer);
          firstFrame = undefined;
          resolve(frame);
        };
      });

    void (async () => {
      const metadata = BindingMetadata.safeParse({
        contextId: metadataValue(call.metadata, 'x-context-id'),
        projectId: metadataValue(call.metadata, 'x-project-id'),
      });
      if (!metadata.success) {
        const issue = metadata.error.issues[0]!;
        throw new Refusal(grpc.status.INVALID_ARGUMENT, 'METADATA_INVALID', issue.message);
      }
      const { projectId, keyId } = await callerOf(call.metadata, metadata.data.projectId);
      let contextId: string;
      if (metadata.data.contextId) {
        contextId = await existingContext(projectId, metadata.data.contextId);
      } else {
        const first = await nextFrame();
        if (gone) return;
        if (!first) throw new Refusal(grpc.status.DEADLINE_EXCEEDED, 'INITIALIZATION_TIMEOUT', `no initialization within ${firstMessageTimeoutMs} ms`);
        let init: Initialization;
        try {
          const request = fromBinary(AssistantTalkRequestSchema, first);
          if (request.request.case !== 'initialization') {
            throw new Refusal(grpc.status.INVALID_ARGUMENT, 'INITIALIZATION_REQUIRED', `the first message must be an initialization, got ${request.request.case ?? 'an empty request'}`);
          }
          init = request.request.value;
        } catch (error) {
          if (error instanceof Refusal) throw error;
          throw new Refusal(grpc.status.INVALID_ARGUMENT, 'MALFORMED_FRAME', `the first message is not an AssistantTalkRequest: ${(error as Error).message}`);
        }
        contextId = await createContext(projectId, keyId, init);
      }
      if (gone) return;
      if (overflowed) throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, 'TOO_MANY_EARLY_FRAMES', `more than ${MAX_EARLY_FRAMES} messages arrived before the stream was bound to its call`);
      connection = deps.host.connect(contextId, grpcTalkTransport(call));
      for (const frame of early.splice(0)) connection.receive(frame);
    })().catch((error: unknown) => {
      if (error instanceof Refusal) {
        log('warn', 'talk gRPC stream refused', { code: error.code, message: error.message });
        return refuseGrpcCall(call, error.status, error.code, error.message);
      }
      log('error', 'talk gRPC stream failed', { error: String(error) });
      refuseGrpcCall(call, grpc.status.INTERNAL, 'INTERNAL', 'the stream could not be set up; try again');
    });
  };
}

/** One metadata value as a string (the first of its name), trimmed; undefined when absent or empty. */
function metadataValue(metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  const text = typeof value === 'string' ? value.trim() : undefined;
  return text || undefined;
}
