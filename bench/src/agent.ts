import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { freemem, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AddressPool,
  type Agent,
  createAgent,
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import { HostAgentService } from "@wrenn/proto/agent";
import { Process } from "@wrenn/proto/process";
import { asUser, envdDirect, envdTransport } from "./envd-transport.js";
import { sandboxPss } from "./pss.js";
import { type Figure, msSince, percentile, timeRuns } from "./stats.js";

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const TEMPLATE = "test-minimal";
const SEQUENTIAL = 30;
const CONCURRENT = 20;
const CAPACITY_MAX = Number(process.env.WRENN_BENCH_CAPACITY_MAX || 200);
/** Capacity stops when a create takes longer than this, */
const CAPACITY_CREATE_MS = 5_000;
/** or the agent takes longer than this to answer ListSandboxes, */
const CAPACITY_ANSWER_MS = 1_000;
/** or the host has less memory than this left. */
const CAPACITY_MIN_FREE = 4 * 1024 * MiB;

/** One agent (HTTP/1.1 on loopback) over its own state dir and address range. */
async function startAgent(agentDir: string, cidr: string, warmPool: number) {
  const runtime = new NamespaceRuntime({
    agentDir,
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: new AddressPool(cidr),
    warmPool: warmPool > 0 ? [{ template: TEMPLATE, size: warmPool }] : [],
  });
  const agent: Agent = createAgent({
    config: { agentDir, token: undefined },
    runtime,
    logger: silentLogger(),
  });
  await runtime.templateStore.ensureTemplate(TEMPLATE);
  await agent.start();
  const server = await agent.listen(0, "127.0.0.1");
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  const rpc = createClient(HostAgentService, transport);
  let seq = 0;
  const envdVia = (id: string) =>
    createClient(Process, envdTransport(`${server.url}/sandboxes/${id}/envd`, asUser()));
  return {
    agent,
    runtime,
    rpc,
    envdVia,
    newId: (what: string) => `b${warmPool}-${what}-${++seq}`,
    /** Tries every sandbox; throws all failures together at the end. */
    async destroyAll() {
      const errors: unknown[] = [];
      for (const s of runtime.list()) await runtime.destroy(s.id).catch((e) => errors.push(e));
      if (errors.length > 0) throw new AggregateError(errors, `${errors.length} destroy(s) failed`);
    },
    async close() {
      try {
        await this.destroyAll();
      } finally {
        await agent.close();
      }
    },
  };
}
type BenchAgent = Awaited<ReturnType<typeof startAgent>>;

async function execTrue(client: ReturnType<typeof createClient<typeof Process>>): Promise<void> {
  for await (const res of client.start({ process: { cmd: "true" } })) {
    const event = res.event?.event;
    if (event?.case === "end" && event.value.exitCode !== 0) {
      throw new Error(`true exited ${event.value.exitCode}`);
    }
  }
}

/**
 * CreateSandbox over Connect, then `true` through the agent's envd proxy: what a client sees.
 * Returns how long the CreateSandbox call alone took.
 */
async function createAndExec(a: BenchAgent, id: string): Promise<number> {
  const start = process.hrtime.bigint();
  await a.rpc.createSandbox({ sandboxId: id, template: TEMPLATE });
  const createMs = msSince(start);
  await execTrue(a.envdVia(id));
  return createMs;
}

/** Sum of PSS over the processes in the sandbox's pids cgroup (`wrenn/<resource id>`). */
async function memAvailable(): Promise<number> {
  const text = await readFile("/proc/meminfo", "utf8");
  const kb = /^MemAvailable:\s+(\d+)/m.exec(text)?.[1];
  return kb ? Number(kb) * 1024 : freemem();
}

/** The agent installs its firewall and turns ip_forward on; the bench puts both back. */

export async function benchAgent(): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error("the agent bench needs root (namespaces, mounts)");
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite: "agent", name, value, unit, ...(note ? { note } : {}) });
  const ratio = (value: number, base: number, what: string) =>
    `${(value / base).toFixed(1)}× ${what}`;
  const restoreHost = await keepHostFirewallState();
  const dirs: string[] = [];
  const agents: BenchAgent[] = [];
  const start = async (cidr: string, pool: number) => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-bench-agent-"));
    dirs.push(dir);
    const a = await startAgent(dir, cidr, pool);
    agents.push(a);
    return { a, dir };
  };
  try {
    // Outside 10.213/16, where the test suites pick their ranges: a bench beside them never collides.
    const { a: warm } = await start("10.214.0.0/22", 2);
    const { a: cold, dir: coldDir } = await start("10.214.4.0/22", 0);

    // Baseline: bubblewrap alone running `true` in the same root, no agent, no envd.
    const rootfs = cold.runtime.templateStore.rootfsDir(TEMPLATE);
    const bwrap = await timeRuns(SEQUENTIAL, async () => {
      await exec("bwrap", [
        "--ro-bind",
        rootfs,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--unshare-all",
        "true",
      ]);
    });
    const bwrapP50 = percentile(bwrap, 50);
    add("bare bwrap true p50", bwrapP50, "ms", "baseline");

    // Warm: each create finds the pool refilled (arrivals slower than one refill, ~0.5 s here).
    const warmRuns: number[] = [];
    const warmCreates: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      await warm.runtime.warmPoolIdle();
      const id = warm.newId("seq");
      const t = process.hrtime.bigint();
      warmCreates.push(await createAndExec(warm, id));
      warmRuns.push(msSince(t));
      await warm.runtime.destroy(id);
    }
    const warmP50 = percentile(warmRuns, 50);
    add("create→first exec p50 (warm pool)", warmP50, "ms", ratio(warmP50, bwrapP50, "bwrap"));
    add("create→first exec p99 (warm pool)", percentile(warmRuns, 99), "ms");
    add("CreateSandbox RPC alone p50 (warm pool)", percentile(warmCreates, 50), "ms", "claim");

    const coldRuns: number[] = [];
    const coldCreates: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const id = cold.newId("seq");
      const t = process.hrtime.bigint();
      coldCreates.push(await createAndExec(cold, id));
      coldRuns.push(msSince(t));
      await cold.runtime.destroy(id);
    }
    const coldP50 = percentile(coldRuns, 50);
    add("create→first exec p50 (cold)", coldP50, "ms", ratio(coldP50, bwrapP50, "bwrap"));
    add("create→first exec p99 (cold)", percentile(coldRuns, 99), "ms");
    add("CreateSandbox RPC alone p50 (cold)", percentile(coldCreates, 50), "ms", "envd ready");

    // Pause/resume and exec round trips on one sandbox.
    const id = cold.newId("rt");
    await cold.rpc.createSandbox({ sandboxId: id, template: TEMPLATE });
    const pauses: number[] = [];
    const resumes: number[] = [];
    for (let i = 0; i < 20; i++) {
      let t = process.hrtime.bigint();
      await cold.rpc.pauseSandbox({ sandboxId: id });
      pauses.push(msSince(t));
      t = process.hrtime.bigint();
      await cold.rpc.resumeSandbox({ sandboxId: id });
      resumes.push(msSince(t));
    }
    add("pause p50 (RPC)", percentile(pauses, 50), "ms");
    add("resume p50 (RPC)", percentile(resumes, 50), "ms");
    const direct = createClient(Process, envdDirect(cold.runtime.get(id)));
    const directRuns = await timeRuns(50, () => execTrue(direct));
    const proxied = cold.envdVia(id);
    const proxiedRuns = await timeRuns(50, () => execTrue(proxied));
    const directP50 = percentile(directRuns, 50);
    add("exec true p50, envd direct", directP50, "ms", "baseline");
    add(
      "exec true p50, via agent proxy",
      percentile(proxiedRuns, 50),
      "ms",
      ratio(percentile(proxiedRuns, 50), directP50, "direct"),
    );

    // Idle memory: a few sandboxes left alone for a moment, PSS over each one's processes.
    const idle = [id];
    for (let i = 0; i < 4; i++) {
      const more = cold.newId("idle");
      await createAndExec(cold, more);
      idle.push(more);
    }
    await new Promise((r) => setTimeout(r, 2_000));
    const pss = await Promise.all(idle.map((s) => sandboxPss(coldDir, s)));
    add(
      "idle PSS per sandbox",
      percentile(pss, 50) / MiB,
      "MiB",
      `p50 of ${idle.length}; bwrap + envd (Node)`,
    );
    await cold.destroyAll();

    // Bursts: all created at once, timed until every one has run `true`.
    const burst = async (a: BenchAgent, label: string) => {
      await a.runtime.warmPoolIdle();
      const ids = Array.from({ length: CONCURRENT }, () => a.newId("burst"));
      const t = process.hrtime.bigint();
      await Promise.all(ids.map((s) => createAndExec(a, s)));
      const ms = msSince(t);
      await a.destroyAll();
      add(`${CONCURRENT} concurrent creates, all ready (${label})`, ms, "ms");
    };
    await burst(warm, "warm pool of 2");
    await burst(cold, "cold");
    // The same burst against a pool sized for it: what a host expecting bursts would configure.
    const { a: sized } = await start("10.214.8.0/22", CONCURRENT);
    await burst(sized, `warm pool of ${CONCURRENT}`);
    await sized.close();
    agents.splice(agents.indexOf(sized), 1);
    // The warm agent's pool is not needed past here: its sandboxes would skew the capacity count.
    await warm.close();
    agents.splice(agents.indexOf(warm), 1);

    // Capacity: idle sandboxes one after another until a bound is crossed.
    let count = 0;
    let stop = `reached the bench's bound of ${CAPACITY_MAX}`;
    let lastCreateMs = 0;
    for (; count < CAPACITY_MAX; ) {
      const t = process.hrtime.bigint();
      try {
        await createAndExec(cold, cold.newId("cap"));
      } catch (err) {
        stop = `create failed: ${String(err).slice(0, 80)}`;
        break;
      }
      lastCreateMs = msSince(t);
      count++;
      const a = process.hrtime.bigint();
      await cold.rpc.listSandboxes({});
      const answerMs = msSince(a);
      if (lastCreateMs > CAPACITY_CREATE_MS) {
        stop = `create took ${Math.round(lastCreateMs)} ms`;
        break;
      }
      if (answerMs > CAPACITY_ANSWER_MS) {
        stop = `agent took ${Math.round(answerMs)} ms to list`;
        break;
      }
      const free = await memAvailable();
      if (free < CAPACITY_MIN_FREE) {
        stop = `host memory available fell to ${Math.round(free / MiB)} MiB`;
        break;
      }
    }
    add(
      "idle sandboxes held",
      count,
      "sandboxes",
      `${stop}; last create ${Math.round(lastCreateMs)} ms`,
    );
  } finally {
    for (const a of agents) await a.close().catch((err) => console.error("bench: cleanup", err));
    const mounts = await readFile("/proc/self/mounts", "utf8");
    for (const dir of dirs) {
      // Never rm -rf across a mount something failed to remove.
      if (mounts.includes(`${dir}/`)) console.error(`bench: ${dir} still has mounts, kept`);
      else await rm(dir, { recursive: true, force: true });
    }
    await restoreHost();
  }
  return figures;
}
