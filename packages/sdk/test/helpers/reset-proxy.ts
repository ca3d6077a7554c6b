import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A fake TCP proxy in front of the real server that resets the first `resets` connections
 * (RST, as a crashed or overloaded peer would) and pipes every later one through.
 */
export class ResettingProxy {
  /** Connections accepted so far (reset or piped). */
  connections = 0;
  /** Called with each chunk a piped client sends (and its socket), once it has been passed on. */
  onClientData: ((chunk: Buffer, client: Socket) => void) | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor(
    private readonly target: { host: string; port: number },
    public resets: number,
  ) {
    this.server = createServer((client) => {
      this.connections++;
      this.sockets.add(client);
      client.on("close", () => this.sockets.delete(client));
      client.on("error", () => {});
      if (this.connections <= this.resets) {
        client.resetAndDestroy();
        return;
      }
      const upstream = connect(this.target.port, this.target.host);
      this.sockets.add(upstream);
      upstream.on("close", () => this.sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      client.on("data", (chunk: Buffer) => this.onClientData?.(chunk, client));
    });
  }

  /** Listens on a loopback port in front of `targetUrl`. */
  static async start(targetUrl: string, resets: number): Promise<ResettingProxy> {
    const target = new URL(targetUrl);
    const proxy = new ResettingProxy({ host: target.hostname, port: Number(target.port) }, resets);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("proxy not listening");
    return `http://127.0.0.1:${address.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
