import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { keepHostFirewallState } from "@wrenn/agent";
import { bootstrapSingleHost, loadConfig, type SingleHost, startSingleHost } from "@wrenn/server";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

// Every example, run as its own process the way a user runs it (`tsx src/index.ts`), against one
// real single-host server with the default `base` template (Debian, python3). Needs root and
// what single-host mode needs (bubblewrap, iproute2, nftables or iptables, e2fsprogs,
// util-linux) plus debootstrap and Debian's mirror the first time `base` is built.
//
// WRENN_TEST_TEMPLATE_CACHE=<dir> keeps built templates in <dir> between runs (the agent's
// templates/ directory becomes a link to it), so only the first run pays for debootstrap.

const EXAMPLES_DIR = resolve(fileURLToPath(new URL("..", import.meta.url)));
const RUN_TIMEOUT_MS = 150_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("examples against a real single-host server", () => {
  let dataDir: string;
  let host: SingleHost | undefined;
  let env: Record<string, string> | undefined;
  let restoreHost: () => Promise<void> = async () => {};
  let cacheBefore: Set<string> | undefined;
  const templateCache = process.env.WRENN_TEST_TEMPLATE_CACHE;

  /** The REST API with the examples' key; JSON answer, or undefined for 204. */
  const api = async <T = undefined>(path: string, method = "GET"): Promise<T> => {
    const res = await fetch(`${env?.WRENN_API_URL}${path}`, {
      method,
      headers: { "x-api-key": env?.WRENN_API_KEY ?? "" },
    });
    expect(res.ok, `${method} ${path}: ${res.status}`).toBe(true);
    return (res.status === 204 ? undefined : await res.json()) as T;
  };

  /** Runs an example's entry point in its own process, as `npm start` in its folder would. */
  const runExample = (name: string, args: string[] = []) =>
    new Promise<Run>((done, fail) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/index.ts", ...args], {
        cwd: join(EXAMPLES_DIR, name),
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (s: string) => {
        stdout += s;
      });
      child.stderr.setEncoding("utf8").on("data", (s: string) => {
        stderr += s;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
      child.once("error", fail);
      child.once("close", (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr });
      });
    });

  /** Runs an example, expects it to succeed, and returns what it printed. */
  const expectSuccess = async (name: string): Promise<string> => {
    const run = await runExample(name);
    expect(run.code, `${name} failed:\n${run.stdout}\n${run.stderr}`).toBe(0);
    return run.stdout;
  };

  /**
   * Removes what the last example left alive (sandboxes not stopped, snapshots) and says what it
   * was: every example cleans up after itself, and the next one starts clean even if it did not.
   */
  const removeLeftovers = async () => {
    const { sandboxes } = await api<{ sandboxes: { id: string; state: string }[] }>(
      "/v1/sandboxes",
    );
    const alive = sandboxes.filter((s) => s.state !== "stopped").map((s) => s.id);
    const { snapshots } = await api<{ snapshots: { name: string }[] }>("/v1/snapshots");
    for (const id of alive) await api(`/v1/sandboxes/${id}`, "DELETE");
    for (const { name } of snapshots) await api(`/v1/snapshots/${name}`, "DELETE");
    return { alive, snapshots: snapshots.map((s) => s.name) };
  };
  /** Nothing left through the API, and nothing on the host either (destroyed, not just marked). */
  const expectNothingLeft = async () => {
    const left = await removeLeftovers();
    const onHost = host?.embedded.agent.runtime.list().map((s) => s.id);
    expect({ ...left, onHost }).toEqual({ alive: [], snapshots: [], onHost: [] });
  };

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dataDir = await mkdtemp(join(tmpdir(), "wrenn-examples-"));
    const agentDir = join(dataDir, "agent");
    await mkdir(agentDir);
    if (templateCache) {
      await mkdir(templateCache, { recursive: true });
      cacheBefore = new Set(await readdir(templateCache));
      await symlink(resolve(templateCache), join(agentDir, "templates"));
    }
    // The default template stays the user's default: `base`.
    const config = loadConfig({ WRENN_DATA_DIR: dataDir, WRENN_PORT: "0" });
    host = await startSingleHost(config, pino({ level: process.env.WRENN_LOG_LEVEL ?? "warn" }), {
      agentDir,
      warmPool: [],
    });
    await host.ready;
    const url = host.http?.url ?? "";
    const client = (await bootstrapSingleHost(host.services, dataDir, url)).config;
    if (!client) throw new Error("bootstrap made no client config");
    env = { WRENN_API_URL: client.api_url, WRENN_API_KEY: client.api_key };
  });

  afterEach(async () => {
    if (env) await removeLeftovers();
  });

  afterAll(async () => {
    if (host) {
      const runtime = host.embedded.agent.runtime;
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await host.close();
    }
    // A snapshot an example failed to delete must not stay in the shared cache.
    if (templateCache && cacheBefore) {
      for (const name of await readdir(templateCache)) {
        if (!cacheBefore.has(name) && name !== "base" && name !== "code-interpreter")
          await rm(join(templateCache, name), { recursive: true, force: true });
      }
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
  });

  it("quickstart: creates, runs, reads a file and kills", async () => {
    const out = await expectSuccess("quickstart");
    const id = /created sandbox (\S+)/.exec(out)?.[1];
    expect(id).toBeDefined();
    expect(out).toMatch(/hello from \S+ as user/);
    expect(out).toContain("/tmp/sum.txt says: 5050");
    expect(out).toContain("cat /tmp/greeting.txt: Hello, Wrenn!");
    expect(out).toContain(`killed sandbox ${id}`);
    expect((await api<{ state: string }>(`/v1/sandboxes/${id}`)).state).toBe("stopped");
    await expectNothingLeft();
  });

  it("streaming: output arrives while the command runs, by callback and by iteration", async () => {
    const out = await expectSuccess("streaming");
    const steps = [...out.matchAll(/\[stdout[^\]]*\] step (\d) of 5/g)].map((m) => m[1]);
    // Five steps by callback, then five by iteration, each in order.
    expect(steps).toEqual(["1", "2", "3", "4", "5", "1", "2", "3", "4", "5"]);
    expect(out).toMatch(/\[stderr[^\]]*\] done/);
    const timing = /exit code 0, first output after (\d+) ms, finished after (\d+) ms/.exec(out);
    expect(timing).not.toBeNull();
    // The command sleeps 1.5 s after its first line: streamed output comes well before the end.
    expect(Number(timing?.[2]) - Number(timing?.[1])).toBeGreaterThanOrEqual(1000);
    expect(out).toMatch(/background: pid \d+/);
    expect(out).toContain("iteration: exit code 0, 5 lines");
    await expectNothingLeft();
  });

  it("pty-session: drives a shell through a pseudo-terminal", async () => {
    const out = await expectSuccess("pty-session");
    expect(out).toMatch(/shell started in a pty, pid \d+/);
    expect(out).toContain("answer=42");
    expect(out).toMatch(/tty=\/dev\/pts\/\d+/);
    expect(out).toContain("size=24 80");
    // After resize({ cols: 100, rows: 30 }) the shell sees the new size.
    expect(out).toContain("size=30 100");
    expect(out).toContain("here=/tmp");
    expect(out).toContain("shell exited with code 0");
    await expectNothingLeft();
  });

  it("run-tests: uploads the fixture project and its tests pass in the sandbox", async () => {
    const out = await expectSuccess("run-tests");
    expect(out).toContain("uploaded 5 files to /home/user/project:");
    expect(out).toContain("/home/user/project/tests/test_stats.py");
    expect(out).toContain("test_longest_word (tests.test_stats.StatsTest");
    expect(out).toMatch(/Ran 4 tests in/);
    expect(out).toMatch(/\nOK\n/);
    expect(out).toContain("tests passed");
    await expectNothingLeft();
  });

  it("pause-resume: processes, memory and files survive a pause", async () => {
    const out = await expectSuccess("pause-resume");
    expect(out).toContain("state after pause(): paused");
    expect(out).toContain("state after Sandbox.connect(): running");
    const before = Number(/counter before pause: (\d+)/.exec(out)?.[1]);
    const after = Number(/counter after resume: (\d+)/.exec(out)?.[1]);
    // The counter ran for a second before the pause and carried on from there afterwards.
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThanOrEqual(before);
    expect(out).toMatch(/counter process \d+ still running: yes/);
    expect(out).toContain("notes file: written before the pause");
    expect(out).toContain("still counting: yes");
    await expectNothingLeft();
  });

  it("snapshot-fanout: many sandboxes from one snapshot, each with the prepared data", async () => {
    const out = await expectSuccess("snapshot-fanout");
    expect(out).toMatch(/snapshot fanout-\S+ made from \S+/);
    const workers = [
      ...out.matchAll(
        /worker (\d) \((\S+)\): same data (\w+), partial sum (\d+), worker files it sees: (\d+)/g,
      ),
    ];
    expect(workers.map((w) => w[1]).sort()).toEqual(["0", "1", "2"]);
    // Three different sandboxes, each seeing the snapshot's data and only its own changes.
    expect(new Set(workers.map((w) => w[2])).size).toBe(3);
    for (const w of workers) {
      expect(w[3]).toBe("yes");
      expect(w[5]).toBe("1");
    }
    expect(out).toMatch(/partial sums add up to \d+; the prepared sandbox computed \d+: match/);
    await expectNothingLeft();
  });

  /** Whether a sandbox resolves Debian's mirror (through the agent's DNS forwarder). */
  const sandboxResolvesDebian = async (): Promise<boolean> => {
    const post = (path: string, body: unknown) =>
      fetch(`${env?.WRENN_API_URL}${path}`, {
        method: "POST",
        headers: { "x-api-key": env?.WRENN_API_KEY ?? "", "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const { id } = (await (await post("/v1/sandboxes", {})).json()) as { id: string };
    try {
      const probe = (await (
        await post(`/v1/sandboxes/${id}/exec`, {
          cmd: "getent hosts deb.debian.org",
          timeout_ms: 15_000,
        })
      ).json()) as { exit_code?: number };
      return probe.exit_code === 0;
    } finally {
      await api(`/v1/sandboxes/${id}`, "DELETE");
    }
  };

  it("custom-template: builds in code and from a Dockerfile, rebuilds from the cache, starts its service", async () => {
    // apt in a build sandbox downloads from Debian's mirror, as this machine can: names must
    // resolve inside a sandbox with internet access.
    expect(await sandboxResolvesDebian()).toBe(true);
    const out = await expectSuccess("custom-template");
    expect(out).toMatch(/built custom-\S+ version 1 in \d+ ms/);
    // The rebuild after changing the last step: every step before it is served by the cache.
    const rebuild = out.slice(out.indexOf("rebuilding"), out.indexOf("the start command answers"));
    expect(rebuild).toContain("APT INSTALL jq (cached)");
    expect(rebuild).toMatch(/COPY 1 file\(s\) → \/opt\/app \(cached\)/);
    expect(rebuild).toMatch(/RUN echo v2 > \/opt\/app\/VERSION\n/);
    const ratio = Number(/version 2 in \d+ ms \(([\d.]+)× the first\)/.exec(out)?.[1]);
    expect(ratio).toBeLessThan(0.8);
    expect(out).toContain(
      'the start command answers: {"greeting":"hello from a custom template","cwd":"/opt/app"}',
    );
    expect(out).toContain("version file: v2");
    expect(out).toMatch(/from the Dockerfile: jq-1\.\S+, GREETING=hello from a Dockerfile/);
    expect(out).toMatch(/templates: custom-\S+@1, custom-\S+@2, custom-\S+-docker@1/);
    expect((await api<{ templates: unknown[] }>("/v1/templates")).templates).toEqual([]);
    await expectNothingLeft();
  });

  it("agent-tool: returns stdout, stderr and exit code of model-written Python", async () => {
    const out = await expectSuccess("agent-tool");
    const answers = out
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { tool: string; result: Record<string, unknown> });
    expect(answers).toHaveLength(4);
    // Sum of the primes below 100.
    expect(answers[0]).toEqual({
      tool: "run_python",
      result: { stdout: "1060\n", stderr: "", exitCode: 0 },
    });
    expect(answers[1]?.result).toMatchObject({
      stdout: "",
      exitCode: 1,
      stderr: expect.stringContaining("ZeroDivisionError: division by zero"),
    });
    // The third call reads the file the first one wrote: one sandbox per conversation.
    expect(answers[2]?.result).toEqual({ stdout: "25 97\n", stderr: "", exitCode: 0 });
    // Code that never ends is killed at the limit and reported as such.
    expect(answers[3]?.result).toMatchObject({
      exitCode: 124,
      stderr: expect.stringContaining("ran longer than"),
    });
    await expectNothingLeft();
  });

  it("data-analysis: pandas on a CSV and a matplotlib PNG through runCode", async () => {
    // Built here, not inside the example's create call (a build takes minutes; the example's
    // run is bounded), and cached in WRENN_TEST_TEMPLATE_CACHE like `base`.
    if (!host) throw new Error("no server");
    const { templateStore } = host.embedded.agent.runtime as unknown as {
      templateStore: { ensureTemplate(name: string): Promise<unknown> };
    };
    await templateStore.ensureTemplate("code-interpreter");
    const out = await expectSuccess("data-analysis");
    expect(out).toContain("rows: 18\n");
    expect(out).toMatch(/north\s+945\n/);
    expect(out).toContain("best shop: north\n");
    expect(out).toContain("[sandbox] plotting 3 shops over 6 months\n");
    const figure = /figure: (.*wrenn-sales\.png) \(\d{4,} bytes\)/.exec(out)?.[1];
    expect(figure).toBeDefined();
    await rm(figure ?? "", { force: true });
    expect(out).toContain("a mistake: KeyError: 'revenue'\n");
    await expectNothingLeft();
  }, 3_600_000);
});
