/** What a Deepgram fake session (listen v1, listen v2, speak) gets from the server around it. */
export interface SessionContext {
  /** The upgrade request's URL (path and query). */
  readonly url: URL;
  readonly requestId: string;
  /** A JSON text frame. */
  send(message: object): void;
  sendBinary(data: Uint8Array): void;
  /** A close frame with this code (none: a close without status, seen as 1005). */
  close(code?: number, reason?: string): void;
  /** Drop the TCP connection without a close frame (the client sees 1006). */
  terminate(): void;
  readonly open: boolean;
  /** Listen sessions call this per recognised word; true: the control asked to drop the connection now. */
  wordHeard(): boolean;
}

export interface FakeSession {
  onText(text: string): void;
  onBinary(data: Uint8Array): void;
  /** The socket closed (either side): stop timers. */
  onClose(): void;
}

/** Seconds with millisecond precision, as Deepgram writes them. */
export const seconds = (s: number) => Math.round(s * 1000) / 1000;

export function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
