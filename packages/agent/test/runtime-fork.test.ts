import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { AgentError } from "../src/errors.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import {
  MicroVmRuntime,
  NamespaceRuntime,
  type Runtime,
  RuntimeSet,
  type SandboxSpec,
} from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";
import { microVmSkipReason } from "./fixtures/microvm.js";

// A /24 of its own inside WRENN_SANDBOX_CIDR's /16 (10.228 by default), away from other suites.
const net16 = process.env.WRENN_SANDBOX_CIDR?.split(".").slice(0, 2).join(".") || "10.228";
const net = `${net16}.${Math.floor(Math.random() * 250)}`;
const rootSkip = process.getuid?.() === 0 ? undefined : "needs root (namespaces, mounts, cgroups)";
const vmSkip = await microVmSkipReason();
if (rootSkip) console.warn(`fork suites skipped: ${rootSkip}`);
else if (vmSkip) console.warn(`microvm fork suite skipped: ${vmSkip}`);

const FILE = "/tmp/fork-probe";

async function expectCode(work: Promise<unknown>, code: string): Promise<void> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).code).toBe(code);
}

interface Case {
  name: string;
  skip: string | undefined;
  /** Forks made at once. */
  forks: number;
  makeRuntime: (dir: string) => Runtime;
  spec: Partial<SandboxSpec>;
  /** Whether running processes carry over (microVM memory). */
  processes: boolean;
  /** Where fork layers live under the agent dir. */
  layerDir: string;
}

const cases: Case[] = [
  {
    name: "namespace",
    skip: rootSkip,
    forks: 5,
    makeRuntime: (dir) =>
      new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(`${net}.0/25`),
      }),
    spec: { memoryMb: 128, diskSizeMb: 32 },
    processes: false,
    layerDir: "templates",
  },
  {
    // The source is a claimed pool sandbox (resources named by another id than its own).
    name: "namespace with a warm pool",
    skip: rootSkip,
    forks: 2,
    makeRuntime: (dir) =>
      new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(`${net}.0/25`),
        warmPool: [{ template: "test-minimal", size: 1, diskSizeMb: 32 }],
      }),
    spec: { memoryMb: 128, diskSizeMb: 32 },
    processes: false,
    layerDir: "templates",
  },
  {
    name: "microvm",
    skip: rootSkip ?? vmSkip,
    forks: 5,
    makeRuntime: (dir) =>
      new MicroVmRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(`${net}.128/25`),
      }),
    spec: { memoryMb: 256, diskSizeMb: 512 },
    processes: true,
    layerDir: "microvm/snapshots",
  },
];

for (const c of cases) {
  describe.skipIf(c.skip)(`${c.name} fork`, { timeout: 600_000 }, () => {
    it("forks diverge independently, the source keeps running, and nothing is left after", async () => {
      const restoreHost = await keepHostFirewallState();
      const dir = await mkdtemp(join(tmpdir(), "wrenn-fork-"));
      const prefix = `fk${randomBytes(3).toString("hex")}`;
      const ids = new Set<string>();
      const id = (what: string) => {
        ids.add(`${prefix}-${what}`);
        return `${prefix}-${what}`;
      };
      const inner = c.makeRuntime(dir);
      const runtime = new RuntimeSet([{ runtime: inner }], inner.name);
      const sh = async (sandbox: string, script: string) => {
        const res = await EnvdClient.direct(runtime.get(sandbox)).sh(script);
        expect(res, script).toMatchObject({ exitCode: 0 });
        return res.stdout.trim();
      };
      const forkLayers = async () =>
        (await readdir(join(dir, c.layerDir)).catch(() => [] as string[])).filter((n) =>
          n.startsWith("fork-"),
        );
      try {
        if (inner instanceof NamespaceRuntime) {
          // Built before adopt, so a warm pool fills at adopt and the source is claimed from it.
          await inner.templateStore.ensureTemplate("test-minimal");
          await runtime.adopt();
          await inner.warmPoolIdle();
        } else await runtime.adopt();
        const source = id("src");
        await runtime.create({
          id: source,
          template: "test-minimal",
          vcpus: 1,
          memoryMb: 128,
          diskSizeMb: 32,
          ...c.spec,
          metadata: { owner: "fork-test" },
        });
        await sh(source, `echo before > ${FILE}`);
        const count = async (s: string) => Number(await sh(s, "cat /tmp/count"));
        let atFork = 0;
        let counterPid = "";
        if (c.processes) {
          // A counter in the background: in a microVM it lives on in every fork. Written by
          // rename, so a read never lands between the truncate and the write and sees nothing.
          await sh(
            source,
            "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; " +
              "mv /tmp/count.new /tmp/count; sleep 0.2; done' " +
              "</dev/null >/dev/null 2>&1 & echo $! > /tmp/counter.pid",
          );
          counterPid = await sh(source, "cat /tmp/counter.pid");
          // Far enough along that a fork's counter cannot pass for one started afresh.
          while (atFork < 5) {
            await sleep(500);
            atFork = await count(source);
          }
        }

        const targets = Array.from({ length: c.forks }, (_, i) => ({ id: id(`f${i}`) }));
        const made = await runtime.fork(source, targets);
        console.log(
          `${c.name} fork of ${c.forks}: source paused ${made.sourcePauseMs} ms for the copy`,
        );
        expect(made.sourcePauseMs).toBeGreaterThanOrEqual(0);
        expect(made.sandboxes.map((s) => s.id)).toEqual(targets.map((t) => t.id));
        for (const s of made.sandboxes) {
          expect(s).toMatchObject({
            state: "running",
            runtime: inner.name,
            metadata: { owner: "fork-test" },
          });
        }
        expect(runtime.get(source).state).toBe("running");
        // The fork layer is internal: not a snapshot anyone lists.
        expect(await runtime.listSnapshots()).toEqual([]);
        expect((await runtime.templates()).map((t) => t.name)).not.toContainEqual(
          expect.stringMatching(/^fork-/),
        );
        expect(await forkLayers()).toHaveLength(1);

        // Each sees the moment of the fork, then only its own writes (all at once: separate
        // sandboxes, and microVMs under TCG are slow one by one).
        const all = [source, ...targets.map((t) => t.id)];
        const each = <T>(work: (s: string) => Promise<T>) => Promise.all(all.map(work));
        expect(await each((s) => sh(s, `cat ${FILE}`))).toEqual(all.map(() => "before"));
        await each((s) => sh(s, `echo mine-${s} > ${FILE}`));
        expect(await each((s) => sh(s, `cat ${FILE}`))).toEqual(all.map((s) => `mine-${s}`));

        if (c.processes) {
          // Every fork runs the source's counter process itself, carried on from where it was.
          const pids = await each((s) =>
            sh(s, "cat /tmp/counter.pid; kill -0 $(cat /tmp/counter.pid) && echo alive"),
          );
          expect(pids).toEqual(all.map(() => `${counterPid}\nalive`));
          const first = await each(count);
          for (const [i, n] of first.entries()) {
            expect(n, `counter in ${all[i]} at the fork`).toBeGreaterThanOrEqual(atFork);
          }
          // Stopped in the first fork only: it stands still there, and goes on everywhere else.
          await sh(targets[0]!.id, "kill $(cat /tmp/counter.pid)");
          const before = await each(count);
          await sleep(3_000);
          const after = await each(count);
          expect(after[1]).toBe(before[1]);
          for (const i of all.keys()) {
            if (i !== 1) expect(after[i]!, `counter in ${all[i]}`).toBeGreaterThan(before[i]!);
          }
        }

        // Bad input: nothing made, the right code.
        await expectCode(runtime.fork(source, []), "invalid_argument");
        await expectCode(
          runtime.fork(
            source,
            Array.from({ length: 11 }, (_, i) => ({ id: `${prefix}-x${i}` })),
          ),
          "invalid_argument",
        );
        await expectCode(runtime.fork(`${prefix}-nope`, [{ id: id("n") }]), "not_found");
        await expectCode(runtime.fork(source, [{ id: targets[0]!.id }]), "already_exists");
        // The fork layer cannot be named from outside.
        const [layer] = await forkLayers();
        await expectCode(
          runtime.create({
            id: id("steal"),
            template: layer!,
            vcpus: 1,
            memoryMb: 128,
            diskSizeMb: 32,
          }),
          "invalid_argument",
        );
        await runtime.pause(targets[1]!.id);
        await expectCode(runtime.fork(targets[1]!.id, [{ id: id("p") }]), "failed_precondition");
        expect(await forkLayers()).toHaveLength(1);

        // The layer goes with the last fork standing on it (the source never needs it).
        for (const t of targets) await runtime.destroy(t.id);
        expect(await forkLayers()).toEqual([]);
        expect(await sh(source, `cat ${FILE}`)).toBe(`mine-${source}`);
      } finally {
        for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
        await runtime.close();
        const leaks = await findLeaks(dir, ids);
        const layersLeft = await forkLayers();
        if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
        await restoreHost();
        expect(leaks).toEqual([]);
        expect(layersLeft).toEqual([]);
      }
    });
  });
}

describe.skipIf(rootSkip)("namespace fork layers", { timeout: 300_000 }, () => {
  it("stay while a snapshot of a fork stands on them, and go with it", async () => {
    const restoreHost = await keepHostFirewallState();
    const dir = await mkdtemp(join(tmpdir(), "wrenn-fork-"));
    const prefix = `fl${randomBytes(3).toString("hex")}`;
    const ids = [`${prefix}-src`, `${prefix}-f0`, `${prefix}-again`];
    const runtime = new NamespaceRuntime({
      agentDir: dir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.0/25`),
    });
    const layers = async () =>
      (await readdir(join(dir, "templates"))).filter((n) => n.startsWith("fork-"));
    try {
      await runtime.adopt();
      const spec = { template: "test-minimal", vcpus: 1, memoryMb: 128, diskSizeMb: 32 };
      await runtime.create({ id: ids[0]!, ...spec });
      await runtime.fork(ids[0]!, [{ id: ids[1]! }]);
      await runtime.snapshot(ids[1]!, `${prefix}-snap`);
      await runtime.destroy(ids[1]!);
      expect(await layers()).toHaveLength(1);
      // A sandbox from that snapshot runs on the layer too.
      await runtime.create({ id: ids[2]!, ...spec, template: `${prefix}-snap` });
      await runtime.destroy(ids[2]!);
      expect(await layers()).toHaveLength(1);
      await runtime.deleteSnapshot(`${prefix}-snap`);
      expect(await layers()).toEqual([]);
    } finally {
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await runtime.close();
      const leaks = await findLeaks(dir, ids);
      if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
      await restoreHost();
      expect(leaks).toEqual([]);
    }
  });
});
