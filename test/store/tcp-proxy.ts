import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy for outage tests: forwards to `target`, and `cut(ms)` drops every open connection
 * and refuses new ones (closes them on accept) for `ms`, like a database or network blip.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let downUntil = 0;
  let connections = 0;
  const server: Server = createServer((client) => {
    if (Date.now() < downUntil) {
      client.destroy();
      return;
    }
    connections++;
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy did not bind');
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    /** Drop everything now and refuse connections for `ms`. */
    cut(ms: number): void {
      downUntil = Date.now() + ms;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
