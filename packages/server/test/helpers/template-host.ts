import { mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  AddressPool,
  defaultEnvdDir,
  keepHostFirewallState,
  MicroVmRuntime,
  NamespaceRuntime,
  RuntimeSet,
  silentLogger,
} from "@wrenn/agent";
import pino from "pino";
import { loadConfig } from "../../src/config/index.js";
import { type SingleHost, startSingleHost } from "../../src/single-host/index.js";
import { newTeamKey } from "./app.js";
import { type TestDatabase, testEngines } from "./databases.js";
import { leaksUnder } from "./host-state.js";

/** A template build's NDJSON log, read to the end. */
export interface BuildResult {
  events: Record<string, unknown>[];
  last: Record<string, unknown>;
  ms: number;
}

/** A real single-host server (SQLite, embedded agent, namespace runtime; microVM too on request) for template builds. */
export interface TemplateHost {
  host: SingleHost;
  agentDir: string;
  database: TestDatabase;
  /** The API with the team's key. */
  call(method: string, path: string, json?: unknown): Promise<Response>;
  /** POSTs a build (from the host's template unless `from` is given) and reads its log. */
  build(
    recipe: Record<string, unknown>,
    onEvent?: (e: Record<string, unknown>) => void,
  ): Promise<BuildResult>;
  exec(id: string, cmd: string): Promise<{ stdout: string; stderr: string; exit_code: number }>;
  /** Destroys what is left and stops the server; returns mounts and loop devices left behind. */
  close(): Promise<string[]>;
}

export interface TemplateHostOptions {
  /** The default template, and what builds start from. */
  template: string;
  /** More `WRENN_*` settings for the server. */
  env?: Record<string, string>;
  /**
   * A directory of built base templates shared between suites (WRENN_TEST_TEMPLATE_CACHE): the
   * agent's templates/ becomes a link to it, and what this host adds there goes at close.
   */
  templateCache?: string;
  /** The microVM runtime too (namespace stays the default), over the same template store. */
  microvm?: boolean;
}

const BASES = new Set(["base", "code-interpreter", "test-minimal"]);

/** The host's runtime: namespace, or namespace and microVM over one template store and pool. */
function makeRuntime(agentDir: string, cidr: string, microvm: boolean) {
  const common = {
    agentDir,
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: new AddressPool(cidr),
  };
  const namespace = new NamespaceRuntime(common);
  if (!microvm) return namespace;
  const vm = new MicroVmRuntime({ ...common, templateStore: namespace.templateStore });
  return new RuntimeSet(
    [{ runtime: namespace }, { runtime: vm, probe: () => vm.probe() }],
    "namespace",
  );
}

export async function startTemplateHost(opts: TemplateHostOptions): Promise<TemplateHost> {
  const sqlite = testEngines().find((e) => e.name === "sqlite");
  if (!sqlite) throw new Error("no sqlite engine");
  const cidr = process.env.WRENN_SANDBOX_CIDR ?? "10.226.0.0/16";
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-templates-"));
  const agentDir = await mkdtemp(join(tmpdir(), "wrenn-templates-agent-"));
  const cache = opts.templateCache;
  let cacheBefore: Set<string> | undefined;
  if (cache) {
    await mkdir(cache, { recursive: true });
    cacheBefore = new Set(await readdir(cache));
    await symlink(resolve(cache), join(agentDir, "templates"));
  }
  const database = await sqlite.create();
  const host = await startSingleHost(
    loadConfig({ WRENN_DATA_DIR: dataDir, WRENN_DEFAULT_TEMPLATE: opts.template, ...opts.env }),
    pino({ level: process.env.WRENN_LOG_LEVEL ?? "silent" }),
    {
      db: database.handle,
      agentDir,
      runtime: makeRuntime(agentDir, cidr, opts.microvm ?? false),
      reconcileIntervalMs: 500,
      listen: false,
    },
  );
  await host.ready;
  const key = await newTeamKey(host.app);

  const call = async (method: string, path: string, json?: unknown) =>
    host.app.request(path, {
      method,
      headers: { ...key, ...(json === undefined ? {} : { "content-type": "application/json" }) },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });

  return {
    host,
    agentDir,
    database,
    call,
    async build(recipe, onEvent = () => {}) {
      const started = performance.now();
      const res = await call("POST", "/v1/templates/builds", {
        from: { template: opts.template },
        ...recipe,
      });
      // The body is the log stream: read it only to explain a refusal.
      if (res.status !== 200) throw new Error(`build refused: ${res.status} ${await res.text()}`);
      if (!res.headers.get("content-type")?.includes("application/x-ndjson")) {
        throw new Error(`a build log is NDJSON, got ${res.headers.get("content-type")}`);
      }
      const events: Record<string, unknown>[] = [];
      let buffered = "";
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const event = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
          buffered = buffered.slice(nl + 1);
          events.push(event);
          onEvent(event);
        }
      }
      return { events, last: events.at(-1) ?? {}, ms: performance.now() - started };
    },
    async exec(id, cmd) {
      return (await (await call("POST", `/v1/sandboxes/${id}/exec`, { cmd })).json()) as {
        stdout: string;
        stderr: string;
        exit_code: number;
      };
    },
    async close() {
      const runtime = host.embedded.agent.runtime;
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await host.close();
      await database.cleanup();
      const leaks = await leaksUnder(agentDir);
      // Snapshots and layers this host made must not stay in a shared cache.
      if (cache && cacheBefore) {
        for (const name of await readdir(cache)) {
          if (!cacheBefore.has(name) && !BASES.has(name))
            await rm(join(cache, name), { recursive: true, force: true });
        }
      }
      await rm(dataDir, { recursive: true, force: true });
      if (leaks.length === 0) await rm(agentDir, { recursive: true, force: true });
      await restoreHost();
      return leaks;
    },
  };
}
