import { spawn } from "node:child_process";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./namespace-create-child.ts", import.meta.url));

/**
 * Runs a create of `id` (NamespaceRuntime unless `runtime` says microvm) over `agentDir` in a child process and SIGKILLs it
 * `killAfterMs` after the sandbox's record appears (or when it ends by itself).
 */
export async function crashNamespaceCreate(
  agentDir: string,
  id: string,
  killAfterMs: number,
  env: Record<string, string> = {},
  runtime: "namespace" | "microvm" = "namespace",
): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", script, agentDir, id, runtime], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const record = join(agentDir, "sandboxes", id, "sandbox.json");
  const deadline = Date.now() + 120_000;
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  while (!ended && Date.now() < deadline) {
    if (
      await access(record).then(
        () => true,
        () => false,
      )
    )
      break;
    await sleep(2);
  }
  await sleep(killAfterMs);
  child.kill("SIGKILL");
  await exited;
}
