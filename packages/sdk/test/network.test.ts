import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, Sandbox } from "../src/index.js";
import { SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// Egress options through the SDK against a real single-host server and sandbox: they reach the
// agent (which points the sandbox's resolver at its DNS forwarder) and come back in getInfo.
// What the rules let through is proven against a stand-in internet in the agent's egress suites.
// The forwarder's upstream is a closed loopback port: no query leaves the machine.

let server: TestServer;
let conn: { apiUrl: string; apiKey: string };
const previousUpstream = process.env.WRENN_DNS_UPSTREAM;

beforeAll(async () => {
  process.env.WRENN_DNS_UPSTREAM = "127.0.0.1:9";
  server = await startTestServer();
  conn = { apiUrl: server.url, apiKey: server.apiKey };
});

afterAll(async () => {
  await server?.close();
  if (previousUpstream === undefined) delete process.env.WRENN_DNS_UPSTREAM;
  else process.env.WRENN_DNS_UPSTREAM = previousUpstream;
});

describe("network", () => {
  it("creates with rules, changes them live, and cuts internet access", async () => {
    const sandbox = await Sandbox.create({
      ...conn,
      ...SMALL,
      network: { allowOut: ["*.example.com", "203.0.113.0/24"], denyOut: ["203.0.113.7"] },
    });
    expect((await sandbox.getInfo()).network).toEqual({
      allowInternetAccess: true,
      allowOut: ["*.example.com", "203.0.113.0/24"],
      denyOut: ["203.0.113.7"],
    });
    const resolv = await sandbox.commands.run("cat /etc/resolv.conf");
    expect(resolv.stdout).toMatch(/^nameserver \d+\.\d+\.\d+\.\d+$/m);

    const controller = new AbortController();
    const changed = await sandbox.setNetwork(
      { denyOut: ["example.org"] },
      { signal: controller.signal, timeoutMs: 30_000 },
    );
    expect(changed.network).toEqual({
      allowInternetAccess: true,
      allowOut: [],
      denyOut: ["example.org"],
    });
    const cut = await sandbox.setNetwork({ allowInternetAccess: false });
    expect(cut.network.allowInternetAccess).toBe(false);
    expect((await Sandbox.getInfo(sandbox.sandboxId, conn)).network.allowInternetAccess).toBe(
      false,
    );
    await sandbox.kill();
  });

  it("refuses malformed rules with InvalidArgumentError naming the entry", async () => {
    const err = await Sandbox.create({
      ...conn,
      ...SMALL,
      network: { allowOut: ["10.0.0.1/33"] },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ status: 400, code: "invalid_argument" });
    expect((err as Error).message).toContain("10.0.0.1/33");
  });
});
