import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentError } from "../../src/errors.js";
import { keepHostFirewallState } from "../../src/network/index.js";
import type { Runtime, SandboxSpec } from "../../src/runtime/index.js";
import { EnvdClient } from "./envd-client.js";
import { findLeaks } from "./leaks.js";

export interface RuntimeContractOptions {
  /** A runtime over `agentDir`; called again over the same dir to simulate an agent restart. */
  makeRuntime: (agentDir: string) => Runtime | Promise<Runtime>;
  /** A small template the runtime can build quickly. */
  template: string;
  /**
   * Starts creating `id` in another process over `agentDir` and kills that process with
   * SIGKILL after `killAfterMs` once the sandbox's record exists: a crash mid-create.
   */
  crashCreate?: (agentDir: string, id: string, killAfterMs: number) => Promise<void>;
  /**
   * A create from a snapshot that asks for other vCPUs or memory is refused (a microVM's RAM
   * and vCPUs are in the snapshot) instead of given the snapshot's.
   */
  snapshotLimitsRefused?: boolean;
  /**
   * How long the pause test watches a counter run (default 1 s): longer for runtimes whose
   * resume and exec are slow (a microVM under TCG), so the ticks counted during them stay small
   * next to a window of free running.
   */
  observeMs?: number;
  /** The disk size the suite asks for (default 64; a microVM's cannot be under its image). */
  diskSizeMb?: number;
}

/** What every runtime must do; run it from a `<runtime>.test.ts` file. */
export function runtimeContract(name: string, options: RuntimeContractOptions): void {
  describe(`runtime contract: ${name}`, { timeout: 60_000 }, () => {
    const prefix = `ct${randomBytes(3).toString("hex")}`;
    const disk = options.diskSizeMb ?? 64;
    const ids = new Set<string>();
    let dir: string;
    let runtime: Runtime;
    let restoreHost: () => Promise<void> = async () => {};
    const newId = (what: string) => {
      const id = `${prefix}-${what}`;
      ids.add(id);
      return id;
    };
    const spec = (id: string, more: Partial<SandboxSpec> = {}): SandboxSpec => ({
      id,
      template: options.template,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: disk,
      ...more,
    });
    const envd = (id: string) => EnvdClient.direct(runtime.get(id));
    const expectCode = async (promise: Promise<unknown>, code: AgentError["code"]) => {
      const err = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe(code);
    };

    beforeAll(async () => {
      restoreHost = await keepHostFirewallState();
      dir = await mkdtemp(join(tmpdir(), "wrenn-contract-"));
      runtime = await options.makeRuntime(dir);
      await runtime.adopt();
    });

    afterAll(async () => {
      const errors: unknown[] = [];
      const destroyAll = async () => {
        for (const sandbox of runtime.list()) {
          await runtime.destroy(sandbox.id).catch((err) => errors.push(err));
        }
        await runtime.close();
      };
      if (!runtime) return;
      await destroyAll();
      const leaks = await findLeaks(dir, ids);
      if (leaks.length > 0) {
        // A failed test left debris: a fresh start cleans up what it can before we report.
        runtime = await options.makeRuntime(dir);
        await runtime.adopt();
        await destroyAll();
      }
      // Never rm -rf across a leaked mount.
      if ((await findLeaks(dir, ids)).length === 0) await rm(dir, { recursive: true, force: true });
      await restoreHost();
      expect(errors).toEqual([]);
      expect(leaks).toEqual([]);
    }, 120_000);

    it("creates a sandbox whose envd answers, and runs commands as `user`", async () => {
      const id = newId("basic");
      const info = await runtime.create(spec(id, { metadata: { team: "t1" }, timeoutSec: 30 }));
      expect(info).toMatchObject({
        id,
        state: "running",
        template: options.template,
        vcpus: 1,
        memoryMb: 256,
        diskSizeMb: disk,
        timeoutSec: 30,
        metadata: { team: "t1" },
      });
      expect(info.envdAddress).toMatch(/:\d+$/);
      expect(runtime.list().map((s) => s.id)).toContain(id);
      const res = await envd(id).sh("echo hello; id -u");
      expect(res).toMatchObject({ stdout: "hello\n1000\n", exitCode: 0 });
      const metrics = await runtime.metrics(id);
      expect(metrics.memLimitBytes).toBe(256 * 2 ** 20);
      expect(metrics.pids).toBeGreaterThan(0);
      expect(metrics.diskLimitBytes).toBe(disk * 2 ** 20);
      expect(metrics.diskUsedBytes).toBeGreaterThan(0);
      await expectCode(runtime.create(spec(id)), "already_exists");
    });

    it("serves file downloads through envd", async () => {
      const id = newId("basic");
      const client = envd(id);
      await client.sh("echo from the sandbox > /home/user/out.txt");
      const down = await client.download("/home/user/out.txt");
      expect(down.status).toBe(200);
      expect(await down.text()).toBe("from the sandbox\n");
    });

    it("takes file uploads through envd", async () => {
      const id = newId("basic");
      const client = envd(id);
      const up = await client.upload("/home/user/in.txt", "from the host\n");
      expect(up.status).toBe(200);
      expect((await client.sh("cat /home/user/in.txt")).stdout).toBe("from the host\n");
    });

    it("pause stops progress and resume continues it", async () => {
      const id = newId("basic");
      const client = envd(id);
      await client.sh(
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/counter; sleep 0.02; done) >/dev/null 2>&1 &",
      );
      const read = async () => Number((await client.sh("cat /tmp/counter")).stdout);
      await sleep(200);
      const beforePause = await read();
      expect((await runtime.pause(id)).state).toBe("paused");
      expect(runtime.get(id)).toMatchObject({ state: "paused", autoPaused: false });
      await expectCode(runtime.pause(id), "failed_precondition");
      await sleep(1_000);
      expect((await runtime.resume(id)).state).toBe("running");
      const afterResume = await read();
      await sleep(options.observeMs ?? 1_000);
      const later = await read();
      // Frozen for a second: at most a few ticks (the reads themselves); running: dozens.
      expect(afterResume - beforePause).toBeLessThan((later - afterResume) / 2);
      expect(later - afterResume).toBeGreaterThan(10);
      await expectCode(runtime.resume(id), "failed_precondition");
    });

    it("snapshots a running sandbox; sandboxes from it see its files with its resources", async () => {
      const id = newId("basic");
      const snap = `${prefix}-snap`;
      await envd(id).sh("echo kept > /home/user/snap.txt");
      const info = await runtime.snapshot(id, snap);
      expect(info).toMatchObject({
        name: snap,
        baseTemplate: options.template,
        sourceSandboxId: id,
        vcpus: 1,
        memoryMb: 256,
        sandboxCount: 0,
      });
      // The source keeps running.
      expect(runtime.get(id).state).toBe("running");
      expect((await envd(id).sh("echo still")).stdout).toBe("still\n");
      await expectCode(runtime.snapshot(id, snap), "already_exists");
      await expectCode(runtime.snapshot(id, "../evil"), "invalid_argument");

      const child = newId("child");
      const other = { template: snap, vcpus: 2, memoryMb: 512 };
      if (options.snapshotLimitsRefused) {
        await expectCode(runtime.create(spec(child, other)), "invalid_argument");
      }
      const made = await runtime.create(
        spec(child, options.snapshotLimitsRefused ? { template: snap } : other),
      );
      expect(made).toMatchObject({ template: snap, vcpus: 1, memoryMb: 256, diskSizeMb: disk });
      expect((await envd(child).sh("cat /home/user/snap.txt")).stdout).toBe("kept\n");
      expect((await runtime.listSnapshots()).find((s) => s.name === snap)).toMatchObject({
        sourceSandboxId: id,
        sandboxCount: 1,
      });

      await expectCode(runtime.deleteSnapshot(snap), "failed_precondition");
      await runtime.destroy(child);
      await runtime.deleteSnapshot(snap);
      expect((await runtime.listSnapshots()).map((s) => s.name)).not.toContain(snap);
      await expectCode(runtime.deleteSnapshot(snap), "not_found");
      await expectCode(runtime.deleteSnapshot(options.template), "failed_precondition");
    });

    it("refuses unsafe names and ids, and unknown sandboxes", async () => {
      await expectCode(runtime.create(spec("Bad_ID")), "invalid_argument");
      await expectCode(
        runtime.create(spec(`${prefix}-x`, { template: "../etc" })),
        "invalid_argument",
      );
      await expectCode(runtime.create(spec(`${prefix}-x`, { template: "nope-nope" })), "not_found");
      expect(() => runtime.get(`${prefix}-none`)).toThrow(AgentError);
      await expectCode(runtime.destroy(`${prefix}-none`), "not_found");
      await expectCode(runtime.pause(`${prefix}-none`), "not_found");
    });

    it("a new runtime over the same directory adopts running and paused sandboxes", async () => {
      const running = newId("basic");
      const paused = newId("paused");
      await runtime.create(spec(paused));
      await envd(paused).sh("echo before > /home/user/mark");
      await runtime.pause(paused);
      await envd(running).sh("echo before > /home/user/mark");

      await runtime.close();
      runtime = await options.makeRuntime(dir);
      const report = await runtime.adopt();
      expect(report.adopted).toEqual(expect.arrayContaining([running, paused]));
      expect(report.errors).toEqual([]);
      expect(runtime.get(running).state).toBe("running");
      expect(runtime.get(paused).state).toBe("paused");
      expect((await envd(running).sh("cat /home/user/mark")).stdout).toBe("before\n");
      await runtime.resume(paused);
      expect((await envd(paused).sh("cat /home/user/mark")).stdout).toBe("before\n");
    });

    it("destroy leaves nothing behind, paused sandboxes included", async () => {
      const id = newId("basic");
      await runtime.destroy(id);
      const paused = newId("paused");
      await runtime.pause(paused);
      await runtime.destroy(paused);
      expect(() => runtime.get(id)).toThrow(AgentError);
      expect(await findLeaks(join(dir, "sandboxes", id), [id])).toEqual([]);
    });

    it.runIf(options.crashCreate)(
      "a crash at any point of create leaves debris that the next start removes",
      async () => {
        // From "record written" to "envd starting": each kill lands in a different step.
        for (const [n, killAfterMs] of [0, 40, 120, 300].entries()) {
          const id = newId(`crash${n}`);
          await options.crashCreate!(dir, id, killAfterMs);
        }
        await runtime.close();
        runtime = await options.makeRuntime(dir);
        const report = await runtime.adopt();
        expect(report.errors).toEqual([]);
        // A kill that came after envd was up leaves a healthy sandbox: adopted, then destroyed.
        for (const id of report.adopted) await runtime.destroy(id);
        expect(await findLeaks(dir, ids)).toEqual([]);
      },
    );
  });
}
