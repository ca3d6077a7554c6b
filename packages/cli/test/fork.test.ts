import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wrenn } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// `wrenn sandbox fork` (the built binary) against `wrenn server start` with real namespace
// sandboxes. Needs root, bubblewrap, iproute2, nftables, e2fsprogs.

describe("wrenn sandbox fork", { timeout: 120_000 }, () => {
  let server: TestServer;
  const run = (args: string[]) => wrenn(args, { env: server.env });

  beforeAll(async () => {
    server = await startTestServer();
  }, 180_000);

  afterAll(async () => {
    await server?.close();
  }, 120_000);

  it("prints one id per fork; each has the source's files; bad counts fail before any call", async () => {
    const created = await run(["sandbox", "create", "--memory", "256", "--disk", "128"]);
    expect(created.code, created.stderr).toBe(0);
    const source = created.stdout.trim();
    expect((await run(["exec", source, "--", "sh", "-c", "echo hi > /tmp/f"])).code).toBe(0);

    const forked = await run(["sandbox", "fork", source, "--count", "2"]);
    expect(forked.code, forked.stderr).toBe(0);
    const ids = forked.stdout.trim().split("\n");
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      const cat = await run(["exec", id, "--", "cat", "/tmp/f"]);
      expect(cat.stdout).toBe("hi\n");
    }
    const json = await run(["sandbox", "fork", source, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const [one] = JSON.parse(json.stdout) as { metadata: Record<string, string> }[];
    expect(one?.metadata).toMatchObject({ forked_from: source });

    const bad = await run(["sandbox", "fork", source, "--count", "11"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/10/);
    const missing = await run(["sandbox", "fork", "k3x9q2m7v1b8n4c6z0ta"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/not found/i);
  });
});
