import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A fake TCP proxy in front of the real server that resets the first `resets` connections
 * (RST, as a crashed or overloaded peer would) and pipes every later one through, until
 * `freeze()` makes it a server that has stopped answering.
 */
export class ResettingProxy {
  /** Connections accepted so far (reset or piped). */
  connections = 0;
  /** Called with each chunk a piped client sends (and its socket), once it has been passed on. */
  onClientData: ((chunk: Buffer, client: Socket) => void) | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly piped = new Set<[Socket, Socket]>();
  private frozen = false;
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
      if (this.frozen) return; // accepted, as the kernel does for a stopped process, and no more
      const upstream = connect(this.target.port, this.target.host);
      const pair: [Socket, Socket] = [client, upstream];
      this.piped.add(pair);
      this.sockets.add(upstream);
      upstream.on("close", () => {
        this.sockets.delete(upstream);
        this.piped.delete(pair);
      });
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

  /** From now on nothing passes either way and new connections go nowhere; all stay open. */
  freeze(): void {
    this.frozen = true;
    for (const [client, upstream] of this.piped) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
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
