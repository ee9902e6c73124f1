import { createSocket, type Socket } from 'node:dgram';
import { parseSipMessage, type SipMessage } from '../../../shared/telephony/sip/message';
import { SipError } from '../../../shared/telephony/sip/sip-error';

/** A raw UDP SIP peer for the stack tests: sends crafted datagrams, collects and parses what comes back. */
export interface Peer {
  readonly port: number;
  send(text: string | Uint8Array, port: number): void;
  /** The first not yet taken message matching `match`, waiting up to `timeoutMs`. */
  next<T extends SipMessage = SipMessage>(match: (message: SipMessage) => boolean, timeoutMs?: number): Promise<T>;
  /** Every message received so far that matches (not consuming). */
  seen(match: (message: SipMessage) => boolean): SipMessage[];
  close(): Promise<void>;
}

export async function createPeer(): Promise<Peer> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const received: SipMessage[] = [];
  const taken = new Set<SipMessage>();
  let wake: () => void = () => undefined;
  socket.on('message', (data) => {
    const message = parseSipMessage(new Uint8Array(data));
    if (message instanceof SipError) throw new Error(`the stack sent an unparseable datagram: ${message.message}`);
    received.push(message);
    wake();
  });
  return {
    port: socket.address().port,
    send(text, port) {
      socket.send(typeof text === 'string' ? Buffer.from(text) : text, port, '127.0.0.1');
    },
    async next<T extends SipMessage>(match: (message: SipMessage) => boolean, timeoutMs = 3000): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        const found = received.find((message) => !taken.has(message) && match(message));
        if (found) {
          taken.add(found);
          return found as T;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timed out waiting for a SIP message');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => { clearTimeout(timer); resolve(); };
        });
      }
    },
    seen: (match) => received.filter(match),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
