import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/index.js";
import { type SingleHost, startSingleHost } from "../src/single-host/index.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";

// `/health` while single-host mode prepares its default template. The real namespace runtime
// and template store run; only the store's ensureTemplate waits on a gate the test opens (a real
// build of test-minimal is too quick to be seen in progress). Needs root (the agent's firewall).

const TEMPLATE = "test-minimal";

/** Holds the runtime's template preparation until `open()` (or fails it with `fail()`). */
function gateTemplatePreparation(runtime: NamespaceRuntime) {
  const store = runtime.templateStore;
  const ensure = store.ensureTemplate.bind(store);
  let open!: () => void;
  let fail!: (err: Error) => void;
  const gate = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  store.ensureTemplate = async (name, opts) => {
    await gate;
    return ensure(name, opts);
  };
  return { open, fail };
}

describe("/health in single-host mode", { timeout: 60_000 }, () => {
  const sqlite = testEngines().find((e) => e.name === "sqlite");
  let dir: string;
  let database: TestDatabase | undefined;
  let host: SingleHost | undefined;
  let restoreHost: () => Promise<void> = async () => {};

  beforeEach(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-health-"));
    database = await sqlite?.create();
  });
  afterEach(async () => {
    await host?.close();
    host = undefined;
    await database?.cleanup();
    await rm(dir, { recursive: true, force: true });
    await restoreHost();
  });

  const start = async () => {
    const agentDir = join(dir, "agent");
    const runtime = new NamespaceRuntime({
      agentDir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
    });
    const gate = gateTemplatePreparation(runtime);
    const config = loadConfig({ WRENN_DATA_DIR: dir, WRENN_DEFAULT_TEMPLATE: TEMPLATE });
    host = await startSingleHost(config, pino({ level: "silent" }), {
      db: database?.handle,
      agentDir,
      runtime,
      warmPool: [],
      listen: false,
    });
    const health = async () => {
      const res = await (host as SingleHost).app.request("/health");
      return { status: res.status, body: await res.json() };
    };
    return { gate, health, ready: host.ready };
  };

  it("answers 503 naming the template being prepared, then 200 once it is ready", async () => {
    const { gate, health, ready } = await start();
    expect(await health()).toEqual({
      status: 503,
      body: { status: "preparing", preparing: [`template ${TEMPLATE}`] },
    });
    // Still preparing a moment later: nothing but the template decides readiness.
    await new Promise((r) => setTimeout(r, 200));
    expect((await health()).status).toBe(503);
    gate.open();
    await ready;
    expect(await health()).toEqual({ status: 200, body: { status: "ok" } });
  });

  it("keeps answering 503, naming the failure, when preparing fails", async () => {
    const { gate, health, ready } = await start();
    gate.fail(new Error("mirror unreachable"));
    await expect(ready).rejects.toThrow("mirror unreachable");
    expect(await health()).toEqual({
      status: 503,
      body: {
        status: "preparing",
        preparing: [`template ${TEMPLATE} (failed: mirror unreachable)`],
      },
    });
  });
});
