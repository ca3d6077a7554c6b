import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, Template } from "../src/index.js";
import { ResettingProxy } from "./helpers/reset-proxy.js";
import { startTestServer, TEMPLATE, type TestServer } from "./helpers/server.js";

// A template built from a Dockerfile and its build context, for real: the Dockerfile's COPY
// destinations (relative ones against its WORKDIR, directories as Docker takes them) are where
// the files are in a sandbox of the template. And a build whose caller leaves its log early.
// On test-minimal: no download.

let server: TestServer;
let conn: { apiUrl: string; apiKey: string };
let context: string;

beforeAll(async () => {
  server = await startTestServer();
  conn = { apiUrl: server.url, apiKey: server.apiKey };
  context = await mkdtemp(join(tmpdir(), "wrenn-dockerfile-"));
  await mkdir(join(context, "lib", "sub"), { recursive: true });
  await writeFile(join(context, "hello.txt"), "hello\n");
  await writeFile(join(context, "lib", "a.txt"), "a\n");
  await writeFile(join(context, "lib", "sub", "b.txt"), "b\n");
  await writeFile(join(context, "run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o644 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (context) await rm(context, { recursive: true, force: true });
});

describe("Template.fromDockerfile", { timeout: 300_000 }, () => {
  it("puts COPY's files where Docker would: relative to WORKDIR, a directory's contents into it", async () => {
    const dockerfile = [
      `FROM wrenn/${TEMPLATE}`,
      "WORKDIR /app",
      "COPY hello.txt .",
      "COPY lib/ ./vendor/",
      "COPY lib/a.txt /data/",
      "COPY lib /srv/lib",
    ].join("\n");
    const info = await Template.build(
      Template.fromDockerfile(dockerfile, { contextDir: context }),
      {
        ...conn,
        name: "from-dockerfile",
        memoryMb: 256,
        diskSizeMb: 128,
      },
    );
    expect(info).toMatchObject({ name: "from-dockerfile", version: 1, base: TEMPLATE });
    const sandbox = await Sandbox.create({ ...conn, template: "from-dockerfile" });
    try {
      const listed = await sandbox.commands.run(
        "cd /app && find /app /data /srv/lib -type f | sort && cat hello.txt vendor/sub/b.txt",
      );
      expect(listed.stdout).toBe(
        [
          "/app/hello.txt",
          "/app/vendor/a.txt",
          "/app/vendor/sub/b.txt",
          "/data/a.txt",
          "/srv/lib/a.txt",
          "/srv/lib/sub/b.txt",
          "hello",
          "b",
          "",
        ].join("\n"),
      );
    } finally {
      await sandbox.kill();
    }
    expect(await Template.delete("from-dockerfile", conn)).toBe(true);
  });

  it("gives COPY --chmod's mode to every file it copies, as Docker does", async () => {
    const dockerfile = [
      `FROM wrenn/${TEMPLATE}`,
      "COPY --chmod=755 run.sh /app/run.sh",
      "COPY --chmod=0600 lib /secret/",
      "COPY run.sh /app/plain.sh",
    ].join("\n");
    await Template.build(Template.fromDockerfile(dockerfile, { contextDir: context }), {
      ...conn,
      name: "dockerfile-chmod",
      memoryMb: 256,
      diskSizeMb: 128,
    });
    const sandbox = await Sandbox.create({ ...conn, template: "dockerfile-chmod" });
    try {
      const listed = await sandbox.commands.run(
        "/app/run.sh && stat -c '%a %n' /app/run.sh /app/plain.sh /secret/a.txt /secret/sub/b.txt",
        { user: "root" },
      );
      expect(listed.stdout).toBe(
        [
          "ran",
          "755 /app/run.sh",
          "644 /app/plain.sh",
          "600 /secret/a.txt",
          "600 /secret/sub/b.txt",
          "",
        ].join("\n"),
      );
    } finally {
      await sandbox.kill();
    }
    expect(await Template.delete("dockerfile-chmod", conn)).toBe(true);
  });
});

describe("Template.build", { timeout: 120_000 }, () => {
  it("ends the build when the caller leaves its log early (onLog threw)", async () => {
    const proxy = await ResettingProxy.start(server.url, 0);
    let request: Socket | undefined;
    proxy.onClientData = (chunk, client) => {
      if (chunk.toString("latin1").includes("/v1/templates/builds")) request = client;
    };
    const buildSandboxes = () =>
      Sandbox.list({ ...conn, metadata: { "wrenn.template-build": "left-early" } }).toArray();
    try {
      const threw = new Error("a bug in the callback");
      const template = Template.fromTemplate(TEMPLATE).runCmd("echo started; sleep 120");
      const built = Template.build(template, {
        apiUrl: proxy.url,
        apiKey: server.apiKey,
        name: "left-early",
        memoryMb: 256,
        diskSizeMb: 128,
        onLog: (event) => {
          if (event.type === "log") throw threw;
        },
      });
      // The callback's own error, not a ConnectionError a retry would act on.
      await expect(built).rejects.toBe(threw);
      // The request closed, so the server cancelled the build and destroyed its sandbox.
      const deadline = Date.now() + 10_000;
      while (!request?.closed || (await buildSandboxes()).length > 0) {
        if (Date.now() > deadline) {
          const left = (await buildSandboxes()).map((s) => s.state);
          throw new Error(`request closed: ${request?.closed}; build sandboxes: ${left}`);
        }
        await sleep(100);
      }
    } finally {
      await proxy.close();
    }
    expect(await Template.delete("left-early", conn)).toBe(false);
  });
});
