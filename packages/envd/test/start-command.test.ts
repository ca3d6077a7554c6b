import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";
import { EventReader } from "./helpers/events.js";

/** A template config dir (what /etc/wrenn is in a sandbox) with these files. */
async function configDir(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "wrenn-envd-config-"));
  // The start command runs as the test user: it must be able to write its ready file here.
  await chmod(dir, 0o777);
  for (const [name, body] of Object.entries(files)) {
    await writeFile(join(dir, name), JSON.stringify(body));
  }
  return dir;
}

/** /health until it stops answering 503 (starting); the last answer. */
async function settledHealth(envd: RunningEnvd, timeoutMs = 30_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${envd.baseUrl}/health`);
    if (res.status !== 503 || Date.now() > deadline) return res;
    await res.body?.cancel();
    await sleep(50);
  }
}

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("envd start command (/etc/wrenn/start.json)", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function envdWith(files: Record<string, unknown>): Promise<RunningEnvd> {
    const dir = await configDir(files);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const envd = await startEnvd({ WRENN_ENVD_CONFIG_DIR: dir });
    cleanup.push(() => envd.stop());
    return envd;
  }

  it("answers /health 204 at once without a start command", async () => {
    const envd = await envdWith({});
    expect((await fetch(`${envd.baseUrl}/health`)).status).toBe(204);
  });

  it("is not ready until the ready file exists, then lists the command under tag `start`", async () => {
    const marker = join(await mkdtemp(join(tmpdir(), "wrenn-start-")), "ready");
    await chmod(join(marker, ".."), 0o777);
    cleanup.push(() => rm(join(marker, ".."), { recursive: true, force: true }));
    const envd = await envdWith({
      "start.json": { cmd: `sleep 1; touch ${marker}; exec sleep 600`, ready: { file: marker } },
    });
    const early = await fetch(`${envd.baseUrl}/health`);
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ code: "starting" });
    expect((await settledHealth(envd)).status).toBe(204);
    const { processes } = await envd.process.list({});
    const start = processes.find((p) => p.tag === "start");
    expect(start?.config?.cmd).toBe("/bin/sh");
    expect(start?.config?.args.at(-1)).toContain("exec sleep 600");
  });

  it("waits for a port to answer and runs with the template's defaults and its own envs", async () => {
    const port = await freePort();
    const envd = await envdWith({
      "defaults.json": { envs: { FROM_TEMPLATE: "yes" }, workdir: "/tmp" },
      "start.json": {
        cmd: `exec node -e "require('net').createServer().listen(${port}, '127.0.0.1')"`,
        envs: { START_ONLY: "1" },
        ready: { port },
      },
    });
    expect((await settledHealth(envd)).status).toBe(204);
    const out = await new EventReader(
      envd.process.start({ process: { cmd: "/bin/sh", args: ["-c", "echo $FROM_TEMPLATE; pwd"] } }),
    ).toEnd();
    expect(out.stdout).toBe("yes\n/tmp\n");
  });

  it("passes a ready command once it exits 0", async () => {
    const envd = await envdWith({
      "start.json": {
        cmd: "exec sleep 600",
        ready: { cmd: 'test -n "$START_ENV"' },
        envs: { START_ENV: "x" },
      },
    });
    expect((await settledHealth(envd)).status).toBe(204);
  });

  it("reports a start command that exits with its output and exit code", async () => {
    const envd = await envdWith({
      "start.json": { cmd: "echo booting; echo broken >&2; exit 3", ready: { port: 1 } },
    });
    const res = await settledHealth(envd);
    expect(res.status).toBe(500);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: "start_failed", exitCode: 3 });
    expect(body.output).toContain("booting");
    expect(body.output).toContain("broken");
  });

  it("fails, and ends the command, when it is not ready within readyTimeoutMs", async () => {
    const envd = await envdWith({
      "start.json": {
        cmd: "exec sleep 600",
        ready: { file: "/nonexistent/ready" },
        readyTimeoutMs: 500,
      },
    });
    const res = await settledHealth(envd);
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({
      code: "start_failed",
      message: expect.stringContaining("500 ms"),
    });
    await sleep(200);
    expect((await envd.process.list({})).processes.find((p) => p.tag === "start")).toBeUndefined();
  });

  it("reports a start.json that is a FIFO instead of hanging on it", async () => {
    const dir = await configDir({});
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // What a snapshot of a sandbox whose root made one there carries.
    execFileSync("mkfifo", [join(dir, "start.json")]);
    const envd = await startEnvd({ WRENN_ENVD_CONFIG_DIR: dir });
    cleanup.push(() => envd.stop());
    const res = await fetch(`${envd.baseUrl}/health`, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({
      code: "start_failed",
      message: expect.stringContaining("not a regular file"),
    });
    // envd itself serves on.
    const r = await new EventReader(
      envd.process.start({ process: { cmd: "echo", args: ["ok"] } }),
    ).toEnd();
    expect(r.stdout).toBe("ok\n");
  });

  it("reports a malformed start.json instead of ignoring it", async () => {
    const envd = await envdWith({ "start.json": { ready: { port: 0 } } });
    const res = await fetch(`${envd.baseUrl}/health`);
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({
      code: "start_failed",
      message: expect.stringContaining("cmd"),
    });
  });
});
