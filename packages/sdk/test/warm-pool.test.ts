import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { hostIfName, listInternetMembers } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../src/index.js";
import { namespaceRuntime, startTestServer, TEMPLATE, type TestServer } from "./helpers/server.js";

// A create served from the warm pool must be indistinguishable from a cold one: to the code
// inside (environment, user, disk), to the host (cgroup limits, internet access) and to the API
// (limits, metadata, timeout). A fixed pool of two makes it known which create gets which.

const DISK_MB = 96;
const POOL = [{ template: TEMPLATE, size: 2, diskSizeMb: DISK_MB }];
/** Everything a create can ask for, none of it what a pooled sandbox is built with. */
const REQUEST = {
  template: TEMPLATE,
  vcpus: 2,
  memoryMb: 192,
  diskSizeMb: DISK_MB,
  timeoutMs: 600_000,
  envs: { GREETING: "hello from the request", LANG: "C.UTF-8" },
  metadata: { suite: "warm-pool", purpose: "compare" },
} as const;

let server: TestServer;
let conn: { apiUrl: string; apiKey: string };

beforeAll(async () => {
  server = await startTestServer({ warmPool: POOL });
  conn = { apiUrl: server.url, apiKey: server.apiKey };
});

afterAll(async () => {
  await server?.close();
});

/** The host's name for a sandbox's resources: `pool-…` when it was claimed from the pool. */
async function resourceId(sandboxId: string): Promise<string> {
  const dir = join(server.dataDir, "agent", "sandboxes");
  for (const rid of await readdir(dir)) {
    const raw = await readFile(join(dir, rid, "sandbox.json"), "utf8").catch(() => "{}");
    if (JSON.parse(raw).id === sandboxId) return rid;
  }
  throw new Error(`no record for ${sandboxId}`);
}

/** The sandbox's cgroup files on the host, whichever cgroup version this host has. */
async function cgroupLimits(rid: string): Promise<Record<string, string>> {
  const files = {
    v1: {
      memory: `memory/wrenn/${rid}/memory.limit_in_bytes`,
      cpuQuota: `cpu/wrenn/${rid}/cpu.cfs_quota_us`,
      cpuPeriod: `cpu/wrenn/${rid}/cpu.cfs_period_us`,
      cpuShares: `cpu/wrenn/${rid}/cpu.shares`,
      pids: `pids/wrenn/${rid}/pids.max`,
    },
    v2: {
      memory: `wrenn/${rid}/memory.max`,
      cpu: `wrenn/${rid}/cpu.max`,
      cpuWeight: `wrenn/${rid}/cpu.weight`,
      pids: `wrenn/${rid}/pids.max`,
    },
  };
  for (const set of Object.values(files)) {
    const out: Record<string, string> = {};
    for (const [name, file] of Object.entries(set)) {
      const text = await readFile(join("/sys/fs/cgroup", file), "utf8").catch(() => undefined);
      if (text !== undefined) out[name] = text.trim();
    }
    if (Object.keys(out).length > 0) return out;
  }
  throw new Error(`no cgroup found for ${rid}`);
}

/** What a sandbox looks like from inside, from the host and through the API. */
async function observe(sandbox: Sandbox) {
  const sh = async (cmd: string, user?: string) => {
    const res = await sandbox.commands.run(cmd, user ? { user } : {});
    expect(res.exitCode).toBe(0);
    return res.stdout;
  };
  const rid = await resourceId(sandbox.sandboxId);
  const info = await sandbox.getInfo();
  return {
    rid,
    pooled: rid.startsWith("pool-"),
    seen: {
      env: await sh("env | sort"),
      user: await sh("id; echo $HOME; pwd; umask"),
      root: await sh("id; echo $HOME", "root"),
      hostname: await sh("hostname"),
      diskKb: (await sh("df -k / | tail -n 1")).trim().split(/\s+/)[1],
      cgroup: await cgroupLimits(rid),
      api: {
        template: info.template,
        state: info.state,
        runtime: info.runtime,
        vcpus: info.vcpus,
        memoryMb: info.memoryMb,
        diskSizeMb: info.diskSizeMb,
        timeoutMs: info.timeoutMs,
        metadata: info.metadata,
      },
    },
  };
}

describe("warm pool", () => {
  for (const allowInternetAccess of [true, false]) {
    it(`a pooled create is indistinguishable from a cold one (internet ${allowInternetAccess ? "on" : "off"})`, async () => {
      await namespaceRuntime(server).warmPoolIdle();
      expect(namespaceRuntime(server).warmPoolSize).toBe(2);
      // Three at once from a pool of two: two are claimed, one starts cold (no refill can
      // start while a create is under way).
      const sandboxes = await Promise.all(
        [1, 2, 3].map(() => Sandbox.create({ ...conn, ...REQUEST, allowInternetAccess })),
      );
      try {
        const seen = await Promise.all(sandboxes.map(observe));
        expect(seen.map((s) => s.pooled).sort()).toEqual([false, true, true]);
        const cold = seen.find((s) => !s.pooled)!.seen;
        for (const s of seen) expect(s.seen).toEqual(cold);
        // And what they all see is what was asked for.
        expect(cold.env).toContain("GREETING=hello from the request\n");
        expect(cold.env).toContain("LANG=C.UTF-8\n");
        expect(cold.user).toMatch(/^uid=1000\(user\).*\n\/home\/user\n/);
        expect(cold.root).toMatch(/^uid=0\(root\)/);
        expect(Number(cold.diskKb)).toBeGreaterThan((DISK_MB - 16) * 1024);
        expect(Number(cold.diskKb)).toBeLessThanOrEqual(DISK_MB * 1024);
        expect(cold.cgroup.memory).toBe(String(REQUEST.memoryMb * 2 ** 20));
        // Internet access is the host firewall's: every one a member exactly when asked. Polled:
        // on a shared host another run may remove the firewall, and the agent puts it back (with
        // its members) within a tick.
        await expect
          .poll(
            async () => {
              const members = await listInternetMembers();
              return seen.map((s) => members.includes(hostIfName(s.rid)));
            },
            { timeout: 15_000 },
          )
          .toEqual([allowInternetAccess, allowInternetAccess, allowInternetAccess]);
        expect(cold.api).toEqual({
          template: TEMPLATE,
          state: "running",
          runtime: "namespace",
          vcpus: REQUEST.vcpus,
          memoryMb: REQUEST.memoryMb,
          diskSizeMb: DISK_MB,
          timeoutMs: REQUEST.timeoutMs,
          metadata: REQUEST.metadata,
        });
      } finally {
        await Promise.all(sandboxes.map((s) => s.kill()));
      }
    }, 180_000);
  }

  it("a burst larger than the pool completes without errors", async () => {
    await namespaceRuntime(server).warmPoolIdle();
    expect(namespaceRuntime(server).warmPoolSize).toBe(2);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, async () => {
        const sandbox = await Sandbox.create({
          ...conn,
          template: TEMPLATE,
          memoryMb: 128,
          diskSizeMb: DISK_MB,
          requestTimeoutMs: 180_000,
        });
        try {
          const res = await sandbox.commands.run("true");
          return {
            exitCode: res.exitCode,
            pooled: (await resourceId(sandbox.sandboxId)).startsWith("pool-"),
          };
        } finally {
          await sandbox.kill();
        }
      }),
    );
    const failures = results.filter((r) => r.status === "rejected");
    expect(failures).toEqual([]);
    const done = results.map(
      (r) => (r as PromiseFulfilledResult<{ exitCode: number; pooled: boolean }>).value,
    );
    expect(done.map((d) => d.exitCode)).toEqual(Array(8).fill(0));
    expect(done.filter((d) => d.pooled)).toHaveLength(2);
  }, 240_000);
});
