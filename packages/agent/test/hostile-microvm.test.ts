import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, stat, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { type HostileSandbox, hostileRuntime } from "./fixtures/hostile-runtime.js";
import { microVmSkipReason } from "./fixtures/microvm.js";
import { connectFrom, hostVethAddress, listen, otherHostAddresses } from "./fixtures/net-probe.js";

const skip = await microVmSkipReason();
const sandboxIp = (s: HostileSandbox) => s.info.envdAddress.split(":")[0]!;
const MiB = 2 ** 20;

// The hostile cases that mean something for a VM (its own kernel makes the namespace suites'
// /proc, mount and seccomp cases moot inside it). TCG: few VMs, generous timeouts.
describe.skipIf(skip)("hostile sandbox: microVM", { timeout: 300_000 }, () => {
  const hx = hostileRuntime({ netBase: 16, net16: "10.237", runtime: "microvm" });
  let a: HostileSandbox;
  let b: HostileSandbox;

  beforeAll(async () => {
    a = await hx.create("vm-a", { diskSizeMb: 512 });
    b = await hx.create("vm-b", { diskSizeMb: 512 });
  }, 300_000);

  it("runs its own kernel and sees none of the host's files", async () => {
    const marker = `/tmp/wrenn-hostile-${randomBytes(4).toString("hex")}`;
    await writeFile(marker, "host secret\n");
    hx.defer(() => rm(marker, { force: true }));
    const res = await a.root.sh(`uname -r; cat ${marker} 2>&1; ls /boot 2>&1 | head -1`);
    const [kernel, read] = res.stdout.split("\n");
    expect(kernel).toMatch(/-cloud-amd64$/);
    expect(kernel).not.toBe(release());
    expect(read).toMatch(/No such file/);
  });

  it("reaches no server on the host nor the other VM; its own envd answers", async () => {
    const wildcard = await listen("0.0.0.0");
    hx.defer(() => wildcard.server.close());
    const targets = [
      `${hostVethAddress(a.id)}:${wildcard.port}`,
      ...otherHostAddresses().map((ip) => `${ip}:${wildcard.port}`),
      `${sandboxIp(b)}:49983`,
    ];
    const got = await connectFrom(a, targets);
    for (const target of targets) {
      expect(
        ["timeout", "ECONNREFUSED", "EHOSTUNREACH"],
        `${target}: ${got.get(target)}`,
      ).toContain(got.get(target));
    }
    expect(wildcard.peers).toEqual([]);
    expect((await connectFrom(a, ["127.0.0.1:49983"])).get("127.0.0.1:49983")).toBe("connected");
  });

  it("memory is capped by the VM's RAM: a hog dies inside, QEMU stays near its size", async () => {
    const hog = await a.root.sh(
      `node -e "const k = []; for (;;) k.push(Buffer.alloc(16 << 20, 1))" >/dev/null 2>&1; echo exit=$?`,
    );
    expect(hog.stdout).not.toBe("exit=0\n");
    const metrics = await hx.runtime.metrics(a.id);
    // 256 MiB of guest RAM plus QEMU's own (TCG code cache, devices).
    expect(metrics.memUsedBytes).toBeLessThan((256 + 192) * MiB);
    expect((await a.user.sh("echo alive")).stdout).toBe("alive\n");
  });

  it("disk is capped at disk_size_mb: writing past it fails with no space, the host file stays small", async () => {
    // The guest grew its filesystem to the overlay's 512 MiB at boot.
    const df = await a.root.sh("df -m / | tail -1");
    const totalMb = Number(df.stdout.trim().split(/\s+/)[1]);
    expect(totalMb).toBeGreaterThan(400);
    expect(totalMb).toBeLessThanOrEqual(512);
    const fill = await a.root.sh(
      "dd if=/dev/zero of=/fill bs=1M count=8192 2>&1; sync; rm -f /fill",
    );
    expect(fill.stdout).toMatch(/No space left/);
    const overlay = await stat(join(hx.dir, "sandboxes", a.id, "vm", "disk.qcow2"));
    expect(overlay.size).toBeLessThan(640 * MiB);
  });

  it("a fork bomb inside one VM leaves the host and the other VM responsive", async () => {
    const bomb = await hx.create("vm-bomb", { diskSizeMb: 512 });
    // Not awaited: the bomb takes its guest's one vCPU, envd inside included.
    void bomb.user
      .sh("(b() { b | b & }; b) >/dev/null 2>&1 &", { signal: AbortSignal.timeout(60_000) })
      .catch(() => {});
    await sleep(3_000);
    // The host spawns, and the other VM answers.
    const started = Date.now();
    execFileSync("true");
    expect((await b.user.sh("echo alive")).stdout).toBe("alive\n");
    expect(Date.now() - started).toBeLessThan(60_000);
    await hx.runtime.destroy(bomb.id);
  });
});
