import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

export interface RtpPortPoolOptions {
  /** The address RTP sockets bind to (the SIP listener's host). */
  readonly host: string;
  /** The port range, inclusive; only even ports carry RTP (RFC 3550 §11: RTCP takes the odd one above). */
  readonly min: number;
  readonly max: number;
}

export interface RtpPort {
  readonly socket: Socket;
  readonly port: number;
  /** Closes the socket (if still open) and frees the port. Idempotent. */
  release(): void;
}

/** Bind failures that mean "someone else has this port": try the next one. */
const TAKEN = new Set(['EADDRINUSE', 'EACCES']);

/**
 * UDP sockets for RTP, one per call, on even ports of a fixed range (what firewalls and trunk configs open).
 * Allocation walks the range round-robin from where the last one stopped, so a port just released is not
 * handed out again at once (late packets of the old call would land in the new one). A port bound by
 * another process is skipped. The port frees itself when its socket closes, however that happens.
 */
export function createRtpPortPool(options: RtpPortPoolOptions) {
  const first = options.min % 2 === 0 ? options.min : options.min + 1;
  const last = Math.min(options.max, 65534);
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1024 || first > last) {
    throw new RangeError(`RTP port range ${options.min}-${options.max} holds no even port between 1024 and 65534: set RTP_PORT_MIN/RTP_PORT_MAX to a range like 10000-20000`);
  }
  const capacity = Math.floor((last - first) / 2) + 1;
  const type = isIPv6(options.host) ? 'udp6' : 'udp4';
  const inUse = new Set<number>();
  let cursor = 0;

  function bind(port: number): Promise<Socket | 'taken'> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type, reuseAddr: false });
      const onError = (error: NodeJS.ErrnoException) => {
        socket.close();
        if (error.code && TAKEN.has(error.code)) resolve('taken');
        else reject(error);
      };
      socket.once('error', onError);
      // exclusive: a cluster worker must own its port, not share the primary's handle.
      socket.bind({ port, address: options.host, exclusive: true }, () => {
        socket.off('error', onError);
        // Until the RTP link listens, a socket error (an ICMP-induced one) must not be an uncaught 'error' event.
        socket.on('error', () => undefined);
        resolve(socket);
      });
    });
  }

  return {
    /** A socket bound on the next free even port; undefined when every port of the range is taken. */
    async allocate(): Promise<RtpPort | undefined> {
      for (let tried = 0; tried < capacity; tried++) {
        const port = first + 2 * cursor;
        cursor = (cursor + 1) % capacity;
        if (inUse.has(port)) continue;
        // Held while binding, so a concurrent allocate does not try the same port.
        inUse.add(port);
        let bound: Socket | 'taken';
        try {
          bound = await bind(port);
        } catch (error) {
          inUse.delete(port);
          throw error;
        }
        if (bound === 'taken') {
          inUse.delete(port);
          continue;
        }
        const socket = bound;
        let released = false;
        const free = () => {
          if (released) return;
          released = true;
          inUse.delete(port);
        };
        socket.once('close', free);
        return {
          socket,
          port,
          release() {
            free();
            try {
              socket.close();
            } catch {
              // Already closed (by the RTP link): nothing left to do.
            }
          },
        };
      }
      return undefined;
    },
    get inUse() {
      return inUse.size;
    },
    capacity,
  };
}

export type RtpPortPool = ReturnType<typeof createRtpPortPool>;
