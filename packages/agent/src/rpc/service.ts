import { randomUUID } from "node:crypto";
import { mkdir, readFile, statfs, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import type { HostAgentService } from "@wrenn/proto/agent";
import { AgentError } from "../errors.js";
import type { Reaper } from "../reaper/index.js";
import { type Runtime, RuntimeSet, refuseForkLayer } from "../runtime/index.js";
import { assertSandboxId } from "../state/index.js";
import { assertSafeName } from "../template/index.js";
import { toMetrics, toSandbox, toSnapshot } from "./convert.js";

export interface HostAgentServiceOptions {
  runtime: Runtime;
  reaper: Reaper;
  agentDir: string;
  version: string;
}

/** AgentErrors (and anything else thrown) become Connect errors with the matching code. */
function guard<A extends unknown[], R>(fn: (...args: A) => Promise<R>) {
  return async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      throw AgentError.from(err).toConnectError();
    }
  };
}

/** The host's stable id, made once and kept in the agent directory. */
async function hostId(agentDir: string): Promise<string> {
  const file = join(agentDir, "host-id");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    const id = randomUUID();
    await mkdir(agentDir, { recursive: true });
    await writeFile(file, `${id}\n`, { flag: "wx" }).catch(() => {});
    return (await readFile(file, "utf8")).trim();
  }
}

export function createHostAgentService(
  opts: HostAgentServiceOptions,
): ServiceImpl<typeof HostAgentService> {
  const { runtime, reaper } = opts;
  const sandbox = (id: string) => toSandbox(runtime.get(id), reaper.lastActiveAt(id));
  const known = (id: string) => {
    assertSandboxId(id);
    return runtime.get(id);
  };

  return {
    createSandbox: guard(async (req, ctx) => {
      assertSandboxId(req.sandboxId);
      assertSafeName(req.template, "template name");
      if (req.runtime && !(runtime instanceof RuntimeSet) && req.runtime !== runtime.name) {
        throw new AgentError("invalid_argument", `runtime ${req.runtime} is not available here`);
      }
      const info = await runtime.create(
        {
          id: req.sandboxId,
          template: req.template,
          vcpus: req.vcpus,
          memoryMb: req.memoryMb,
          diskSizeMb: req.diskSizeMb,
          timeoutSec: req.timeoutSec,
          envs: req.envs,
          metadata: req.metadata,
          allowInternetAccess: req.allowInternetAccess,
          egress: { allowOut: req.allowOut, denyOut: req.denyOut },
          runtime: req.runtime || undefined,
        },
        { signal: ctx.signal },
      );
      reaper.touch(info.id);
      return { sandbox: sandbox(info.id) };
    }),
    destroySandbox: guard(async (req) => {
      known(req.sandboxId);
      await runtime.destroy(req.sandboxId);
      reaper.forget(req.sandboxId);
      return {};
    }),
    pauseSandbox: guard(async (req) => {
      known(req.sandboxId);
      await runtime.pause(req.sandboxId);
      return { sandbox: sandbox(req.sandboxId) };
    }),
    resumeSandbox: guard(async (req) => {
      known(req.sandboxId);
      await runtime.resume(req.sandboxId);
      if (req.timeoutSec !== undefined) await runtime.setTimeout(req.sandboxId, req.timeoutSec);
      reaper.touch(req.sandboxId);
      return { sandbox: sandbox(req.sandboxId) };
    }),
    pingSandbox: guard(async (req) => {
      known(req.sandboxId);
      return { lastActiveAt: timestampFromDate(reaper.touch(req.sandboxId)) };
    }),
    setSandboxTimeout: guard(async (req) => {
      known(req.sandboxId);
      await runtime.setTimeout(req.sandboxId, req.timeoutSec);
      reaper.touch(req.sandboxId);
      return { sandbox: sandbox(req.sandboxId) };
    }),
    setSandboxNetwork: guard(async (req) => {
      known(req.sandboxId);
      await runtime.setNetwork(req.sandboxId, {
        allowInternetAccess: req.allowInternetAccess,
        egress: { allowOut: req.allowOut, denyOut: req.denyOut },
      });
      reaper.touch(req.sandboxId);
      return { sandbox: sandbox(req.sandboxId) };
    }),
    getSandbox: guard(async (req) => {
      known(req.sandboxId);
      return { sandbox: sandbox(req.sandboxId) };
    }),
    listSandboxes: guard(async () => {
      const all = runtime.list();
      return {
        sandboxes: all.map((s) => toSandbox(s, reaper.lastActiveAt(s.id))),
        autoPausedSandboxIds: all.filter((s) => s.autoPaused).map((s) => s.id),
      };
    }),
    getSandboxMetrics: guard(async (req) => {
      known(req.sandboxId);
      return { metrics: toMetrics(await runtime.metrics(req.sandboxId)) };
    }),
    forkSandbox: guard(async (req) => {
      known(req.sandboxId);
      if (!runtime.fork) throw new AgentError("failed_precondition", "this agent cannot fork");
      const made = await runtime.fork(
        req.sandboxId,
        req.forks.map((f) => ({ id: f.sandboxId, metadata: f.metadata, timeoutSec: f.timeoutSec })),
      );
      for (const s of made.sandboxes) reaper.touch(s.id);
      return {
        sandboxes: made.sandboxes.map((s) => sandbox(s.id)),
        sourcePauseMs: Math.round(made.sourcePauseMs),
      };
    }),
    createSnapshot: guard(async (req) => {
      known(req.sandboxId);
      assertSafeName(req.name, "snapshot name");
      refuseForkLayer(req.name, "snapshot name");
      return { snapshot: toSnapshot(await runtime.snapshot(req.sandboxId, req.name)) };
    }),
    deleteSnapshot: guard(async (req) => {
      assertSafeName(req.name, "snapshot name");
      refuseForkLayer(req.name, "snapshot name");
      await runtime.deleteSnapshot(req.name);
      return {};
    }),
    listSnapshots: guard(async () => ({
      snapshots: (await runtime.listSnapshots()).map(toSnapshot),
    })),
    getHostInfo: guard(async () => {
      const entries = runtime instanceof RuntimeSet ? runtime.entries : [{ runtime, accel: "" }];
      const all = runtime.list();
      const live = all.filter((s) => s.state === "running" || s.state === "paused");
      const disk = await statfs(opts.agentDir);
      return {
        hostId: await hostId(opts.agentDir),
        hostname: os.hostname(),
        version: opts.version,
        runtimes: entries.map((e) => e.runtime.name),
        runtimeDetails: entries.map((e) => ({ name: e.runtime.name, accel: e.accel ?? "" })),
        defaultRuntime: runtime.name,
        capacity: {
          vcpus: os.availableParallelism(),
          memoryMb: BigInt(Math.floor(os.totalmem() / 2 ** 20)),
          diskMb: BigInt(Math.floor((disk.blocks * disk.bsize) / 2 ** 20)),
          maxSandboxes: 0,
        },
        usage: {
          sandboxesRunning: all.filter((s) => s.state === "running").length,
          sandboxesPaused: all.filter((s) => s.state === "paused").length,
          memoryAllocatedMb: BigInt(live.reduce((n, s) => n + s.memoryMb, 0)),
          vcpusAllocated: live.reduce((n, s) => n + s.vcpus, 0),
        },
        templates: (
          await Promise.all(
            entries.map(async (e) => ({ name: e.runtime.name, list: await e.runtime.templates() })),
          )
        ).flatMap(({ name, list }) =>
          list.map((t) => ({
            name: t.name,
            ready: t.ready,
            runtime: name,
            sizeBytes: BigInt(t.sizeBytes),
          })),
        ),
      };
    }),
  };
}
