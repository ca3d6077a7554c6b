import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentConfig } from "../src/config/index.js";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { type Agent, createAgent } from "../src/rpc/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { FakeControlPlane } from "./fixtures/fake-control-plane.js";
import { until } from "./fixtures/until.js";

// The agent serving HTTPS and pinning its server's CA, against a FAKE control plane over TLS
// (the agent is the subject). Needs root and openssl.
const cidr = `10.231.${Math.floor(Math.random() * 250)}.0/24`;

describe("fleet member over TLS (FAKE control plane)", { timeout: 60_000 }, () => {
  const cp = new FakeControlPlane();
  let dir: string;
  let pki: string;
  const agents: Agent[] = [];
  let restoreHost: () => Promise<void> = async () => {};

  /** A CA, a server certificate it signs for 127.0.0.1, and a self-signed one for the agent. */
  const openssl = (...args: string[]) => {
    const res = spawnSync("openssl", args, { cwd: pki, encoding: "utf8" });
    if (res.status !== 0) throw new Error(`openssl ${args[0]}: ${res.stderr}`);
  };
  const selfSigned = (name: string) =>
    openssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    );

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-fleet-tls-"));
    pki = await mkdtemp(join(tmpdir(), "wrenn-fleet-pki-"));
    selfSigned("ca");
    openssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=server",
    );
    await writeFile(join(pki, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
    openssl(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "2",
      "-extfile",
      "san.ext",
    );
    selfSigned("agent");
    await cp.start({
      cert: await readFile(join(pki, "server.pem"), "utf8"),
      key: await readFile(join(pki, "server.key"), "utf8"),
    });
  });

  afterAll(async () => {
    for (const agent of agents) await agent.close().catch(() => {});
    await cp.close();
    await rm(dir, { recursive: true, force: true });
    await rm(pki, { recursive: true, force: true });
    await restoreHost();
  });

  const makeAgent = (config: Partial<AgentConfig>) => {
    const logger = silentLogger();
    const agent = createAgent({
      config: {
        agentDir: dir,
        serverUrl: cp.url,
        registrationToken: cp.newToken(),
        heartbeatSec: 0.2,
        cpGraceSec: 300,
        warmPool: [],
        tlsCert: join(pki, "agent.pem"),
        tlsKey: join(pki, "agent.key"),
        ...config,
      },
      logger,
      runtime: new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger,
        addressPool: new AddressPool(cidr),
      }),
    });
    agents.push(agent);
    return agent;
  };

  it("refuses a server whose certificate does not chain to the pinned CA", async () => {
    // No --server-ca: the test CA is not in the system's trust store.
    const agent = makeAgent({});
    await agent.start();
    await expect(agent.listen(0, "127.0.0.1")).rejects.toThrow(
      /registration failed: .*certificate/,
    );
    await agent.close();
  });

  it("serves HTTPS, sends its certificate at registration, pins the server's CA", async () => {
    const agent = makeAgent({ serverCa: join(pki, "ca.pem") });
    await agent.start();
    const listener = await agent.listen(0, "127.0.0.1");
    expect(listener.url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const reg = cp.registrations.at(-1) as Record<string, unknown>;
    expect(reg.tls_cert).toBe(await readFile(join(pki, "agent.pem"), "utf8"));
    expect(reg.advertise_url).toBe(listener.url);
    await until("a heartbeat over TLS", () => cp.pairs.at(-1)?.used);
  });
});
