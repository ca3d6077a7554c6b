import { mkdtempSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The CLI's helper: `wrenn server start` as a child process with the test-minimal template.
import { startTestServer, type TestServer } from "../../cli/test/helpers/server.js";
// The fleet suites' helpers: `wrenn-agent` as its own process, and calls straight to it.
import {
  agentCredentials,
  agentSandboxes,
  type FleetAgent,
  freePort,
  startFleetAgent,
  stopAgentWithSandboxes,
} from "../../server/test/helpers/fleet.js";
import { until } from "../../server/test/helpers/processes.js";
import {
  browserSkipReason,
  launchBrowser,
  screenshot,
  signInAsAdmin,
  type TestBrowser,
} from "./helpers/browser.js";

// The hosts page with a second host: a real `wrenn-agent` process on this machine joins the
// single-host server with the token the page makes; the page lists it with its state and
// capacity, drains it, refuses (and says why) to remove it while a sandbox runs there, then
// removes it. What the page shows is checked against the API.

const skip = browserSkipReason();
if (skip) console.warn(`[wrenn/console] browser suite SKIPPED: ${skip}`);

/**
 * The second host's sandbox range: apart from the server's own agent (WRENN_SANDBOX_CIDR, by
 * default 10.213.0.0/16) and the fleet suites' 10.250/10.251.
 */
const AGENT_CIDR = process.env.WRENN_TEST_SECOND_HOST_CIDR ?? "10.249.7.0/24";

interface ApiHost {
  id: string;
  state: string;
  capacity?: { vcpus: number; memory_mb: number };
  usage: { sandboxes: number };
}

describe.skipIf(skip)("a second host in the console: list, drain, remove", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let agent: FleetAgent | undefined;
  let hostId: string;
  let sandboxId: string;
  const logDir = mkdtempSync(join(tmpdir(), "wrenn-console-hosts-"));

  const shot = (name: string) => screenshot(page, name);
  const api = async <T = Record<string, unknown>>(path: string, init: RequestInit = {}) => {
    const res = await fetch(`${server.apiUrl}${path}`, {
      ...init,
      headers: { "x-api-key": server.apiKey, "content-type": "application/json", ...init.headers },
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const row = () => page.locator(`tr[data-host="${hostId}"]`);
  const cell = (label: string) => row().locator(`td[data-label="${label}"]`);

  beforeAll(async () => {
    server = await startTestServer();
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(30_000);
    await signInAsAdmin(page, server);
  });

  afterAll(async () => {
    await browser?.close();
    if (agent) await stopAgentWithSandboxes(agent);
    await server?.close();
    // A destroyed sandbox leaves no mount behind; never rm through one.
    const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .filter((l) => l.includes(logDir));
    if (mounts.length > 0) throw new Error(`mounts left under ${logDir}:\n${mounts.join("\n")}`);
    if (process.env.WRENN_TEST_KEEP_LOGS) console.info(`[console hosts] logs kept in ${logDir}`);
    else await rm(logDir, { recursive: true, force: true });
  });

  it("an agent joins with the page's join command; the page lists it with state and capacity", async () => {
    await page.getByRole("link", { name: "Hosts" }).click();
    await page.locator("tr[data-host]").first().waitFor();
    await page.getByText("Add a host").click();
    await page.getByRole("button", { name: "Create registration token" }).click();
    const join_ = await page.getByTestId("join-command").textContent();
    const token = /--registration-token (\S+)/.exec(join_ ?? "")?.[1];
    expect(token, join_ ?? "").toBeTruthy();

    const dir = join(logDir, "agent");
    agent = startFleetAgent(
      "agent",
      {
        dir,
        port: await freePort(),
        cidr: AGENT_CIDR,
        serverUrl: server.apiUrl,
        token: token as string,
      },
      { WRENN_HEARTBEAT_SEC: "2" },
      logDir,
    );
    const started = agent;
    hostId = await until(
      "the agent to register",
      async () => {
        if (started.proc.exitCode !== null) throw new Error(`agent exited:\n${started.output()}`);
        return agentCredentials(dir).host_id;
      },
      60_000,
    );
    const host = await until("the second host to be ready", async () => {
      const { body } = await api<ApiHost>(`/v1/hosts/${hostId}`);
      return body.state === "ready" ? body : undefined;
    });

    // Polled every 5 s: the new row shows up without a reload.
    await row().waitFor();
    expect(await page.locator("tr[data-host]").count()).toBe(2);
    expect(await row().locator(".state").textContent()).toBe("ready");
    expect(await cell("Sandboxes").textContent()).toBe("0");
    expect(await cell("vCPUs").textContent()).toBe(`0 of ${host.capacity?.vcpus}`);
    expect(await cell("Memory").textContent()).toBe(`0 of ${host.capacity?.memory_mb} MiB`);
    await shot("hosts-two");
  });

  it("drains it: no new sandboxes there, the one on it keeps running", async () => {
    const made = await api<{ id: string; host_id: string; state: string }>("/v1/sandboxes", {
      method: "POST",
      body: JSON.stringify({ host_id: hostId, memory_mb: 128, disk_size_mb: 64 }),
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.host_id).toBe(hostId);
    sandboxId = made.body.id;
    await expect.poll(() => cell("Sandboxes").textContent(), { timeout: 15_000 }).toBe("1");

    await row()
      .getByRole("button", { name: `Drain ${hostId}` })
      .click();
    await expect.poll(() => row().locator(".state").textContent()).toBe("draining");
    expect((await api<ApiHost>(`/v1/hosts/${hostId}`)).body.state).toBe("draining");
    expect(
      await row()
        .getByRole("button", { name: `Drain ${hostId}` })
        .isDisabled(),
    ).toBe(true);
    const pinned = await api("/v1/sandboxes", {
      method: "POST",
      body: JSON.stringify({ host_id: hostId }),
    });
    expect(pinned.status).toBe(409);
    expect((await api<{ state: string }>(`/v1/sandboxes/${sandboxId}`)).body.state).toBe("running");
  });

  it("remove is asked first, and refused with the reason while a sandbox runs there", async () => {
    // Asked first: "Keep" leaves it.
    await row()
      .getByRole("button", { name: `Remove ${hostId}`, exact: true })
      .click();
    await row()
      .getByRole("group", { name: /^Remove host .*\? Its credentials are revoked/ })
      .waitFor();
    await row().getByRole("button", { name: "Keep" }).click();
    expect((await api(`/v1/hosts/${hostId}`)).status).toBe(200);

    await row()
      .getByRole("button", { name: `Remove ${hostId}`, exact: true })
      .click();
    await row()
      .getByRole("button", { name: `Confirm: Remove ${hostId}` })
      .click();
    const refused = row().getByRole("alert");
    await expect
      .poll(() => refused.textContent())
      .toMatch(new RegExp(`^Not removed: host ${hostId} still has 1 sandbox\\(es\\)`));
    // Nothing was removed or destroyed.
    expect((await api<ApiHost>(`/v1/hosts/${hostId}`)).body.state).toBe("draining");
    expect((await api<{ state: string }>(`/v1/sandboxes/${sandboxId}`)).body.state).toBe("running");
    await shot("hosts-remove-refused");
  });

  it("removes it, destroying its sandbox: gone from the page and the API", async () => {
    await row()
      .getByRole("button", { name: `Remove ${hostId} and destroy its sandboxes` })
      .click();
    await row().waitFor({ state: "detached" });
    expect(await page.locator("tr[data-host]").count()).toBe(1);
    expect((await api(`/v1/hosts/${hostId}`)).status).toBe(404);
    const { body } = await api<{ hosts: ApiHost[] }>("/v1/hosts");
    expect(body.hosts.map((h) => h.id)).not.toContain(hostId);
    expect((await api<{ state: string }>(`/v1/sandboxes/${sandboxId}`)).body.state).toBe("stopped");
    // Destroyed on the agent too, not only marked stopped.
    expect(await agentSandboxes(agent as FleetAgent)).toEqual([]);
    await shot("hosts-removed");
  });

  it("the server's own host cannot be removed, and the page says why", async () => {
    const own = page.locator("tr[data-host]").first();
    const id = await own.getAttribute("data-host");
    await own.getByRole("button", { name: `Remove ${id}`, exact: true }).click();
    await own.getByRole("button", { name: `Confirm: Remove ${id}` }).click();
    await expect
      .poll(() => page.getByRole("alert").first().textContent())
      .toContain("the embedded agent of this server cannot be removed");
    expect((await api(`/v1/hosts/${id}`)).status).toBe(200);
  });
});
