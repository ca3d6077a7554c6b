import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Listener } from "@wrenn/envd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { type Agent, createAgent } from "../src/rpc/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";

// GET/PUT /snapshots/<name>/archive between two real agents (own directories and ranges): a
// snapshot made on one runs on the other; broken and hostile archives leave nothing. Needs root.
const net = `10.234.${Math.floor(Math.random() * 250)}`;
const TEMPLATE = "test-minimal";

describe("snapshot transfer between agents", { timeout: 120_000 }, () => {
  const prefix = `st${randomBytes(3).toString("hex")}`;
  const ids = new Set<string>();
  const agents: { agent: Agent; dir: string; url: string; listener: Listener }[] = [];
  let restoreHost: () => Promise<void> = async () => {};

  const makeAgent = async (cidr: string) => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-transfer-"));
    const logger = silentLogger();
    const agent = createAgent({
      config: { agentDir: dir, warmPool: [] },
      logger,
      runtime: new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger,
        addressPool: new AddressPool(cidr),
      }),
    });
    await agent.start();
    const listener = await agent.listen(0, "127.0.0.1");
    const made = { agent, dir, url: listener.url, listener };
    agents.push(made);
    return made;
  };
  const archiveUrl = (url: string, name: string) => `${url}/snapshots/${name}/archive`;
  const put = (url: string, name: string, body: Buffer | ReadableStream, meta = "{}") =>
    fetch(archiveUrl(url, name), {
      method: "PUT",
      headers: { "content-type": "application/x-tar", "x-wrenn-snapshot": meta },
      body,
      duplex: "half",
    } as RequestInit);
  const tarOf = (dir: string, ...entries: string[]) =>
    spawnSync("tar", ["-C", dir, "-cf", "-", ...entries], { maxBuffer: 1 << 26 }).stdout;

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
  });

  afterAll(async () => {
    const leaks: string[] = [];
    for (const { agent } of agents) {
      for (const s of agent.runtime.list()) await agent.runtime.destroy(s.id).catch(() => {});
      await agent.close();
    }
    for (const { dir } of agents) {
      leaks.push(...(await findLeaks(dir, ids)));
      if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
    }
    await restoreHost();
    expect(leaks).toEqual([]);
  }, 120_000);

  it("a snapshot made on one host runs on another; the copy is refused twice", async () => {
    const a = await makeAgent(`${net}.0/25`);
    const b = await makeAgent(`${net}.128/25`);
    const source = `${prefix}-src`;
    ids.add(source);
    await a.agent.runtime.create({
      id: source,
      template: TEMPLATE,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 64,
    });
    const envd = new EnvdClient(`${a.url}/sandboxes/${source}/envd`, "root");
    await envd.sh("mkdir -p /tmp/x && echo carried > /tmp/x/file && rm -f /bin/true");
    const name = `${prefix}-snap`;
    await a.agent.runtime.snapshot(source, name);
    // Never copied whole: the next test sends it broken.
    await a.agent.runtime.snapshot(source, `${prefix}-other`);

    expect((await fetch(archiveUrl(a.url, "no-such"))).status).toBe(404);
    expect((await fetch(archiveUrl(a.url, "..%2Fescape"))).status).toBe(400);
    const got = await fetch(archiveUrl(a.url, name));
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/x-tar");
    const meta = JSON.parse(got.headers.get("x-wrenn-snapshot") ?? "{}");
    expect(meta).toMatchObject({
      base_template: TEMPLATE,
      vcpus: 1,
      memory_mb: 256,
      disk_size_mb: 64,
      source_sandbox_id: source,
    });
    const archive = Buffer.from(await got.arrayBuffer());

    const created = await put(b.url, name, archive, JSON.stringify(meta));
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ name, size_bytes: expect.any(Number) });
    expect((await put(b.url, name, archive)).status).toBe(409);
    const listed = await b.agent.runtime.listSnapshots();
    expect(listed.find((s) => s.name === name)).toMatchObject({
      sourceSandboxId: source,
      baseTemplate: TEMPLATE,
    });

    const copy = `${prefix}-copy`;
    ids.add(copy);
    await b.agent.runtime.create({
      id: copy,
      template: name,
      vcpus: 0,
      memoryMb: 0,
      diskSizeMb: 0,
    });
    const there = new EnvdClient(`${b.url}/sandboxes/${copy}/envd`);
    expect((await there.sh("cat /tmp/x/file; test -e /bin/true; echo $?")).stdout).toBe(
      "carried\n1\n",
    );
  });

  it("broken, foreign and escaping archives are refused and leave nothing", async () => {
    const b = agents[1]!;
    const before = await readdir(join(b.dir, "templates"));
    const other = `${prefix}-other`;
    const real = Buffer.from(await (await fetch(archiveUrl(agents[0]!.url, other))).arrayBuffer());

    // Cut off midway: the client's stream errors, the agent keeps nothing.
    const cut = new ReadableStream({
      start(controller) {
        controller.enqueue(real.subarray(0, 1_500));
        controller.error(new Error("connection lost"));
      },
    });
    await put(b.url, other, cut).catch(() => undefined);
    const truncated = await put(b.url, other, real.subarray(0, 1_500));
    expect(truncated.status).toBe(400);
    expect(((await truncated.json()) as { message: string }).message).toMatch(
      /not a valid archive|lacks a whole/,
    );
    const renamed = await put(b.url, `${prefix}-renamed`, real);
    expect(renamed.status).toBe(400);
    expect(((await renamed.json()) as { message: string }).message).toMatch(/holds snapshot/);

    const work = await mkdtemp(join(tmpdir(), "wrenn-hostile-tar-"));
    try {
      // An entry outside template.json/rootfs, and one written through a symlink that leaves.
      const outside = join(work, "outside");
      await mkdir(join(work, "a", "rootfs"), { recursive: true });
      await mkdir(outside);
      await writeFile(join(work, "a", "extra"), "x");
      const extra = await put(b.url, `${prefix}-extra`, tarOf(join(work, "a"), "extra", "rootfs"));
      expect(extra.status).toBe(400);
      expect(((await extra.json()) as { message: string }).message).toMatch(/unexpected entries/);

      await mkdir(join(work, "b", "rootfs"), { recursive: true });
      await symlink(outside, join(work, "b", "rootfs", "link"));
      await mkdir(join(work, "c", "rootfs", "link"), { recursive: true });
      await writeFile(join(work, "c", "rootfs", "link", "planted"), "x");
      const hostile = Buffer.concat([
        tarOf(join(work, "b"), "rootfs").subarray(0, -1024),
        tarOf(join(work, "c"), "rootfs/link/planted"),
      ]);
      const escaped = await put(b.url, `${prefix}-escape`, hostile);
      expect(escaped.status).toBe(400);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    expect(await readdir(join(b.dir, "templates"))).toEqual(before);
  });
});
