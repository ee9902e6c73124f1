import type { WebSocket } from 'ws';
import type { CarrierLink } from '../../shared/telephony/carrier';

/** A `ws` WebSocket as a CarrierLink: binary frames arrive as bytes, text frames as strings. */
export function wsCarrierLink(socket: WebSocket): CarrierLink {
  return {
    onMessage(listener) {
      socket.on('message', (data: Buffer, isBinary: boolean) => listener(isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.toString('utf8')));
    },
    onClose(listener) {
      socket.on('close', () => listener(false));
      socket.on('error', () => listener(true));
    },
    send(payload) {
      if (socket.readyState === socket.OPEN) socket.send(payload);
    },
    close(code, reason) {
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
    },
    get open() {
      return socket.readyState === socket.OPEN;
    },
    bufferedAmount: () => socket.bufferedAmount,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
}
