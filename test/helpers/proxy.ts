import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  /** `mqtt://127.0.0.1:<port>`: what the node is told its broker is. */
  url: string;
  port: number;
  /** A network outage: cuts every connection (no DISCONNECT is sent) and refuses new ones. */
  cut(): Promise<void>;
  /** A dead link: the connections stay open but every byte is dropped (no FIN, no RST). */
  freeze(): void;
  /** Ends the outage: accepts connections again on the same port. */
  restore(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A TCP relay between a node and its broker, so a test can take the network away and give it back
 * at a moment of its choosing, the way a Wi-Fi drop does, while the broker itself keeps running.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  let frozen = false;

  const listen = async (): Promise<void> => {
    frozen = false;
    const next = createServer((inbound) => {
      const outbound = connect(target.port, target.host);
      for (const socket of [inbound, outbound]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
      const relay = (from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => {
          if (!frozen) to.write(chunk);
        });
      };
      relay(inbound, outbound);
      relay(outbound, inbound);
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => resolve());
    });
    port = (next.address() as AddressInfo).port;
    server = next;
  };
  const close = async (): Promise<void> => {
    const current = server;
    server = null;
    const closed = current ? new Promise<void>((resolve) => current.close(() => resolve())) : Promise.resolve();
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  await listen();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    cut: close,
    freeze: () => {
      frozen = true;
    },
    restore: listen,
    stop: close,
  };
}
