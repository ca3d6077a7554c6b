import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../src/host/index.js";
import { acquireDirLock, ownStamp } from "../src/lock/index.js";
import { keepHostFirewallState } from "../src/network/index.js";
import { listenPort } from "./fixtures/listen-port.js";

// One agent per state directory and per sandbox range on a host, with real agent processes:
// a second one refuses before it touches anything; a dead one's lock and claim are taken over.
// Needs root.
const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const octet = () => Math.floor(Math.random() * 250);
const rangeA = `10.232.${octet()}.0/24`;
const otherRange = `10.233.${octet()}.0/24`;

interface Started {
  child: ChildProcess;
  exit: Promise<{ code: number | null; stderr: string }>;
}

function startAgent(agentDir: string, cidr: string, port: number): Started {
  const child = spawn(process.execPath, ["--import", "tsx", main], {
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      ...process.env,
      WRENN_AGENT_DIR: agentDir,
      WRENN_AGENT_PORT: String(port),
      WRENN_AGENT_HOST: "127.0.0.1",
      WRENN_SANDBOX_CIDR: cidr,
      WRENN_WARM_POOL: "0",
      WRENN_LOG_LEVEL: "warn",
    },
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stderr })),
  );
  return { child, exit };
}

async function waitListening(port: number, started: Started): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited = false;
  void started.exit.then(() => {
    exited = true;
  });
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/sandboxes/x1/envd/`).then(
      () => true,
      () => false,
    );
    if (ok) return;
    if (exited) throw new Error(`agent exited: ${(await started.exit).stderr}`);
    if (Date.now() > deadline) throw new Error("agent did not listen");
    await sleep(50);
  }
}

describe("one agent per directory and sandbox range", { timeout: 120_000 }, () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const dummy = `wrt${randomBytes(3).toString("hex")}`;
  let restoreHost: () => Promise<void> = async () => {};
  const newDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-instance-"));
    dirs.push(dir);
    return dir;
  };
  const start = (dir: string, cidr: string, p: number) => {
    const started = startAgent(dir, cidr, p);
    children.push(started.child);
    return started;
  };

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((resolve) => child.once("exit", resolve));
      }
    }
    await runCommand("ip", ["link", "del", dummy]).catch(() => {});
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    await restoreHost();
  });

  it("refuses a second agent on a directory or an overlapping range, naming the holder", async () => {
    const dirA = await newDir();
    const portA = await listenPort();
    const a = start(dirA, rangeA, portA);
    await waitListening(portA, a);

    const sameDir = await start(dirA, otherRange, await listenPort()).exit;
    expect(sameDir.code).toBe(1);
    expect(sameDir.stderr).toContain(`${dirA} is in use by another agent (pid ${a.child.pid})`);
    expect(sameDir.stderr.trim().split("\n")).toHaveLength(1);

    const overlapping = rangeA.replace(".0/24", ".128/25");
    const sameRange = await start(await newDir(), overlapping, await listenPort()).exit;
    expect(sameRange.code).toBe(1);
    expect(sameRange.stderr).toContain(
      `sandbox range ${overlapping} overlaps ${rangeA}, used by the agent with pid ${a.child.pid}`,
    );

    // A route into the range that is no agent's veth is refused too.
    await runCommand("ip", ["link", "add", dummy, "type", "veth", "peer", "name", `${dummy}p`]);
    await runCommand("ip", ["link", "set", dummy, "up"]);
    const routed = otherRange.replace(".0/24", ".64/28");
    await runCommand("ip", ["route", "add", routed, "dev", dummy]);
    const byRoute = await start(await newDir(), otherRange, await listenPort()).exit;
    expect(byRoute.code).toBe(1);
    expect(byRoute.stderr).toMatch(
      new RegExp(`overlaps the route ${routed.replace(/\./g, "\\.")} dev ${dummy}`),
    );
    await runCommand("ip", ["link", "del", dummy]);

    // Killed without a chance to clean up: its lock and claim are stale, and taken over.
    a.child.kill("SIGKILL");
    await a.exit;
    const portB = await listenPort();
    const b = start(dirA, rangeA, portB);
    await waitListening(portB, b);
    b.child.kill("SIGTERM");
    expect((await b.exit).code).toBe(0);
  });
});

describe("acquireDirLock", () => {
  it("holds a directory, refuses a second holder, takes over a reused pid's lock", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-lock-"));
    try {
      const lock = await acquireDirLock(dir, "server");
      const held = JSON.parse(await readFile(lock.file, "utf8"));
      expect(held).toMatchObject({ ...(await ownStamp()), what: "server" });
      await expect(acquireDirLock(dir, "server")).rejects.toThrow(
        `${dir} is in use by another server (pid ${process.pid})`,
      );
      await lock.release();
      // Our pid, another start time: the process that wrote it is gone, the pid reused.
      await writeFile(lock.file, JSON.stringify({ pid: process.pid, start_time: 1 }));
      const again = await acquireDirLock(dir, "server");
      // A lock cut short by a crash between create and write is stale too.
      await again.release();
      await writeFile(lock.file, "");
      await (await acquireDirLock(dir, "server")).release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
