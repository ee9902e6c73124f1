import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/** An address:port pair as the socket saw or will use it. */
export interface SipEndpoint {
  readonly address: string;
  readonly port: number;
}

/** One datagram socket for SIP: the stack is written against this, so tests can put a fake in. */
export interface SipTransport {
  readonly localAddress: string;
  readonly localPort: number;
  /** Fire and forget: a send error is logged, never thrown (UDP gives no delivery guarantee anyway). */
  send(data: Uint8Array, to: SipEndpoint): void;
  onMessage(listener: (data: Uint8Array, from: SipEndpoint) => void): void;
  close(): Promise<void>;
}

export interface UdpTransportOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** Binds a UDP socket (IPv6 when the host is an IPv6 literal) and resolves once it listens. */
export async function bindUdpTransport(options: UdpTransportOptions): Promise<SipTransport> {
  const log = options.log ?? (() => undefined);
  const socket: Socket = createSocket({ type: options.host.includes(':') ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port, options.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  // After binding, socket errors (ICMP unreachable surfacing on some platforms) must not crash the process.
  socket.on('error', (error) => log('warn', 'SIP UDP socket error', { error: error.message }));
  const bound = socket.address();
  const listeners: ((data: Uint8Array, from: SipEndpoint) => void)[] = [];
  let closed = false;

  socket.on('message', (message: Buffer, remote: RemoteInfo) => {
    const data = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    const from = { address: remote.address, port: remote.port };
    for (const listener of listeners) {
      try {
        listener(data, from);
      } catch (error) {
        log('error', 'SIP datagram listener threw', { error: String(error), from: `${from.address}:${from.port}` });
      }
    }
  });

  return {
    localAddress: bound.address,
    localPort: bound.port,
    send(data, to) {
      if (closed) return;
      socket.send(data, to.port, to.address, (error) => {
        if (error) log('warn', 'SIP datagram send failed', { error: error.message, to: `${to.address}:${to.port}` });
      });
    },
    onMessage(listener) {
      listeners.push(listener);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
