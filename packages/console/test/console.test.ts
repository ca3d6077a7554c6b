import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The CLI's helper: `wrenn server start` as a child process with the test-minimal template.
import { startTestServer, type TestServer } from "../../cli/test/helpers/server.js";
import {
  browserSkipReason,
  launchBrowser,
  screenshot,
  type TestBrowser,
} from "./helpers/browser.js";

// The web console in Debian's Chromium against a real single-host server and real sandboxes:
// every step is what a user does with a mouse and keyboard, checked on the page and, where the
// page could be lying, through the API.

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const skip = browserSkipReason();
if (skip) console.warn(`[wrenn/console] browser suite SKIPPED: ${skip}`);

describe.skipIf(skip)("the web console in Chromium", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let work: string;
  let sandboxId: string;

  const shot = (name: string) => screenshot(page, name);
  const api = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${server.apiUrl}${path}`, {
      ...init,
      headers: { "x-api-key": server.apiKey, ...init.headers },
    });
    return res.json() as Promise<Record<string, unknown>>;
  };
  const state = () => page.getByTestId("sandbox-state");

  beforeAll(async () => {
    // The server serves the built console; a stale or missing build would test something else.
    if (!existsSync(join(import.meta.dirname, "..", "dist", "index.html")))
      throw new Error("packages/console/dist is missing: run `npm run build` first");
    work = await mkdtemp(join(tmpdir(), "wrenn-console-files-"));
    server = await startTestServer();
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(30_000);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await rm(work ?? "/nonexistent", { recursive: true, force: true });
  });

  it("signs in with the credentials the first start printed", async () => {
    const password = /password:\s+(\S+)/.exec(server.log())?.[1];
    expect(password, server.log()).toBeTruthy();
    await page.goto(server.apiUrl);
    await expect.poll(() => page.url()).toMatch(/\/sign-in$/);
    await page.getByLabel("Email").fill("admin@wrenn.local");
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    await shot("sign-in");
    await page.getByLabel("Password").fill(password ?? "");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Sandboxes" }).waitFor();
  });

  it("creates a sandbox and runs `echo hi` in its terminal", async () => {
    await page.getByText("New sandbox").click();
    // Only runtimes the hosts offer are listed; microVM boots are too slow under TCG to try here.
    const runtimes = await page
      .getByLabel("Runtime")
      .locator("option")
      .evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value));
    expect(runtimes).toContain("namespace");
    await page.getByLabel("Runtime").selectOption("namespace");
    await page.getByLabel("Memory (MiB)").fill("256");
    await page.getByLabel("Metadata (key=value per line)").fill("owner=console-test");
    await page.getByRole("button", { name: "Create sandbox" }).click();
    await page.waitForURL(/\/sandboxes\/[a-z0-9]+$/);
    sandboxId = page.url().split("/").pop() ?? "";
    await expect.poll(() => state().textContent()).toBe("running");
    const info = await api(`/v1/sandboxes/${sandboxId}`);
    expect(info).toMatchObject({
      memory_mb: 256,
      runtime: "namespace",
      metadata: { owner: "console-test" },
    });

    await page.getByText("Terminal: connected").waitFor();
    const terminal = page.getByTestId("terminal");
    await terminal.click();
    await page.keyboard.type("echo hi\n");
    // The prompt line shows `$ echo hi`; only the command's output is a line that is just `hi`.
    await expect
      .poll(
        async () =>
          (await terminal.locator(".xterm-rows > div").allTextContents()).map((row) =>
            row.replace(/\u00a0/g, " ").trim(),
          ),
        // The shell's first prompt and echo can take seconds on a loaded machine.
        { timeout: 15_000 },
      )
      .toContain("hi");
    // The keyboard can leave the terminal: F6 moves on to the file browser.
    await page.keyboard.press("F6");
    expect(await page.evaluate(() => document.activeElement?.getAttribute("name"))).toBe("dir");
    // Charts fill from the metrics route.
    await expect.poll(() => page.getByText(/^CPU: /).textContent()).toMatch(/CPU: \d/);
    await shot("sandbox");
  });

  it("uploads a file, lists it, downloads it back with the same bytes", async () => {
    const bytes = randomBytes(300_000);
    const local = join(work, "payload.bin");
    await writeFile(local, bytes);
    await page.getByLabel("Upload files").setInputFiles(local);
    const row = page.locator('tr[data-file="payload.bin"]');
    await row.waitFor();
    const download = page.waitForEvent("download");
    await row.getByRole("button", { name: "Download payload.bin" }).click();
    const saved = join(work, "downloaded.bin");
    await (await download).saveAs(saved);
    expect(sha256(await readFile(saved))).toBe(sha256(bytes));

    // mkdir, rename and delete; a file made by the shell shows up through the file watch.
    await page.getByLabel("New folder").fill("made-here");
    await page.getByRole("button", { name: "Create folder" }).click();
    await page.locator('tr[data-file="made-here"]').waitFor();
    await row.getByRole("button", { name: "Rename payload.bin" }).click();
    await page.getByLabel("New name of payload.bin").fill("renamed.bin");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.locator('tr[data-file="renamed.bin"]').waitFor();
    await page.getByTestId("terminal").click();
    await page.keyboard.type("touch ~/from-shell.txt\n");
    await page.locator('tr[data-file="from-shell.txt"]').waitFor();
    await page.getByRole("button", { name: "Delete renamed.bin" }).click();
    await page.locator('tr[data-file="renamed.bin"]').waitFor({ state: "detached" });
    await page.getByRole("region", { name: "Files" }).scrollIntoViewIfNeeded();
    await shot("files");
  });

  it("pauses and resumes the sandbox", async () => {
    await page.getByRole("button", { name: `Pause ${sandboxId}` }).click();
    await expect.poll(() => state().textContent()).toBe("paused");
    expect((await api(`/v1/sandboxes/${sandboxId}`)).state).toBe("paused");
    await page.getByRole("button", { name: `Resume ${sandboxId}` }).click();
    await expect.poll(() => state().textContent()).toBe("running");
    await page.getByText("Terminal: connected").waitFor();
  });

  it("makes a snapshot and starts a sandbox from it", async () => {
    await page.getByLabel("Snapshot name").fill("console-snap");
    await page.getByRole("button", { name: "Create snapshot" }).click();
    await page.getByRole("link", { name: "console-snap" }).click();
    await page.getByRole("heading", { name: "Snapshots" }).waitFor();
    await page.locator('tr[data-snapshot="console-snap"]').waitFor();
    await shot("snapshots");
    await page.getByRole("button", { name: "Start a sandbox from console-snap" }).click();
    await page.waitForURL(
      (url) => !url.pathname.endsWith(sandboxId) && /\/sandboxes\/\w+$/.test(url.pathname),
    );
    const fromSnapshot = page.url().split("/").pop() ?? "";
    await expect.poll(() => state().textContent()).toBe("running");
    // The snapshot carried the files: the folder made in the first sandbox is there.
    await page.locator('tr[data-file="made-here"]').waitFor();
    expect((await api(`/v1/sandboxes/${fromSnapshot}`)).template).toBe("console-snap");

    await page.getByRole("link", { name: "Sandboxes", exact: true }).first().click();
    await page.locator(`tr[data-sandbox="${fromSnapshot}"]`).waitFor();
    await page.getByLabel("Metadata (key=value, …)").fill("owner=console-test");
    await expect.poll(() => page.locator("tr[data-sandbox]").count()).toBe(1);
    await shot("sandboxes");
    await page.getByRole("button", { name: `Kill ${sandboxId}` }).click();
    await page.getByLabel("Metadata (key=value, …)").fill("");
    await page.getByRole("button", { name: `Kill ${fromSnapshot}` }).click();
    await page.getByText("No sandboxes yet.").waitFor();

    await page.getByRole("link", { name: "Snapshots" }).click();
    await page.getByRole("button", { name: "Delete snapshot console-snap" }).click();
    await page.getByText("No snapshots yet.").waitFor();
    expect((await api("/v1/snapshots")).snapshots).toEqual([]);
  });

  it("builds a template from a Dockerfile with its log, starts a sandbox from it, deletes it", async () => {
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByRole("heading", { name: "Templates" }).waitFor();
    const log = page.getByRole("log", { name: "Build log" });
    // Cancel: a slow step stops, the log says so, and no template is left.
    await page.getByLabel("Template name").fill("console-cancelled");
    await page.getByLabel("Dockerfile").fill("FROM wrenn/test-minimal\nRUN sleep 60\n");
    await page.getByRole("button", { name: "Build", exact: true }).click();
    await log.getByText("[1/1] RUN sleep 60").waitFor();
    await page.getByRole("button", { name: "Cancel build" }).click();
    await log.getByText("Build cancelled").waitFor();
    // A refused instruction is reported with its line, before anything is sent.
    await page.getByLabel("Dockerfile").fill("FROM wrenn/test-minimal\nEXPOSE 80\n");
    await page.getByRole("button", { name: "Build", exact: true }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("line 2: EXPOSE");

    // A failing step: its exit code and its output end the log.
    await page.getByLabel("Template name").fill("console-failed");
    await page
      .getByLabel("Dockerfile")
      .fill("FROM wrenn/test-minimal\nRUN echo boom >&2; exit 3\n");
    await page.getByRole("button", { name: "Build", exact: true }).click();
    // A build sandbox starts first: slow on a loaded machine.
    await log.getByText(/^Error: .*\(step 1, exit code 3\)$/).waitFor({ timeout: 120_000 });
    // Streamed once: the error's output tail is not repeated under it.
    expect(await log.locator("div.log-stderr").allTextContents()).toEqual(["boom"]);

    await page.getByLabel("Template name").fill("console-tpl");
    await page
      .getByLabel("Dockerfile")
      .fill("FROM wrenn/test-minimal\nENV FROM_CONSOLE=yes\nRUN echo hi > /tmp/x\n");
    await page.getByRole("button", { name: "Build", exact: true }).click();
    await log.getByText("Built console-tpl version 1").waitFor();
    const logged = await log.locator("div").allTextContents();
    expect(logged[1], logged.join("\n")).toBe("[1/2] ENV FROM_CONSOLE");
    // The parser hands ARGs and ENVs so far to RUN as an `export` prefix.
    expect(logged[2], logged.join("\n")).toMatch(/^\[2\/2\] RUN .*echo hi > \/tmp\/x$/);
    const row = page.locator('tr[data-template="console-tpl"]');
    await row.waitFor();
    expect(await row.locator("td[data-label='Version']").textContent()).toBe("1");
    const { templates } = (await api("/v1/templates")) as { templates: { name: string }[] };
    expect(templates.map((t) => t.name)).toEqual(["console-tpl"]);
    await shot("templates");

    await row.getByRole("button", { name: "Start a sandbox from console-tpl" }).click();
    await page.waitForURL(/\/sandboxes\/[a-z0-9]+$/);
    const fromTemplate = page.url().split("/").pop() ?? "";
    await expect.poll(() => state().textContent()).toBe("running");
    expect((await api(`/v1/sandboxes/${fromTemplate}`)).template).toBe("console-tpl");
    await page.getByText("Terminal: connected").waitFor();
    const terminal = page.getByTestId("terminal");
    await terminal.click();
    // Keystrokes paced like a person's: a burst can outrun the echo on a loaded machine.
    await page.keyboard.type('cat /tmp/x; echo "env=$FROM_CONSOLE"\n', { delay: 25 });
    await expect
      .poll(
        async () =>
          (await terminal.locator(".xterm-rows > div").allTextContents()).map((r) =>
            r.replace(/\u00a0/g, " ").trim(),
          ),
        { timeout: 15_000 },
      )
      .toEqual(expect.arrayContaining(["hi", "env=yes"]));
    await fetch(`${server.apiUrl}/v1/sandboxes/${fromTemplate}`, {
      method: "DELETE",
      headers: { "x-api-key": server.apiKey },
    });

    // Delete asks first; keyboard only: the confirm button takes focus, Enter confirms.
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByRole("button", { name: "Delete console-tpl version 1" }).click();
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.getAttribute("aria-label")))
      .toBe("Confirm: Delete console-tpl version 1");
    await page.keyboard.press("Enter");
    await page.getByText("No templates yet.").waitFor();
    expect((await api("/v1/templates")).templates).toEqual([]);
  });

  it("creates an API key, shows it once, and revokes it", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByLabel("Name").fill("from-the-console");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.getByTestId("new-key").textContent()) ?? "";
    expect(key).toMatch(/^wrn_/);
    const works = async () =>
      (await fetch(`${server.apiUrl}/v1/sandboxes`, { headers: { "x-api-key": key } })).status;
    expect(await works()).toBe(200);
    await shot("api-keys");
    await page.getByRole("button", { name: "Delete key from-the-console" }).click();
    await page.locator('tr[data-key="from-the-console"]').waitFor({ state: "detached" });
    expect(await works()).toBe(401);
  });

  it("lists the host and makes a registration token with its join command", async () => {
    await page.getByRole("link", { name: "Hosts" }).click();
    await page.locator("tr[data-host]").first().waitFor();
    expect(await page.locator("tr[data-host] .state").first().textContent()).toBe("ready");
    await page.getByText("Add a host").click();
    await page.getByRole("button", { name: "Create registration token" }).click();
    expect(await page.getByTestId("join-command").textContent()).toMatch(
      new RegExp(`^wrenn agent start --server-url ${server.apiUrl} --registration-token \\S+`),
    );
    await shot("hosts");
  });

  it("shows the account: the signed-in user and their team", async () => {
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByText("admin@wrenn.local").last().waitFor();
    const team = await page.locator("dt:text('Team') + dd").textContent();
    const who = await api("/v1/auth/whoami");
    expect(team).toContain(String(who.team_id));
    // The members list shows the signed-in user, as the team's owner.
    const me = page.locator('tr[data-member="admin@wrenn.local"]');
    await me.waitFor();
    expect(await me.locator("td[data-label='Role']").textContent()).toBe("owner");
    expect(await me.locator("td[data-label='Email']").textContent()).toContain("(you)");
    await shot("account");
  });

  it("creates a team invitation, shows its token once, and sign-up with it joins the team", async () => {
    await page.getByRole("button", { name: "Create invitation" }).click();
    const token = (await page.getByTestId("invite-token").textContent()) ?? "";
    expect(token).toMatch(/^wrninv_\S+$/);
    expect(await page.getByTestId("invite-signup").textContent()).toContain(`"invite": "${token}"`);
    await shot("account-invite");
    const signup = await fetch(`${server.apiUrl}/v1/auth/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        email: "invited@wrenn.local",
        password: "an invited password",
        invite: token,
      }),
    });
    expect(signup.status).toBe(201);
    const who = await api("/v1/auth/whoami");
    expect(((await signup.json()) as { team_id: string }).team_id).toBe(who.team_id);
  });

  it("stays usable on a narrow screen", async () => {
    const made = await api("/v1/sandboxes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { owner: "narrow-screen" } }),
    });
    await page.setViewportSize({ width: 390, height: 800 });
    await page.getByRole("link", { name: "Sandboxes" }).first().click();
    await page.locator(`tr[data-sandbox="${made.id}"]`).waitFor();
    // Nothing wider than the screen: no sideways scrolling to reach a control.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      390,
    );
    await shot("sandboxes-narrow");
    await page.emulateMedia({ colorScheme: "dark" });
    await shot("sandboxes-narrow-dark");
    await page.emulateMedia({ colorScheme: "light" });
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByLabel("Dockerfile").waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      390,
    );
    await shot("templates-narrow");
  });

  it("drains the host: it stays listed, no longer ready", async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByRole("link", { name: "Hosts" }).click();
    const host = page.locator("tr[data-host]").first();
    const id = await host.getAttribute("data-host");
    await host.getByRole("button", { name: `Drain ${id}` }).click();
    await expect.poll(() => host.locator(".state").textContent()).toBe("draining");
    const { hosts } = (await api("/v1/hosts")) as { hosts: { id: string; state: string }[] };
    expect(hosts.find((h) => h.id === id)?.state).toBe("draining");
  });
});
