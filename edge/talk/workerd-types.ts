/**
 * The slice of workerd's Durable Object API the talk session uses. The project has no workers-types (the DOM
 * lib stands in for the web-standard part), so the shapes are written down here from the runtime's
 * documentation (reference/cloudflare.md §1, §9). Types only: nothing here exists at run time.
 */

export type SqlValue = string | number | null | ArrayBuffer;

export interface SqlCursor<Row> extends Iterable<Row> {
  toArray(): Row[];
  one(): Row;
  readonly rowsWritten: number;
}

/** `ctx.storage.sql`: synchronous SQLite of this object; consume each cursor before the next `await`. */
export interface SqlStorage {
  exec<Row extends Record<string, SqlValue> = Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): SqlCursor<Row>;
  readonly databaseSize: number;
}

export interface DurableObjectStorage {
  readonly sql: SqlStorage;
  /** Runs `fn` as one SQLite transaction (BEGIN/SAVEPOINT are not allowed in `exec`). */
  transactionSync<T>(fn: () => T): T;
  setAlarm(scheduledTimeMs: number): Promise<void>;
  getAlarm(): Promise<number | null>;
  deleteAlarm(): Promise<void>;
}

/** A server-side WebSocket accepted through the Hibernation API (`ctx.acceptWebSocket`). */
export interface HibernatableWebSocket {
  send(data: ArrayBuffer | ArrayBufferView | string): void;
  close(code?: number, reason?: string): void;
  /** Structured-clone data kept with the socket across hibernation (≤ 16 KiB). */
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
  readonly readyState: number;
}

export interface DurableObjectState {
  readonly storage: DurableObjectStorage;
  acceptWebSocket(ws: HibernatableWebSocket, tags?: string[]): void;
  getWebSockets(tag?: string): HibernatableWebSocket[];
  waitUntil(promise: Promise<unknown>): void;
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
}

/** `new WebSocketPair()`: index 0 goes back to the client in the 101 response, index 1 stays here. */
export type WebSocketPairConstructor = new () => { 0: HibernatableWebSocket; 1: HibernatableWebSocket };
