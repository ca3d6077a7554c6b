import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { Filesystem } from "@wrenn/proto/filesystem";
import { Process } from "@wrenn/proto/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envdBundlePath } from "../src/paths.js";
import { type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";
import { EventReader } from "./helpers/events.js";

describe("envd server core", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd();
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("answers /health with 204", async () => {
    const res = await fetch(`${envd.baseUrl}/health`);
    expect(res.status).toBe(204);
  });

  it("serves Connect over HTTP/1.1 and cleartext HTTP/2 on the same port", async () => {
    for (const version of ["1.1", "2"] as const) {
      const client = createClient(Process, envd.transport(version));
      const out = await new EventReader(
        client.start({ process: { cmd: "echo", args: [version] } }),
      ).toEnd();
      expect(out.stdout).toBe(`${version}\n`);
      expect(out.end?.exitCode).toBe(0);
    }
  });

  it("serves the Filesystem service from its first calls, several at once, as it loads", async () => {
    const fresh = await startEnvd();
    try {
      // The first calls of envd's life, over both HTTP versions and with a command beside them.
      const clients = [fresh.filesystem, createClient(Filesystem, fresh.transport("2"))];
      const [stats, run] = await Promise.all([
        Promise.all(clients.flatMap((c) => [c.stat({ path: fresh.dir }), c.stat({ path: "/" })])),
        new EventReader(fresh.process.start({ process: { cmd: "true" } })).toEnd(),
      ]);
      expect(stats.map((s) => s.entry?.path)).toEqual([fresh.dir, "/", fresh.dir, "/"]);
      expect(run.end?.exitCode).toBe(0);
      const unknown = await fetch(`${fresh.baseUrl}/filesystem.Filesystem/Nope`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ code: "not_found" });
    } finally {
      await fresh.stop();
    }
  });

  it("answers unknown routes and methods with JSON errors", async () => {
    const missing = await fetch(`${envd.baseUrl}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "not_found" });
    const wrongMethod = await fetch(`${envd.baseUrl}/health`, { method: "DELETE" });
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toMatchObject({ code: "method_not_allowed" });
  });

  it("refuses malformed /init bodies and keeps the old defaults", async () => {
    const bad = [
      "{not json",
      JSON.stringify([1, 2]),
      JSON.stringify({ envVars: { A: 1 } }),
      JSON.stringify({ defaultUser: 42 }),
      JSON.stringify({ defaultUser: "no-such-user-here" }),
      "x".repeat(70_000),
    ];
    for (const body of bad) {
      const res = await fetch(`${envd.baseUrl}/init`, { method: "POST", body });
      expect(res.status, body.slice(0, 40)).toBe(400);
      expect(await res.json()).toMatchObject({ code: "invalid_argument" });
    }
    const out = await new EventReader(
      envd.process.start({ process: { cmd: "id", args: ["-un"] } }),
    ).toEnd();
    expect(out.stdout).toBe(`${TEST_USER}\n`);
  });

  it("applies /init defaults to later processes", async () => {
    const res = await fetch(`${envd.baseUrl}/init`, {
      method: "POST",
      body: JSON.stringify({ envVars: { WRENN_GREETING: "hello" }, defaultWorkdir: "/tmp" }),
    });
    expect(res.status).toBe(204);
    const out = await new EventReader(
      envd.process.start({ process: { cmd: "sh", args: ["-c", 'echo "$WRENN_GREETING"; pwd'] } }),
    ).toEnd();
    expect(out.stdout).toBe("hello\n/tmp\n");
  });
});

describe("envd with an access token", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd({ WRENN_ENVD_ACCESS_TOKEN: "s3cret-token" });
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("refuses every route but GET /health without the right X-Access-Token", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { "x-access-token": "wrong" },
      { "x-access-token": "s3cret-tokenX" },
    ];
    for (const headers of attempts) {
      for (const path of ["/files?path=/etc/hostname", "/metrics"]) {
        const res = await fetch(`${envd.baseUrl}${path}`, { headers });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ code: "unauthenticated" });
      }
      const start = new EventReader(envd.process.start({ process: { cmd: "true" } }, { headers }));
      await expect(start.toEnd()).rejects.toThrow(/unauthenticated/);
    }
    // Health says only "up": open to the agent's readiness probe without the token.
    expect((await fetch(`${envd.baseUrl}/health`)).status).toBe(204);
    const ok = await fetch(`${envd.baseUrl}/metrics`, {
      headers: { "x-access-token": "s3cret-token" },
    });
    expect(ok.status).toBe(200);
  });

  it("keeps the token out of the environment of what it starts", async () => {
    const out = await new EventReader(
      envd.process.start(
        { process: { cmd: "env" } },
        { headers: { "x-access-token": "s3cret-token" } },
      ),
    ).toEnd();
    expect(out.end?.exitCode).toBe(0);
    expect(out.stdout).not.toContain("s3cret-token");
  });
});

describe("envd's access token replaced by POST /init", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd({ WRENN_ENVD_ACCESS_TOKEN: "snapshot-token" });
  });
  afterAll(async () => {
    await envd?.stop();
  });

  const init = (body: unknown, token?: string) =>
    fetch(`${envd.baseUrl}/init`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token ? { "x-access-token": token } : {}),
      },
      body: JSON.stringify(body),
    });
  const metrics = (token: string) =>
    fetch(`${envd.baseUrl}/metrics`, { headers: { "x-access-token": token } });

  it("takes a new token only from a request that carries the current one", async () => {
    // Without the current token (or with a wrong one) nobody can take the sandbox over.
    expect((await init({ accessToken: "stolen" })).status).toBe(401);
    expect((await init({ accessToken: "stolen" }, "wrong")).status).toBe(401);
    expect((await metrics("stolen")).status).toBe(401);
    // A bad token is refused and changes nothing.
    for (const accessToken of ["", 42, "x".repeat(513)]) {
      const res = await init({ accessToken }, "snapshot-token");
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: "invalid_argument" });
    }
    expect((await metrics("snapshot-token")).status).toBe(200);

    expect((await init({ accessToken: "sandbox-token" }, "snapshot-token")).status).toBe(204);
    // Only the new token works now: the snapshot's is as good as any other guess.
    expect((await metrics("snapshot-token")).status).toBe(401);
    expect((await init({ accessToken: "again" }, "snapshot-token")).status).toBe(401);
    expect((await metrics("sandbox-token")).status).toBe(200);
    const headers = { "x-access-token": "snapshot-token" };
    await expect(
      new EventReader(envd.process.start({ process: { cmd: "true" } }, { headers })).toEnd(),
    ).rejects.toThrow(/unauthenticated/);
    const out = await new EventReader(
      envd.process.start(
        { process: { cmd: "true" } },
        { headers: { "x-access-token": "sandbox-token" } },
      ),
    ).toEnd();
    expect(out.end?.exitCode).toBe(0);
  });
});

describe("envd without an access token", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd();
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("takes a first token from POST /init and then requires it", async () => {
    expect((await fetch(`${envd.baseUrl}/metrics`)).status).toBe(200);
    const res = await fetch(`${envd.baseUrl}/init`, {
      method: "POST",
      body: JSON.stringify({ accessToken: "first-token" }),
    });
    expect(res.status).toBe(204);
    expect((await fetch(`${envd.baseUrl}/metrics`)).status).toBe(401);
    const ok = await fetch(`${envd.baseUrl}/metrics`, {
      headers: { "x-access-token": "first-token" },
    });
    expect(ok.status).toBe(200);
  });
});

describe("envd's start, as the agent launches it", () => {
  it("says on its ready pipe that it listens, then holds neither it nor any other descriptor it was given", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-envd-fds-"));
    // Stands for a descriptor the agent's parent leaked: inherited without close-on-exec, at a
    // number past those Node marks close-on-exec at its start (up to the first gap after 15).
    const leaked = join(dir, "leaked");
    const file = openSync(leaked, "w");
    const LEAKED_FD = 40;
    const child = spawn(process.execPath, [envdBundlePath], {
      env: {
        ...process.env,
        WRENN_ENVD_PORT: "0",
        WRENN_ENVD_HOST: "127.0.0.1",
        WRENN_ENVD_USER: TEST_USER,
        WRENN_ENVD_READY_FD: "3",
      },
      stdio: [
        "ignore",
        "ignore",
        "inherit",
        "pipe",
        ...Array<"ignore">(LEAKED_FD - 4).fill("ignore"),
        file,
      ],
    });
    try {
      const ready = child.stdio[3] as Readable;
      let said = "";
      ready.on("data", (d: Buffer) => {
        said += d.toString();
      });
      const ended = await new Promise<string>((resolve) => {
        ready.once("end", () => resolve("ended"));
        child.once("exit", (code) => resolve(`envd exited (${code})`));
        setTimeout(() => resolve("still open after 10 s"), 10_000).unref();
      });
      // One byte, and the pipe's end: nothing in envd (or what it started) still holds it.
      expect(ended).toBe("ended");
      expect(said).toBe("1");
      const held = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
        } catch {
          return "";
        }
      });
      expect(held).not.toContain(leaked);
    } finally {
      child.kill("SIGKILL");
      closeSync(file);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
