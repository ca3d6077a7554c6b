import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The CLI's helper: `wrenn server start` as a child process with the test-minimal template.
import { startTestServer, type TestServer } from "../../cli/test/helpers/server.js";
import {
  browserSkipReason,
  launchBrowser,
  screenshot,
  signInAsAdmin,
  type TestBrowser,
} from "./helpers/browser.js";

// The Account page's team invitations (pending list, revoke) and password change in Debian's
// Chromium against a real server; what the page shows is checked against the API.

const ADMIN = "admin@wrenn.local";
const skip = browserSkipReason();
if (skip) console.warn(`[wrenn/console] browser suite SKIPPED: ${skip}`);

describe.skipIf(skip)("team invitations and the password on the Account page", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let password: string;

  const shot = (name: string) => screenshot(page, name);
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.apiUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  /** The pending invitations' ids as the API lists them to the admin (a login of its own). */
  const pendingIds = async (token: string) => {
    const res = await fetch(`${server.apiUrl}/v1/teams/invites`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return ((await res.json()) as { invites: { id: string }[] }).invites.map((i) => i.id);
  };
  /** Makes an invitation on the page and returns its token (a new one: the last may be shown). */
  const createInvite = async () => {
    const token = page.getByTestId("invite-token");
    const before = (await token.count()) ? await token.textContent() : null;
    await page.getByRole("button", { name: "Create invitation" }).click();
    await expect
      .poll(async () => ((await token.count()) ? token.textContent() : null))
      .not.toBe(before);
    const made = (await token.textContent()) ?? "";
    expect(made).toMatch(/^wrninv_\S+$/);
    return made;
  };

  beforeAll(async () => {
    server = await startTestServer();
    password = /password:\s+(\S+)/.exec(server.log())?.[1] ?? "";
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(30_000);
    await signInAsAdmin(page, server);
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByRole("heading", { name: "Pending invitations" }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("lists pending invitations; Revoke removes one and its token no longer signs up", async () => {
    await expect.poll(() => page.getByText("None.").isVisible()).toBe(true);
    // Logins are rate-limited per account (10 a minute): one for the API's view of this test.
    const login = await post("/v1/auth/login", { email: ADMIN, password });
    const { token } = (await login.json()) as { token: string };
    const revokedToken = await createInvite();
    const rows = page.locator("tr[data-invite]");
    await expect.poll(() => rows.count()).toBe(1);
    const revokedId = (await rows.first().getAttribute("data-invite")) ?? "";
    const keptToken = await createInvite();
    await expect.poll(() => rows.count()).toBe(2);
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-invite")));
    expect(await pendingIds(token)).toEqual(ids);
    expect(await page.locator("table").last().textContent()).not.toContain(keptToken);
    await shot("account-invites");

    // Revoke by keyboard: the button is reachable and named after the invitation.
    await page.getByRole("button", { name: `Revoke invitation ${revokedId}` }).focus();
    await page.keyboard.press("Enter");
    await page.locator(`tr[data-invite="${revokedId}"]`).waitFor({ state: "detached" });
    const kept = ids.filter((id) => id !== revokedId);
    expect(await pendingIds(token)).toEqual(kept);

    const refused = await post("/v1/auth/signup", {
      email: "revoked@wrenn.local",
      password: "a long password",
      invite: revokedToken,
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: "permission_denied" });
    const joined = await post("/v1/auth/signup", {
      email: "kept@wrenn.local",
      password: "a long password",
      invite: keptToken,
    });
    expect(joined.status).toBe(201);
    // Used: gone from the list after the page reloads it; the new member is listed.
    await page.reload();
    await page.locator('tr[data-member="kept@wrenn.local"]').waitFor();
    await expect.poll(() => rows.count()).toBe(0);
  });

  it("removes a member after asking; their login for the team stops working", async () => {
    const member = "kept@wrenn.local";
    const login = await post("/v1/auth/login", { email: member, password: "a long password" });
    const { token: memberToken } = (await login.json()) as { token: string };
    const asMember = { authorization: `Bearer ${memberToken}` };
    const members = () =>
      fetch(`${server.apiUrl}/v1/teams/members`, { headers: asMember }).then((r) => r.status);
    expect(await members()).toBe(200);

    const row = page.locator(`tr[data-member="${member}"]`);
    const remove = page.getByRole("button", { name: `Remove ${member} from the team` });
    // The signed-in owner cannot remove themselves from the page.
    expect(
      await page.getByRole("button", { name: `Remove ${ADMIN} from the team` }).isDisabled(),
    ).toBe(true);
    // Asked first: "Keep" leaves the member in the team.
    await remove.click();
    await row.getByText(`Remove ${member} from the team?`).waitFor();
    await shot("account-member-remove");
    await page.getByRole("button", { name: "Keep" }).click();
    expect(await members()).toBe(200);

    await remove.click();
    await page.getByRole("button", { name: `Confirm: Remove ${member} from the team` }).click();
    await row.waitFor({ state: "detached" });
    expect(await members()).toBe(401);
  });

  it("changes the password: a wrong current one or a mismatch is refused on the page", async () => {
    const form = {
      current: page.getByLabel("Current password"),
      next: page.getByLabel("New password", { exact: true }),
      confirm: page.getByLabel("Confirm new password"),
      submit: page.getByRole("button", { name: "Change password" }),
    };
    await form.current.fill("not the password");
    await form.next.fill("a brand new password");
    await form.confirm.fill("a brand new password");
    await form.submit.click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("current password");
    await form.current.fill(password);
    await form.confirm.fill("a different password");
    await form.submit.click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("differ");
    // Nothing reached the server: the old password still logs in.
    expect((await post("/v1/auth/login", { email: ADMIN, password })).status).toBe(200);

    await form.confirm.fill("a brand new password");
    await form.submit.click();
    await page.getByText("Password changed").waitFor();
    await shot("account-password");
    expect((await post("/v1/auth/login", { email: ADMIN, password })).status).toBe(401);
    password = "a brand new password";
    expect((await post("/v1/auth/login", { email: ADMIN, password })).status).toBe(200);

    // The console signed in again by itself: the bearer routes still answer it.
    await createInvite();
    await expect.poll(() => page.locator("tr[data-invite]").count()).toBe(1);

    // Sign-out ends the session on the server too: its token and its API key are refused.
    const session = (await page.evaluate(() =>
      JSON.parse(sessionStorage.getItem("wrenn.session") ?? "{}"),
    )) as { token: string; apiKey: string };
    const whoami = (headers: Record<string, string>) =>
      fetch(`${server.apiUrl}/v1/auth/whoami`, { headers }).then((r) => r.status);
    expect(await whoami({ authorization: `Bearer ${session.token}` })).toBe(200);
    expect(await whoami({ "x-api-key": session.apiKey })).toBe(200);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Email").waitFor();
    expect(await whoami({ authorization: `Bearer ${session.token}` })).toBe(401);
    expect(await whoami({ "x-api-key": session.apiKey })).toBe(401);

    // And the new password is the one the sign-in page takes.
    await page.getByLabel("Email").fill(ADMIN);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Sandboxes" }).waitFor();
  });
});
