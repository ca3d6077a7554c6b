import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AddressPool,
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  type SandboxInfo,
  silentLogger,
} from "@wrenn/agent";
import { Process } from "@wrenn/proto/process";
import { type Figure, msSince, percentile } from "./stats.js";

const TEMPLATE = "test-minimal";
const FORKS = 5;
const RUNS = 3;
/** Written in the source first, so the frozen copy has something to copy. */
const WRITTEN_MIB = 32;

/** Runs a shell command in a sandbox through its envd (directly, with its token). */
async function sh(info: SandboxInfo, script: string): Promise<void> {
  const client = createClient(
    Process,
    createConnectTransport({ baseUrl: `http://${info.envdAddress}`, httpVersion: "1.1" }),
  );
  const headers = info.envdAccessToken ? { "x-access-token": info.envdAccessToken } : undefined;
  let code = -1;
  for await (const res of client.start(
    { process: { cmd: "/bin/sh", args: ["-c", script] } },
    headers ? { headers } : {},
  )) {
    if (res.event?.event.case === "end") code = res.event.event.value.exitCode;
  }
  if (code !== 0) throw new Error(`${script} exited ${code}`);
}

/**
 * Fork in the namespace runtime: how long the source stands still (against a plain pause and
 * resume of it, the cheapest stop there is), and a fork of five against five creates.
 */
export async function benchFork(): Promise<Figure[]> {
  const restoreHost = await keepHostFirewallState();
  const dir = await mkdtemp(join(tmpdir(), "wrenn-bench-fork-"));
  const net16 = process.env.WRENN_SANDBOX_CIDR?.split(".").slice(0, 2).join(".") || "10.238";
  const runtime = new NamespaceRuntime({
    agentDir: dir,
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: new AddressPool(`${net16}.200.0/24`),
  });
  const spec = { template: TEMPLATE, vcpus: 1, memoryMb: 128, diskSizeMb: 256 };
  let seq = 0;
  try {
    await runtime.adopt();
    const source = await runtime.create({ id: "bfork-src", ...spec });
    await sh(source, `head -c ${WRITTEN_MIB * 1024 * 1024} /dev/urandom > /tmp/data`);
    const pauses: number[] = [];
    const stops: number[] = [];
    const forks: number[] = [];
    const creates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      let start = process.hrtime.bigint();
      await runtime.pause(source.id);
      await runtime.resume(source.id);
      stops.push(msSince(start));

      const targets = Array.from({ length: FORKS }, () => ({ id: `bfork-${++seq}` }));
      start = process.hrtime.bigint();
      const made = await runtime.fork(source.id, targets);
      forks.push(msSince(start));
      pauses.push(made.sourcePauseMs);
      for (const t of targets) await runtime.destroy(t.id);

      const ids = Array.from({ length: FORKS }, () => `bfork-${++seq}`);
      start = process.hrtime.bigint();
      await Promise.all(ids.map((id) => runtime.create({ id, ...spec })));
      creates.push(msSince(start));
      for (const id of ids) await runtime.destroy(id);
    }
    const pause = percentile(pauses, 50);
    const stop = percentile(stops, 50);
    const fork = percentile(forks, 50);
    const create = percentile(creates, 50);
    const suite = "fork";
    return [
      {
        suite,
        name: `source pause, fork of ${FORKS} (${WRITTEN_MIB} MiB written) p50`,
        value: pause,
        unit: "ms",
      },
      { suite, name: "pause + resume of the source p50 (baseline)", value: stop, unit: "ms" },
      { suite, name: "source pause / pause + resume", value: pause / stop, unit: "x" },
      { suite, name: `fork of ${FORKS} p50`, value: fork, unit: "ms" },
      { suite, name: `${FORKS} concurrent creates p50 (baseline)`, value: create, unit: "ms" },
      { suite, name: `fork of ${FORKS} / ${FORKS} creates`, value: fork / create, unit: "x" },
    ];
  } finally {
    for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
    await runtime.close();
    await rm(dir, { recursive: true, force: true });
    await restoreHost();
  }
}
