import { spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Process } from "@wrenn/proto/process";
import { Sandbox } from "@wrenn/sdk";
import { request } from "undici";
import { filesByHop, TRANSFER_MB } from "./files.js";
import { TEMPLATE, withSingleHost } from "./single-host.js";
import { type Figure, percentile, timeRuns } from "./stats.js";

const RUNS = 100;

/** One hop of the exec and files path: where it starts and what it adds to the call. */
interface Hop {
  name: string;
  /** Base URL of envd's routes as this hop serves them. */
  envdUrl: string;
  headers: Record<string, string>;
}

/**
 * Exec and files hop by hop (envd alone, through the agent's proxy, through the server's REST,
 * through the SDK) on one single-host sandbox, each next to its baseline measured in the same
 * run (Node `spawn('true')`, `cp`): where a call's time goes, and which hop to fix.
 */
export async function benchIo(): Promise<Figure[]> {
  const suite = "io";
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite, name, value, unit, ...(note ? { note } : {}) });
  return withSingleHost("io", [], async ({ host, conn }, dataDir) => {
    const url = conn.apiUrl;
    const sandbox = await Sandbox.create({
      ...conn,
      template: TEMPLATE,
      diskSizeMb: TRANSFER_MB + 512,
    });
    const info = host.embedded.agent.runtime.list().find((s) => s.id === sandbox.sandboxId);
    if (!info) throw new Error("the agent does not list the sandbox");
    const agentHost = host.embedded.host;
    const hops: Hop[] = [
      {
        name: "envd",
        envdUrl: `http://${info.envdAddress}`,
        headers: info.envdAccessToken ? { "x-access-token": info.envdAccessToken } : {},
      },
      {
        name: "agent proxy",
        envdUrl: `${agentHost.url}/sandboxes/${sandbox.sandboxId}/envd`,
        headers: agentHost.headers ?? {},
      },
    ];

    // Exec: `true` through `sh -c` as the SDK runs it, one after another.
    const spawnMs = await timeRuns(RUNS, () => spawnTrue());
    const base = percentile(spawnMs, 50);
    add("Node spawn('true') p50", base, "ms", "baseline");
    const ratio = (ms: number) => `${(ms / base).toFixed(2)}× spawn`;
    for (const hop of hops) {
      const processes = createClient(
        Process,
        createConnectTransport({
          baseUrl: hop.envdUrl,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              for (const [k, v] of Object.entries(hop.headers)) req.header.set(k, v);
              return next(req);
            },
          ],
        }),
      );
      const ms = await timeRuns(RUNS, async () => {
        for await (const _ of processes.start({
          process: { cmd: "/bin/sh", args: ["-c", "true"] },
        })) {
          // drained: the run ends with the stream
        }
      });
      add(`exec 'true' via ${hop.name} p50`, percentile(ms, 50), "ms", ratio(percentile(ms, 50)));
    }
    const rest = await timeRuns(RUNS, async () => {
      const res = await request(`${url}/v1/sandboxes/${sandbox.sandboxId}/exec`, {
        method: "POST",
        headers: { "x-api-key": conn.apiKey, "content-type": "application/json" },
        body: JSON.stringify({ cmd: "true" }),
      });
      await res.body.json();
    });
    add("exec 'true' via server REST p50", percentile(rest, 50), "ms", ratio(percentile(rest, 50)));
    const sdk = await timeRuns(RUNS, async () => {
      await sandbox.commands.run("true");
    });
    add("commands.run('true') via SDK p50", percentile(sdk, 50), "ms", ratio(percentile(sdk, 50)));
    add("commands.run('true') via SDK p99", percentile(sdk, 99), "ms");

    figures.push(...(await filesByHop({ host, sandbox, conn, dataDir }, suite)));
    await sandbox.kill();
    return figures;
  });
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve());
  });
}
