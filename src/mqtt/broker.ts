import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';

export interface EmbeddedBroker {
  /** `mqtt://host:port` to connect to (loopback when listening on every address). */
  url: string;
  port: number;
  /** The listening TCP server. */
  server: Server;
  stop(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  logger: Logger;
}

/**
 * An in-process aedes broker on a TCP port, so a fresh clone is a complete node that
 * `mosquitto_pub` can talk to. aedes speaks MQTT 3.1.1 only (not 5): the node connects to it with
 * protocol 4, and MQTT 5 response topics need an external broker such as Mosquitto.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const logger = options.logger.child({ part: 'broker' });
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    // Commands and replies are small packets: waiting to coalesce them (Nagle) costs tens of ms each.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  broker.on('clientError', (client, err) => logger.debug({ client: client.id, err: err.message }, 'broker client error'));
  broker.on('connectionError', (_client, err) => logger.debug({ err: err.message }, 'broker connection error'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Once listening, a server error (EMFILE when accepting a connection) must not crash the node:
  // without a listener, an 'error' event is thrown. The server goes on listening.
  server.on('error', (err) => logger.error({ err }, 'embedded broker server error'));
  const { port } = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  let stopped: Promise<void> | null = null;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    stop() {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await closed;
        await new Promise<void>((resolve) => broker.close(() => resolve()));
      })();
      return stopped;
    },
  };
}
