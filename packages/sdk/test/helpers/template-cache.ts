import { execFile } from "node:child_process";
import { access, mkdir, rename, symlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { debianMirror } from "@wrenn/agent";
import type { TestServer } from "./server.js";

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Why a suite that builds templates from Debian's mirror cannot run here (not root, no mirror),
 * or undefined when it can; `needs` says what the mirror is for.
 */
export async function mirrorSkipReason(needs: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root (real sandboxes)";
  return debianMirror().then(
    () => undefined,
    (err: Error) => `${needs}: ${err.message}`,
  );
}

/**
 * Makes the built-in template `name` (debootstrapped: minutes) ready on the test server. With
 * WRENN_TEST_TEMPLATE_CACHE=<dir> (as CI sets it) a copy built before is linked in from <dir>,
 * and one built here is copied there for later runs and suites. Copies are found by name, as the
 * examples suite (whose agent's templates/ is <dir>) finds them: after a change to a template's
 * build, empty <dir> (CI makes a new one per run). Returns how long it took.
 */
export async function ensureBuiltinTemplate(
  server: TestServer,
  name: string,
): Promise<{ seconds: number; sizeMiB: number }> {
  // The namespace runtime's own store (the server builds templates on first use too, but a
  // create call would time out long before such a build ends).
  const { templateStore: store } = server.host.embedded.agent.runtime as unknown as {
    templateStore: { dir: string; ensureTemplate(name: string): Promise<{ sizeBytes: number }> };
  };
  const cache = process.env.WRENN_TEST_TEMPLATE_CACHE;
  const cached = cache && join(cache, name);
  const isCached = cached && (await exists(join(cached, "template.json")));
  if (isCached) {
    await mkdir(store.dir, { recursive: true });
    await symlink(resolve(cached), join(store.dir, name));
  }
  const started = Date.now();
  const info = await store.ensureTemplate(name);
  if (cached && !isCached) {
    await mkdir(cache, { recursive: true });
    const partial = `${cached}.partial-${process.pid}`;
    await promisify(execFile)("cp", ["-a", "--reflink=auto", join(store.dir, name), partial]);
    await rename(partial, cached);
  }
  return {
    seconds: Math.round((Date.now() - started) / 1000),
    sizeMiB: Math.round(info.sizeBytes / 2 ** 20),
  };
}
