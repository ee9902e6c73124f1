import type { RawData, WebSocket } from 'ws';
import type { TalkTransport } from '../../shared/talk/transport';
import type { TalkHost } from './talk-host';

/** The browser path of a talk call on a media node (the same as on the edge). */
export const WEB_TALK_PATH = /^\/v1\/talk\/web\/ctx\/([^/]+)\/?$/;
/** WebSocket close reasons are limited to 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * A `ws` socket as a TalkTransport, wired to the node's talk host: binary messages are talk frames, text
 * messages are refused with an Error (the protocol is binary), and the socket's end is the connection's.
 * Liveness comes from the listener, which pings every WebSocket and terminates one that missed a pong:
 * that close counts as a drop (the call waits for the client to resume).
 */
export function serveTalkWebSocket(host: TalkHost, contextId: string, ws: WebSocket): void {
  const transport: TalkTransport = {
    send(frame) {
      if (ws.readyState === ws.OPEN) ws.send(frame, { binary: true });
    },
    close(code, reason) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    },
    bufferedAmount: () => ws.bufferedAmount,
  };
  const connection = host.connect(contextId, transport);
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (!isBinary) return connection.receiveText();
    connection.receive(asBytes(data));
  });
  ws.once('close', () => connection.disconnected());
}

/** `ws` hands a Buffer (or fragments, or an ArrayBuffer, depending on binaryType): one Uint8Array either way. */
function asBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.byteLength <= maxBytes) return text;
  // Cut on a character boundary: a lone continuation byte would make the close frame invalid.
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
