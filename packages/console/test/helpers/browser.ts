import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`); nothing is ever downloaded. */
export const CHROMIUM = process.env.WRENN_TEST_CHROMIUM ?? "/usr/bin/chromium";

/** Why the browser suite cannot run here, or undefined when it can. */
export function browserSkipReason(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}: apt-get install -y chromium`;
  if (process.getuid?.() !== 0) return "the console suite starts a single-host server: run as root";
  return undefined;
}

/** Where the suites keep their screenshots (gitignored). */
const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts");

/** A full-page screenshot of `page`, kept as the test artifact `<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * A headless Chromium with a fresh profile (Playwright's persistent context is how it takes a
 * --user-data-dir) that talks to nothing but what the page asks for; downloads are kept.
 */
export async function launchBrowser(viewport = { width: 1280, height: 900 }): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), "wrenn-console-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      acceptDownloads: true,
      viewport,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    return {
      context,
      async close() {
        await context.close().catch(() => {});
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
}

/** Signs `page` in with the admin credentials the server's first start printed. */
export async function signInAsAdmin(
  page: Page,
  server: { apiUrl: string; log(): string },
): Promise<void> {
  const password = /password:\s+(\S+)/.exec(server.log())?.[1];
  if (!password) throw new Error(`no admin password in the server's output:\n${server.log()}`);
  await page.goto(server.apiUrl);
  await page.getByLabel("Email").fill("admin@wrenn.local");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Sandboxes" }).waitFor();
}
