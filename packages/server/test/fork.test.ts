import { mkdtemp, readdir, rm } from "node:fs/promises";
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
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import { leaksUnder } from "./helpers/host-state.js";

// Fork through the whole path: HTTP → service → embedded agent → real namespace sandboxes.
// Needs root, bubblewrap, iproute2, nftables/iptables, e2fsprogs, util-linux.

const TEMPLATE = "test-minimal";
/** Low enough that a second fork of five goes past it. */
const RUNNING_SANDBOXES = 8;

interface Sandbox {
  id: string;
  state: string;
  template: string;
  runtime: string;
  vcpus: number;
  memory_mb: number;
  disk_size_mb: number;
  metadata: Record<string, string>;
}

const rootSkip = process.getuid?.() === 0 ? undefined : "needs root (namespaces, mounts)";

for (const engine of testEngines()) {
  const skip = rootSkip ?? engine.skipReason;
  describe.skipIf(skip)(
    `fork over HTTP on ${engine.name}${skip ? ` (skipped: ${skip})` : ""}`,
    { timeout: 180_000 },
    () => {
      const net16 = process.env.WRENN_SANDBOX_CIDR?.split(".").slice(0, 2).join(".") || "10.228";
      const cidr = `${net16}.${Math.floor(Math.random() * 250)}.0/24`;
      let dataDir: string;
      let agentDir: string;
      let database: TestDatabase;
      let host: SingleHost;
      let keyA: Record<string, string>;
      let keyB: Record<string, string>;
      let restoreHost: () => Promise<void> = async () => {};

      const call = (path: string, json?: unknown, headers = keyA, method = "POST") =>
        host.app.request(path, {
          method,
          headers: { ...headers, "content-type": "application/json" },
          ...(json === undefined ? {} : { body: JSON.stringify(json) }),
        });
      const exec = async (id: string, cmd: string) => {
        const res = await call(`/v1/sandboxes/${id}/exec`, { cmd });
        const out = (await res.json()) as { stdout: string; exit_code: number };
        expect(out, cmd).toMatchObject({ exit_code: 0 });
        return out.stdout.trim();
      };
      const fork = (id: string, body?: unknown, headers = keyA) =>
        call(`/v1/sandboxes/${id}/fork`, body, headers);
      const forkLayers = async () =>
        (await readdir(join(agentDir, "templates")).catch(() => [] as string[])).filter((n) =>
          n.startsWith("fork-"),
        );

      beforeAll(async () => {
        restoreHost = await keepHostFirewallState();
        dataDir = await mkdtemp(join(tmpdir(), "wrenn-fork-server-"));
        agentDir = await mkdtemp(join(tmpdir(), "wrenn-fork-agent-"));
        const config = loadConfig({
          WRENN_DATA_DIR: dataDir,
          WRENN_DEFAULT_TEMPLATE: TEMPLATE,
          WRENN_TEAM_RUNNING_SANDBOXES: String(RUNNING_SANDBOXES),
        });
        database = await engine.create();
        host = await startSingleHost(config, pino({ level: "silent" }), {
          db: database.handle,
          agentDir,
          runtime: new NamespaceRuntime({
            agentDir,
            envdDir: defaultEnvdDir(),
            logger: silentLogger(),
            addressPool: new AddressPool(cidr),
          }),
          listen: false,
        });
        await host.ready;
        keyA = await newTeamKey(host.app);
        keyB = await newTeamKey(host.app);
      }, 120_000);

      afterAll(async () => {
        if (host) {
          const runtime = host.embedded.agent.runtime;
          for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
          await host.close();
        }
        await database?.cleanup();
        const leaks = agentDir ? await leaksUnder(agentDir) : [];
        const layers = agentDir ? await forkLayers() : [];
        await rm(dataDir, { recursive: true, force: true });
        if (leaks.length === 0) await rm(agentDir, { recursive: true, force: true });
        await restoreHost();
        expect(leaks).toEqual([]);
        expect(layers).toEqual([]);
      }, 120_000);

      it("makes five forks that diverge, within quotas, and leaves nothing when they go", async () => {
        const res = await call("/v1/sandboxes", {
          template: TEMPLATE,
          memory_mb: 128,
          disk_size_mb: 64,
          metadata: { role: "source" },
        });
        expect(res.status, await res.clone().text()).toBe(201);
        const source = (await res.json()) as Sandbox;
        await exec(source.id, "echo before > /tmp/probe");

        const forked = await fork(source.id, { count: 5 });
        expect(forked.status, await forked.clone().text()).toBe(201);
        const body = (await forked.json()) as { sandboxes: Sandbox[]; source_pause_ms: number };
        expect(body.source_pause_ms).toEqual(expect.any(Number));
        expect(body.sandboxes).toHaveLength(5);
        for (const s of body.sandboxes) {
          expect(s).toMatchObject({
            state: "running",
            template: source.template,
            runtime: source.runtime,
            vcpus: source.vcpus,
            memory_mb: source.memory_mb,
            disk_size_mb: source.disk_size_mb,
            metadata: { role: "source", forked_from: source.id },
          });
        }
        const all = [source.id, ...body.sandboxes.map((s) => s.id)];
        for (const id of all) expect(await exec(id, "cat /tmp/probe")).toBe("before");
        for (const id of all) await exec(id, `echo ${id} > /tmp/probe`);
        for (const id of all) expect(await exec(id, "cat /tmp/probe")).toBe(id);

        // Six running: five more would pass the team's eight.
        const over = await fork(source.id, { count: 5 });
        expect(over.status).toBe(403);
        expect(await over.json()).toMatchObject({ code: "permission_denied" });

        for (const id of body.sandboxes.map((s) => s.id)) {
          expect((await call(`/v1/sandboxes/${id}`, undefined, keyA, "DELETE")).status).toBe(204);
        }
        expect(await forkLayers()).toEqual([]);
        expect((await call(`/v1/sandboxes/${source.id}`, undefined, keyA, "DELETE")).status).toBe(
          204,
        );
      });

      it("gives the forks of a sandbox without public traffic their own traffic tokens", async () => {
        const made: string[] = [];
        const create = async (json: Record<string, unknown>) => {
          const res = await call("/v1/sandboxes", {
            template: TEMPLATE,
            memory_mb: 128,
            disk_size_mb: 64,
            ...json,
          });
          const sandbox = (await res.json()) as Sandbox & { traffic_access_token: string | null };
          made.push(sandbox.id);
          return sandbox;
        };
        const forksOf = async (id: string, count: number) => {
          const res = await fork(id, { count });
          expect(res.status, await res.clone().text()).toBe(201);
          const { sandboxes } = (await res.json()) as {
            sandboxes: (Sandbox & {
              allow_public_traffic: boolean;
              traffic_access_token: string | null;
            })[];
          };
          made.push(...sandboxes.map((s) => s.id));
          return sandboxes;
        };
        try {
          const source = await create({ allow_public_traffic: false });
          expect(source.traffic_access_token).toEqual(expect.any(String));
          // Forks take no public traffic either: without their tokens their ports answer no one.
          const tokens = new Set([source.traffic_access_token]);
          for (const s of await forksOf(source.id, 2)) {
            expect(s.allow_public_traffic).toBe(false);
            expect(s.traffic_access_token).toEqual(expect.any(String));
            tokens.add(s.traffic_access_token);
          }
          expect(tokens.size).toBe(3);
          // A public sandbox's forks need none.
          const open = await create({});
          const openForks = await forksOf(open.id, 1);
          expect(openForks.map((s) => s.traffic_access_token)).toEqual([null]);
        } finally {
          for (const id of made) await call(`/v1/sandboxes/${id}`, undefined, keyA, "DELETE");
        }
      });

      it("answers bad input with the right status and makes nothing", async () => {
        const res = await call("/v1/sandboxes", {
          template: TEMPLATE,
          memory_mb: 128,
          disk_size_mb: 64,
        });
        const { id } = (await res.json()) as Sandbox;
        for (const count of [0, 11, 1.5, "2"]) {
          const bad = await fork(id, { count });
          expect(bad.status, `count ${count}`).toBe(400);
          expect(await bad.json()).toMatchObject({ code: "invalid_argument" });
        }
        const unknown = await fork("k3x9q2m7v1b8n4c6z0ta", { count: 1 });
        expect(unknown.status).toBe(404);
        const theirs = await fork(id, { count: 1 }, keyB);
        expect(theirs.status).toBe(404);
        expect(await theirs.json()).toMatchObject({ code: "not_found" });
        expect((await call(`/v1/sandboxes/${id}/pause`)).status).toBe(200);
        const paused = await fork(id, {});
        expect(paused.status).toBe(409);
        expect(await paused.json()).toMatchObject({ code: "failed_precondition" });
        const listed = (await (await call("/v1/sandboxes", undefined, keyA, "GET")).json()) as {
          sandboxes: Sandbox[];
        };
        expect(listed.sandboxes.map((s) => s.id)).toEqual([id]);
        expect(await forkLayers()).toEqual([]);
        await call(`/v1/sandboxes/${id}`, undefined, keyA, "DELETE");
      });

      it("holds a team to its quota under a burst of creates and forks at once", async () => {
        // A team of its own, with nothing running: each request alone would pass the quota.
        const keyC = await newTeamKey(host.app);
        const small = { template: TEMPLATE, memory_mb: 128, disk_size_mb: 64 };
        const made: string[] = [];
        try {
          const first = await call("/v1/sandboxes", small, keyC);
          expect(first.status).toBe(201);
          const source = ((await first.json()) as Sandbox).id;
          made.push(source);
          const answers = await Promise.all([
            ...Array.from({ length: 9 }, () => call("/v1/sandboxes", small, keyC)),
            fork(source, { count: 3 }, keyC),
          ]);
          for (const res of answers) {
            const body = (await res.json()) as Sandbox & { sandboxes?: Sandbox[]; code?: string };
            if (res.status === 201) made.push(...(body.sandboxes ?? [body]).map((s) => s.id));
            else expect(body, `status ${res.status}`).toMatchObject({ code: "permission_denied" });
          }
          expect(made.length).toBeLessThanOrEqual(RUNNING_SANDBOXES);
          const listed = (await (await call("/v1/sandboxes", undefined, keyC, "GET")).json()) as {
            sandboxes: Sandbox[];
          };
          expect(listed.sandboxes.map((s) => s.id).sort()).toEqual([...made].sort());
        } finally {
          for (const id of made) await call(`/v1/sandboxes/${id}`, undefined, keyC, "DELETE");
        }
      });
    },
  );
}
