import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AddressPool,
  defaultEnvdDir,
  keepHostFirewallState,
  MicroVmRuntime,
  NamespaceRuntime,
  type Runtime,
  silentLogger,
} from "@wrenn/agent";
import { Process } from "@wrenn/proto/process";
import { type Figure, msSince, percentile, round } from "./stats.js";

const TEMPLATE = "test-minimal";
/** TCG makes every VM step slow: few runs, medians. */
const RUNS = Number(process.env.WRENN_BENCH_MICROVM_RUNS || 3);
const MiB = 1024 * 1024;

async function firstExec(runtime: Runtime, id: string): Promise<void> {
  const client = createClient(
    Process,
    createConnectTransport({
      baseUrl: `http://${runtime.get(id).envdAddress}`,
      httpVersion: "1.1",
    }),
  );
  for await (const res of client.start({ process: { cmd: "true" } })) {
    const event = res.event?.event;
    if (event?.case === "end" && event.value.exitCode !== 0) throw new Error("exec failed");
  }
}

const timed = async (fn: () => Promise<unknown>) => {
  const start = process.hrtime.bigint();
  await fn();
  return msSince(start);
};

/** QEMU's resident memory, read from its pid file (0 when it is not running). */
async function qemuRssMb(agentDir: string, id: string): Promise<number> {
  const pid = (await readFile(join(agentDir, "sandboxes", id, "vm", "qemu.pid"), "utf8")).trim();
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
}

const median = (xs: number[]) => round(percentile(xs, 50), 1);

/**
 * microVM figures against the namespace runtime in the same run: create → first exec,
 * pause/resume of a 256 MiB VM, resume → first exec with lazy (mapped) and eager (read whole)
 * RAM, and the host memory of an idle VM running and paused.
 */
export async function benchMicroVm(): Promise<Figure[]> {
  const restoreHost = await keepHostFirewallState();
  const dir = await mkdtemp(join(tmpdir(), "wrenn-bench-microvm-"));
  const pool = new AddressPool("10.237.0.0/24");
  const ns = new NamespaceRuntime({
    agentDir: join(dir, "ns"),
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: pool,
  });
  const lazy = new MicroVmRuntime({
    agentDir: join(dir, "vm"),
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: pool,
  });
  const eager = new MicroVmRuntime({
    agentDir: join(dir, "vm-eager"),
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: pool,
    eagerRestore: true,
  });
  const runtimes = [ns, lazy, eager];
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite: "microvm", name, value, unit, ...(note ? { note } : {}) });
  let seq = 0;
  const spec = (what: string) => ({
    id: `bm-${what}-${++seq}`,
    template: TEMPLATE,
    vcpus: 1,
    memoryMb: 256,
    diskSizeMb: 0,
  });
  try {
    const accel = await lazy.host().then(
      (h) => h.accel,
      (err: unknown) => {
        console.error(`bench: microvm skipped: ${err instanceof Error ? err.message : err}`);
        return undefined;
      },
    );
    if (!accel) return figures;
    for (const r of runtimes) await r.adopt();
    // The first create of each builds the template, the image and the ready snapshot.
    const boot = await timed(async () => {
      const s = await lazy.create(spec("boot"));
      await lazy.destroy(s.id);
    });
    add("first create (template image + boot + ready snapshot)", round(boot, 0), "ms", accel);
    const s0 = await eager.create(spec("boot"));
    await eager.destroy(s0.id);
    const n0 = await ns.create(spec("ns"));
    await ns.destroy(n0.id);

    const nsCreate: number[] = [];
    const vmCreate: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      nsCreate.push(
        await timed(async () => {
          const s = await ns.create(spec("ns"));
          await firstExec(ns, s.id);
        }),
      );
      vmCreate.push(
        await timed(async () => {
          const s = await lazy.create(spec("vm"));
          await firstExec(lazy, s.id);
        }),
      );
    }
    add("namespace create → first exec (baseline)", median(nsCreate), "ms");
    add("microvm create from template snapshot → first exec", median(vmCreate), "ms", accel);
    add(
      "microvm / namespace create → first exec",
      round(median(vmCreate) / median(nsCreate), 1),
      "x",
    );

    for (const [label, runtime] of [
      ["lazy", lazy],
      ["eager", eager],
    ] as const) {
      const s = await runtime.create(spec(label));
      await firstExec(runtime, s.id);
      const pauses: number[] = [];
      const resumes: number[] = [];
      const resumeExec: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        pauses.push(await timed(() => runtime.pause(s.id)));
        resumes.push(await timed(() => runtime.resume(s.id)));
        await runtime.pause(s.id);
        resumeExec.push(
          await timed(async () => {
            await runtime.resume(s.id);
            await firstExec(runtime, s.id);
          }),
        );
      }
      add(`pause of a 256 MiB VM (${label} RAM)`, median(pauses), "ms");
      add(`resume of a 256 MiB VM (${label} RAM)`, median(resumes), "ms");
      add(`resume → first exec (${label} RAM)`, median(resumeExec), "ms");
      if (runtime === lazy) {
        const agentDir = join(dir, "vm");
        add(
          "host memory of an idle running 256 MiB VM (QEMU RSS)",
          round(await qemuRssMb(agentDir, s.id), 0),
          "MiB",
        );
        await runtime.pause(s.id);
        const paused = await runtime.metrics(s.id);
        add(
          "host memory of a paused VM",
          round(paused.memUsedBytes / MiB, 1),
          "MiB",
          "QEMU gone; RAM on disk",
        );
      }
    }
    return figures;
  } finally {
    for (const r of runtimes) {
      for (const s of r.list()) await r.destroy(s.id).catch(() => {});
      await r.close().catch(() => {});
    }
    await rm(dir, { recursive: true, force: true });
    await restoreHost();
  }
}
