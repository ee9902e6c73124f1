import { systemClock } from '../../shared/contracts/clock';
import type { ConversationOp } from '../../shared/store/call-recorder';
import type { JournalRecord } from '../../shared/store/writer';
import { startCall } from '../../shared/engine/call-setup';
import { createTalkSession, type TalkSession as TalkSessionCore } from '../../shared/talk/session';
import type { TalkTransport } from '../../shared/talk/transport';
import { misconfiguredResponse, type LogLevel } from '../env';
import type { ConnectionBudgetSnapshot } from './connection-budget';
import { replayCallRecords, type TalkLog } from './conversation-writer';
import { openSessionRuntime, type EdgeSessionRuntime } from './session-runtime';
import { parseTalkEnv, TalkEnvError } from './session-env';
import { createSqliteJournal, ensureJournalTable, type SqliteJournal } from './sqlite-journal';
import type { DurableObjectState, HibernatableWebSocket, WebSocketPairConstructor } from './workerd-types';

/** What each accepted socket keeps across hibernation (a few bytes of its 16 KiB). */
interface SocketAttachment {
  readonly contextId: string;
}

const CONTEXT_PATH = /\/v1\/talk\/web\/ctx\/([A-Za-z0-9-]{1,64})\/?$/;
/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
const MAX_CLOSE_REASON_BYTES = 123;
/** Records still in the journal after a call are retried this often (the object wakes for it). */
const REPLAY_RETRY_MS = 60_000;
const REPLAY_FLUSH_MS = 10_000;

/**
 * The browser call of one call context, in the Durable Object named by the context id: the edge Worker
 * forwards `GET /v1/talk/web/ctx/:contextId` here. WebSockets are accepted through the Hibernation API, so an
 * object whose client has not started the call yet (or whose call is over) can be evicted; a live call holds
 * provider sockets and timers, which keep it in memory until it ends.
 *
 * One talk session per object (shared/talk/session.ts: claim on the first Initialization, resume with the
 * token, close codes), created lazily with the first frame. The engine is the shared pipeline
 * (shared/engine/call-setup.ts) with edge-capable providers only, the `webrtc` VAD and speex resamplers in
 * WASM; records go through the batched writer to PostgreSQL, journaled in this object's SQLite while the
 * database is unreachable, and replayed by an alarm if the call ends before it is back.
 */
export class TalkSession {
  private readonly journal: SqliteJournal<JournalRecord<ConversationOp>>;
  private readonly transports = new WeakMap<HibernatableWebSocket, TalkTransport>();
  /** Transports the session has been told about (`connect`). */
  private readonly joined = new WeakSet<TalkTransport>();
  private session: Promise<TalkSessionCore> | undefined;
  private runtime: Promise<EdgeSessionRuntime> | undefined;
  private contextId: string | undefined;
  private callOver = false;
  /** The end of a call: its records flushed or journaled (an alarm waits for it). */
  private finishing: Promise<void> | undefined;
  /** Changes whenever the runtime constructs the object again (after hibernation or eviction). */
  private readonly instanceId = crypto.randomUUID();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: unknown,
  ) {
    // Cheap and idempotent: the constructor runs again after every hibernation.
    ensureJournalTable(ctx.storage);
    this.journal = createSqliteJournal(ctx.storage);
  }

  async fetch(request: Request): Promise<Response> {
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      return errorResponse(426, 'UPGRADE_REQUIRED', 'this endpoint speaks WebSocket only: binary AssistantTalkRequest frames (protos/talk_api.proto)', { Upgrade: 'websocket' });
    }
    const contextId = CONTEXT_PATH.exec(new URL(request.url).pathname)?.[1];
    if (!contextId) return errorResponse(400, 'CONTEXT_ID_INVALID', 'the path must be /v1/talk/web/ctx/{contextId}');
    try {
      parseTalkEnv(this.env);
    } catch (error) {
      if (error instanceof TalkEnvError) return misconfiguredResponse(error.issues);
      throw error;
    }
    const Pair = (globalThis as unknown as { WebSocketPair: WebSocketPairConstructor }).WebSocketPair;
    const pair = new Pair();
    const client = pair[0];
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [contextId]);
    server.serializeAttachment({ contextId } satisfies SocketAttachment);
    this.transportOf(server);
    return new Response(null, { status: 101, webSocket: client } as ResponseInit);
  }

  async webSocketMessage(ws: HibernatableWebSocket, message: string | ArrayBuffer): Promise<void> {
    const transport = this.transportOf(ws);
    const session = await this.sessionFor(ws, transport);
    if (!session) return;
    if (typeof message === 'string') session.receiveText(transport);
    else await session.receive(transport, new Uint8Array(message));
  }

  async webSocketClose(ws: HibernatableWebSocket, code: number, reason: string): Promise<void> {
    await this.dropped(ws);
    try {
      // The runtime answers a client's Close itself (compat date ≥ 2026-04-07); this is for older dates.
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  async webSocketError(ws: HibernatableWebSocket): Promise<void> {
    await this.dropped(ws);
  }

  /**
   * Records a call left in the journal (the database was away when it ended, or the object was reset during
   * an outage): write them now, or try again later. A live call's own writer replays the journal itself.
   */
  async alarm(): Promise<void> {
    if (this.runtime && !this.callOver) {
      // Still going: its writer replays the journal once the database answers; look again later.
      if (this.journal.storedCount() > 0) await this.ctx.storage.setAlarm(Date.now() + REPLAY_RETRY_MS);
      return;
    }
    await this.finishing;
    if (this.journal.storedCount() === 0) return;
    const env = parseTalkEnv(this.env);
    const pending = await replayCallRecords({ database: env.edge.database, journal: this.journal, log: talkLogger(env.edge.logLevel), timeoutMs: REPLAY_FLUSH_MS });
    if (pending > 0) await this.ctx.storage.setAlarm(Date.now() + REPLAY_RETRY_MS);
  }

  /** Connection budget, journal and writer figures of this object (served only by test entries). */
  async diagnostics(): Promise<{
    budget?: ConnectionBudgetSnapshot;
    journalStored: number;
    writer?: ReturnType<EdgeSessionRuntime['writer']['stats']>;
    databaseReplaced?: number;
    callOver: boolean;
    instanceId: string;
    alarmAt: number | null;
  }> {
    const runtime = this.runtime ? await this.runtime.catch(() => undefined) : undefined;
    return {
      alarmAt: await this.ctx.storage.getAlarm(),
      ...(runtime ? { budget: runtime.budget.snapshot(), writer: runtime.writer.stats(), databaseReplaced: runtime.databaseReplaced } : {}),
      journalStored: this.journal.storedCount(),
      callOver: this.callOver,
      instanceId: this.instanceId,
    };
  }

  // ---- internals ----

  /** The transport of an accepted socket; after hibernation the socket is known only by its attachment. */
  private transportOf(ws: HibernatableWebSocket): TalkTransport {
    let transport = this.transports.get(ws);
    if (!transport) {
      transport = {
        send(frame) {
          try {
            ws.send(frame);
          } catch {
            // Closing or closed: the close event reports the drop.
          }
        },
        close(code, reason) {
          try {
            ws.close(code, truncate(reason));
          } catch {
            // Already closed.
          }
        },
        // workerd's server-side WebSocket exposes no bufferedAmount (cloudflare/workerd#988).
        bufferedAmount: () => 0,
      };
      this.transports.set(ws, transport);
    }
    return transport;
  }

  /** The session this socket belongs to, told about the socket once; undefined when the socket is refused. */
  private async sessionFor(ws: HibernatableWebSocket, transport: TalkTransport): Promise<TalkSessionCore | undefined> {
    const attachment = ws.deserializeAttachment() as Partial<SocketAttachment> | null;
    const contextId = attachment?.contextId;
    if (!contextId || (this.contextId !== undefined && contextId !== this.contextId)) {
      transport.close(4404, 'this object serves another call context');
      return undefined;
    }
    this.contextId = contextId;
    let session: TalkSessionCore;
    try {
      this.session ??= this.createSession(contextId);
      session = await this.session;
    } catch (error) {
      this.session = undefined;
      talkLogger('error')('error', 'talk session could not be set up', { contextId, error: String(error) });
      transport.close(1011, error instanceof TalkEnvError ? error.code : 'the session could not be set up; try again');
      return undefined;
    }
    if (!this.joined.has(transport)) {
      this.joined.add(transport);
      session.connect(transport);
    }
    return session;
  }

  private async createSession(contextId: string): Promise<TalkSessionCore> {
    const env = parseTalkEnv(this.env);
    const log = talkLogger(env.edge.logLevel);
    this.runtime = openSessionRuntime({
      env,
      journal: this.journal,
      log,
      // Records that wait in the journal must not depend on this call's life: an alarm wakes the object later.
      onWriterTrouble: (event) => {
        if (event.type === 'retrying' && event.attempt === 1) void this.ensureReplayAlarm();
      },
    });
    const runtime = await this.runtime;
    return createTalkSession({
      contextId,
      contexts: runtime.contexts,
      startCall: (context, channel, observer) => startCall(runtime.setup, context, channel, { observer }),
      resamplers: runtime.resamplers,
      clock: systemClock,
      log,
      onFinished: () => {
        this.callOver = true;
        this.finishing = this.finishCall(runtime);
        this.ctx.waitUntil(this.finishing);
      },
    });
  }

  private async finishCall(runtime: EdgeSessionRuntime): Promise<void> {
    const result = await runtime.close();
    if (result.status !== 'flushed' || this.journal.storedCount() > 0) await this.ensureReplayAlarm();
  }

  private async ensureReplayAlarm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + REPLAY_RETRY_MS);
  }

  private async dropped(ws: HibernatableWebSocket): Promise<void> {
    const transport = this.transports.get(ws);
    if (!transport || !this.joined.has(transport) || !this.session) return;
    const session = await this.session.catch(() => undefined);
    session?.disconnected(transport);
  }
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** JSON lines in the Workers log at LOG_LEVEL and above (no secrets are ever passed in `fields`). */
function talkLogger(threshold: LogLevel): TalkLog {
  return (level, message, fields) => {
    if (LEVEL_RANK[level] < LEVEL_RANK[threshold]) return;
    const line = JSON.stringify({ level, message, ...fields });
    if (level === 'error') console.error(line);
    else if (level === 'warn') console.warn(line);
    else console.log(line);
  };
}

function truncate(reason: string): string {
  const encoder = new TextEncoder();
  let cut = reason;
  while (encoder.encode(cut).length > MAX_CLOSE_REASON_BYTES) cut = cut.slice(0, Math.min(cut.length - 1, MAX_CLOSE_REASON_BYTES));
  return cut;
}

function errorResponse(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}
