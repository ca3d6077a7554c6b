import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket } from "node:tls";

/**
 * A fake for what fronts a Wrenn server in production (a wildcard DNS name and a TLS-terminating
 * proxy for `*.<domain>`), reached as an HTTP CONNECT proxy so a client needs no resolver entry:
 * `CONNECT <anything>.<domain>:443` is answered with TLS (a self-signed `*.<domain>` certificate)
 * and the plain bytes go on to the server, Host header untouched; `CONNECT 127.0.0.1:<port>` is
 * piped as is. Nothing else is accepted, so no traffic can leave this machine.
 */
export class FrontProxy {
  /** Every CONNECT target accepted, `host:port`. */
  readonly tunnels: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly dir: string,
  ) {}

  static async start(domain: string, serverPort: number): Promise<FrontProxy> {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-front-proxy-"));
    const made = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        `/CN=*.${domain}`,
        "-addext",
        `subjectAltName=DNS:*.${domain}`,
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
      ],
      { cwd: dir, encoding: "utf8" },
    );
    if (made.status !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`openssl: ${made.stderr}`);
    }
    const [key, cert] = await Promise.all([
      readFile(join(dir, "key.pem")),
      readFile(join(dir, "cert.pem")),
    ]);
    const server = createServer();
    const proxy = new FrontProxy(server, dir);
    server.on("connection", (client) => proxy.accept(client, domain, serverPort, { key, cert }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("front proxy not listening");
    return `http://127.0.0.1:${address.port}`;
  }

  private accept(
    client: Socket,
    domain: string,
    serverPort: number,
    tls: { key: Buffer; cert: Buffer },
  ): void {
    this.track(client);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      client.pause();
      const match = /^CONNECT ([^\s:]+):(\d+) HTTP\/1\.[01]\r\n/i.exec(head.toString("latin1"));
      const host = match?.[1]?.toLowerCase() ?? "";
      const port = Number(match?.[2]);
      const named = host.endsWith(`.${domain}`) && port === 443;
      if (!named && !(host === "127.0.0.1" && port > 0)) {
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        return;
      }
      this.tunnels.push(`${host}:${port}`);
      const upstream = this.track(connect(named ? serverPort : port, "127.0.0.1"));
      upstream.setNoDelay(true);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      // Bytes sent ahead of our answer (a client that did not wait): they start the tunnel.
      const rest = head.subarray(end + 4);
      if (rest.length > 0) client.unshift(rest);
      const front = named ? this.track(new TLSSocket(client, { isServer: true, ...tls })) : client;
      front.pipe(upstream).pipe(front);
      for (const s of [front, upstream, client]) {
        s.on("error", () => {
          front.destroy();
          upstream.destroy();
          client.destroy();
        });
      }
      if (!named) client.resume();
    };
    client.on("data", onData);
    client.on("error", () => client.destroy());
  }

  private track<T extends Socket>(socket: T): T {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    return socket;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }
}
