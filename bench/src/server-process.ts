import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { WarmPoolSetting } from "@wrenn/agent";
import { type BenchServer, closeServer, startServer, TEMPLATE } from "./single-host.js";

// A single-host server in a process of its own, as `npm start` runs it: the SDK client under
// test then does not share the server's thread (in one process, the client's CPU counted
// against the server). The parent asks the child, over IPC, what only the server knows.

type Request = { id: number; op: "warmPoolIdle" | "close" };
/** `ready`: for warmPoolIdle, the sandboxes the pool then holds. */
type Reply = { id: number; ready?: number; error?: string };
type Started = {
  started: { conn: { apiUrl: string; apiKey: string }; agentDir: string; rootfs: string };
};

/** The parent's handle on a server in a child process. */
export interface ServerProcess {
  conn: { apiUrl: string; apiKey: string };
  agentDir: string;
  /** The default template's root filesystem (for the bare bwrap baseline). */
  rootfs: string;
  /** Resolves once the server's warm pool builds nothing, with the sandboxes it then holds. */
  warmPoolIdle(): Promise<number>;
  /** Removes the server's sandboxes and stops it; the child exits. */
  close(): Promise<void>;
}

/** Starts {@link startServer}'s server (same settings) in a child process. */
export async function startServerProcess(
  dataDir: string,
  warmPool?: WarmPoolSetting,
): Promise<ServerProcess> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, WRENN_BENCH_SERVER: JSON.stringify({ dataDir, warmPool }) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<
    number,
    { resolve: (ready: number) => void; reject: (err: Error) => void }
  >();
  let next = 0;
  let exited: Error | undefined;
  const started = new Promise<Started["started"]>((resolve, reject) => {
    child.on("message", (msg: Started | Reply) => {
      if ("started" in msg) return resolve(msg.started);
      const call = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) call?.reject(new Error(`bench server: ${msg.error}`));
      else call?.resolve(msg.ready ?? 0);
    });
    child.once("exit", (code, signal) => {
      exited = new Error(`bench server exited (${code ?? signal})`);
      reject(exited);
      for (const call of pending.values()) call.reject(exited);
      pending.clear();
    });
  });
  const ask = (op: Request["op"]) =>
    new Promise<number>((resolve, reject) => {
      if (exited) return reject(exited);
      const id = next++;
      pending.set(id, { resolve, reject });
      child.send({ id, op } satisfies Request);
    });
  try {
    const info = await started;
    return {
      ...info,
      warmPoolIdle: () => ask("warmPoolIdle"),
      close: async () => {
        await ask("close");
        await exitOf(child);
      },
    };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** The child: serves until the parent says close, or goes away. */
async function serve(setting: { dataDir: string; warmPool?: WarmPoolSetting }): Promise<void> {
  const server: BenchServer = await startServer(setting.dataDir, setting.warmPool);
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= closeServer(server.host);
    return closing;
  };
  // The parent died: its sandboxes must not outlive it.
  process.once("disconnect", () => void close().finally(() => process.exit(0)));
  process.on("message", async ({ id, op }: Request) => {
    try {
      if (op === "warmPoolIdle") {
        await server.runtime.warmPoolIdle();
        process.send?.({ id, ready: server.runtime.warmPoolSize } satisfies Reply);
      } else {
        await close();
        process.send?.({ id } satisfies Reply);
      }
    } catch (err) {
      process.send?.({ id, error: (err as Error).message } satisfies Reply);
    }
    if (op === "close") process.disconnect();
  });
  process.send?.({
    started: {
      conn: server.conn,
      agentDir: server.agentDir,
      rootfs: server.runtime.templateStore.rootfsDir(TEMPLATE),
    },
  } satisfies Started);
}

if (process.env.WRENN_BENCH_SERVER && process.send) {
  await serve(JSON.parse(process.env.WRENN_BENCH_SERVER));
}
