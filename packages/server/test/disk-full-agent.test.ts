import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AddressPool,
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/index.js";
import { type SingleHost, startSingleHost } from "../src/single-host/index.js";
import { newTeamKey } from "./helpers/app.js";
import { leaksUnder } from "./helpers/host-state.js";

// Issue #13, disk full on the agent dir (the data-dir case is disk-full.test.ts): the embedded
// agent's dir on a small loop-mounted file system made here. A create that does not fit answers
// 507 insufficient_storage (not a 500, and no host path in it), sandboxes already there keep
// working, and creates succeed again once space returns. A create asking for more memory than
// the host has is refused as a bad request, not a "retry later". Needs root (mount, namespaces).

const root = process.getuid?.() === 0;
const TEMPLATE = "test-minimal";
const CIDR = process.env.WRENN_SANDBOX_CIDR || "10.216.0.0/16";

describe.skipIf(!root)("disk full on the agent dir", { timeout: 120_000 }, () => {
  const base = mkdtempSync(join(tmpdir(), "wrenn-agent-diskfull-"));
  const agentDir = join(base, "mnt");
  let mounted = false;
  let host: SingleHost | undefined;
  let key: Record<string, string>;
  let restoreHost: () => Promise<void> = async () => {};

  const call = async (method: string, path: string, json?: unknown) => {
    const res = await (host as SingleHost).app.request(path, {
      method,
      headers: { ...key, ...(json === undefined ? {} : { "content-type": "application/json" }) },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  const create = (extra: Record<string, unknown> = {}) =>
    call("POST", "/v1/sandboxes", {
      template: TEMPLATE,
      memory_mb: 128,
      disk_size_mb: 16,
      ...extra,
    });

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    execFileSync("mkdir", [agentDir]);
    execFileSync("truncate", ["-s", "160M", join(base, "fs.img")]);
    execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", join(base, "fs.img")]);
    execFileSync("mount", ["-o", "loop", join(base, "fs.img"), agentDir]);
    mounted = true;
    const dataDir = join(base, "data");
    const config = loadConfig({ WRENN_DATA_DIR: dataDir, WRENN_DEFAULT_TEMPLATE: TEMPLATE });
    host = await startSingleHost(config, pino({ level: "silent" }), {
      agentDir,
      runtime: new NamespaceRuntime({
        agentDir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(CIDR),
      }),
      listen: false,
    });
    await host.ready;
    key = await newTeamKey(host.app);
  }, 120_000);

  afterAll(async () => {
    if (host) {
      const runtime = host.embedded.agent.runtime;
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await host.close();
    }
    const leaks = await leaksUnder(join(agentDir, "sandboxes"));
    if (mounted) execFileSync("umount", [agentDir]);
    rmSync(base, { recursive: true, force: true });
    await restoreHost();
    expect(leaks).toEqual([]);
  }, 120_000);

  it("refuses a disk bigger than the host has free, and memory beyond the host's", async () => {
    const big = await create({ disk_size_mb: 100_000 });
    expect(big.status).toBe(507);
    expect(big.body).toMatchObject({ code: "insufficient_storage" });
    expect(String(big.body.message)).not.toContain(agentDir);
    const memory = await create({ memory_mb: 64 * 1024 * 1024 });
    expect(memory.status).toBe(400);
    expect(memory.body).toMatchObject({ code: "invalid_argument" });
    expect(String(memory.body.message)).toContain("memory_mb");
  });

  it("answers 507 while the agent dir is full and creates again when space returns", async () => {
    const before = await create();
    expect(before.status, JSON.stringify(before.body)).toBe(201);
    const filler = join(agentDir, "filler");
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k"], { stdio: "ignore" });
    } catch {} // until ENOSPC
    const full = await create();
    expect(full.status).toBe(507);
    expect(full.body).toMatchObject({ code: "insufficient_storage" });
    // What runs keeps running.
    const run = await call("POST", `/v1/sandboxes/${before.body.id}/exec`, { cmd: "echo ok" });
    expect(run.body).toMatchObject({ stdout: "ok\n", exit_code: 0 });
    await unlink(filler);
    const after = await create();
    expect(after.status, JSON.stringify(after.body)).toBe(201);
    for (const id of [before.body.id, after.body.id])
      expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await leaksUnder(join(agentDir, "sandboxes"))).toEqual([]);
  });
});
