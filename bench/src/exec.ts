import { createClient, type Transport } from "@connectrpc/connect";
import { Process } from "@wrenn/proto/process";
import { Sandbox } from "@wrenn/sdk";
import { request } from "undici";
import { envdDirect, envdTransport } from "./envd-transport.js";
import { withSingleHost } from "./single-host.js";
import { spawnDone } from "./speed.js";
import { type Figure, msSince, percentile } from "./stats.js";

const SPAWN_TRUE = "Node spawn('true')";
const ENVD = "envd direct (Connect, sandbox address)";
const AGENT = "agent envd proxy (Connect)";
const SERVER = "server POST /exec (undici)";
const SDK = "SDK commands.run('true')";
const ROUNDS = Number(process.env.WRENN_BENCH_EXEC_ROUNDS || 60);
const WARMUP = 5;

/** One way of running `true` (through `/bin/sh -c`, as `commands.run` does). */
interface Hop {
  name: string;
  run: () => Promise<void>;
}

/**
 * A Connect Process.start of `sh -c true` over `transport`, to its end. Returns when the `start`
 * event came (the process was spawned) relative to the whole call.
 */
async function startTrue(transport: Transport): Promise<{ spawnedMs: number }> {
  const client = createClient(Process, transport);
  const begin = process.hrtime.bigint();
  let spawnedMs = Number.NaN;
  for await (const { event } of client.start({
    process: { cmd: "/bin/sh", args: ["-c", "true"] },
  })) {
    const e = event?.event;
    if (e?.case === "start") spawnedMs = msSince(begin);
    if (e?.case === "end" && e.value.exitCode !== 0) throw new Error(`true: ${e.value.status}`);
  }
  return { spawnedMs };
}

/**
 * Issue #12's `run('true')`, hop by hop: the same command timed from each layer of the path
 * (the SDK, the server's REST route, the agent's envd proxy, envd itself on the sandbox's
 * address) beside Node's own spawn, in interleaved rounds so that a noisy machine slows all of
 * them alike. Each hop's cost is the difference to the next one in; ratios, never asserted.
 */
export async function benchExec(): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error("the exec bench needs root (real sandboxes)");
  return withSingleHost("exec", undefined, async ({ conn, host }) => {
    const sandbox = await Sandbox.create(conn);
    // A second sandbox whose envd lost its spawn helper: it starts processes with Node's spawn,
    // as envd did before the helper (and does wherever none was built).
    const nodeSpawned = await Sandbox.create(conn);
    await nodeSpawned.commands.run(
      'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = wrenn-spawn ] && kill -9 "$(basename "$p")"; done; true',
      // The shell is the helper's own child: its exit status goes with the helper.
      { user: "root", throwOnError: false },
    );
    const agentHost = host.embedded.host;
    const direct = (id: string) => envdDirect(host.embedded.agent.runtime.get(id));
    const helperDirect = direct(sandbox.sandboxId);
    const nodeDirect = direct(nodeSpawned.sandboxId);
    const proxied = envdTransport(
      `${agentHost.url}/sandboxes/${sandbox.sandboxId}/envd`,
      agentHost.headers ?? {},
    );
    const execUrl = `${conn.apiUrl}/v1/sandboxes/${sandbox.sandboxId}/exec`;
    const spawnedAt: Record<"helper" | "node", number[]> = { helper: [], node: [] };
    /** The hops one run('true') crosses, innermost first. */
    const chain = new Set([ENVD, AGENT, SERVER, SDK]);
    const hops: Hop[] = [
      { name: SPAWN_TRUE, run: () => spawnDone("true", []) },
      { name: "Node spawn('sh -c true')", run: () => spawnDone("/bin/sh", ["-c", "true"]) },
      {
        name: `${ENVD}, Node's spawn in envd`,
        run: async () => void spawnedAt.node.push((await startTrue(nodeDirect)).spawnedMs),
      },
      {
        name: ENVD,
        run: async () => void spawnedAt.helper.push((await startTrue(helperDirect)).spawnedMs),
      },
      { name: AGENT, run: async () => void (await startTrue(proxied)) },
      {
        name: SERVER,
        run: async () => {
          const res = await request(execUrl, {
            method: "POST",
            headers: { "x-api-key": conn.apiKey, "content-type": "application/json" },
            body: JSON.stringify({ cmd: "true" }),
          });
          const body = (await res.body.json()) as { exit_code?: number };
          if (res.statusCode !== 200 || body.exit_code !== 0) throw new Error("exec failed");
        },
      },
      { name: SDK, run: async () => void (await sandbox.commands.run("true")) },
      {
        name: `${SDK}, Node's spawn in envd`,
        run: async () => void (await nodeSpawned.commands.run("true")),
      },
    ];
    const samples = new Map<string, number[]>(hops.map((h) => [h.name, []]));
    for (let round = 0; round < ROUNDS + WARMUP; round++) {
      for (const hop of hops) {
        const start = process.hrtime.bigint();
        await hop.run();
        if (round >= WARMUP) samples.get(hop.name)!.push(msSince(start));
      }
    }
    // No kill here: withSingleHost destroys both (a DELETE on a loaded machine can time out).

    const p50 = (name: string) => percentile(samples.get(name)!, 50);
    const spawnTrue = p50(SPAWN_TRUE);
    const figures: Figure[] = [];
    let inner: number | undefined;
    for (const hop of hops) {
      const value = p50(hop.name);
      const parts = [`${(value / spawnTrue).toFixed(2)}× Node spawn('true')`];
      if (chain.has(hop.name)) {
        if (inner !== undefined) parts.push(`this hop +${(value - inner).toFixed(2)} ms`);
        inner = value;
      }
      figures.push({
        suite: "exec",
        name: `${hop.name} p50`,
        value,
        unit: "ms",
        note: parts.join("; "),
      });
    }
    figures.push(
      {
        suite: "exec",
        name: "envd direct: request → start event p50",
        value: percentile(spawnedAt.helper, 50),
        unit: "ms",
        note: "the spawn done; the rest is the process running, exiting and its end event",
      },
      {
        suite: "exec",
        name: "envd direct, Node's spawn in envd: request → start event p50",
        value: percentile(spawnedAt.node, 50),
        unit: "ms",
      },
    );
    return figures;
  });
}
