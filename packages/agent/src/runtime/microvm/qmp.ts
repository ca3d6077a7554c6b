import { createConnection, type Socket } from "node:net";
import { AgentError } from "../../errors.js";

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** One QMP (QEMU Machine Protocol) connection: commands answered in order, events collected. */
export class QmpClient {
  private readonly socket: Socket;
  private readonly pending: Pending[] = [];
  private readonly waiters: { event: string; resolve: (data: unknown) => void }[] = [];
  private buffer = "";
  private closed: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("close", () => this.fail(new AgentError("unavailable", "QMP connection closed")));
    socket.on("error", (err) => this.fail(AgentError.from(err)));
  }

  /** Connects to a VM's QMP socket and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 5_000): Promise<QmpClient> {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new AgentError("unavailable", `QMP ${path}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(AgentError.from(err));
      });
    });
    const client = new QmpClient(socket);
    // The greeting is answered like a command: wait for it before the first real one.
    await new Promise((resolve, reject) => client.pending.push({ resolve, reject }));
    await client.execute("qmp_capabilities");
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args })}\n`);
    });
  }

  /** Resolves at the next event of this name (e.g. STOP, MIGRATION). */
  nextEvent(event: string): Promise<unknown> {
    return new Promise((resolve) => this.waiters.push({ event, resolve }));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(JSON.parse(line));
    }
  }

  // biome-ignore lint/suspicious/noExplicitAny: QMP messages are checked by shape here.
  private onMessage(msg: any): void {
    if (msg.event) {
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const waiter = this.waiters[i]!;
        if (waiter.event === msg.event) {
          this.waiters.splice(i, 1);
          waiter.resolve(msg.data);
        }
      }
      return;
    }
    const next = this.pending.shift();
    if (!next) return;
    if (msg.error) {
      next.reject(new AgentError("internal", `QMP: ${msg.error.desc ?? msg.error.class}`));
    } else next.resolve(msg.return ?? msg.QMP);
  }

  private fail(err: Error): void {
    this.closed ??= err;
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
