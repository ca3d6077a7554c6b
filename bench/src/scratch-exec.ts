import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keepHostFirewallState } from "@wrenn/agent";
import { Sandbox } from "@wrenn/sdk";
import { closeServer, startServer } from "./single-host.js";
const restore = await keepHostFirewallState();
const dataDir = await mkdtemp(join(tmpdir(), "wrenn-scratch-exec-"));
const server = await startServer(join(dataDir, "d"), []);
try {
  const s = await Sandbox.create(server.conn);
  for (const cmd of ["true", "id; ls -l /proc/self/fd; cat /proc/self/status | grep -i cap", "echo hi >&2"]) {
    try { console.log(cmd, await s.commands.run(cmd, { throwOnError: false })); } catch (e) { console.log(cmd, "ERR", (e as Error).message); }
  }
  try { console.log(await s.commands.run("id", { user: "root", throwOnError: false })); } catch (e) { console.log("root ERR", (e as Error).message); }
  const { execSync } = await import("node:child_process");
  const info = server.host.embedded.agent.runtime.get(s.sandboxId);
  console.log(execSync(`for p in $(ls /proc | grep -E '^[0-9]+$'); do if grep -qs wrenn-spawn /proc/$p/comm; then pp=$(awk '{print $4}' /proc/$p/stat); echo helper $p parent $pp; grep -E 'Cap|Uid|Gid|NoNewPrivs' /proc/$p/status; echo envd; grep -E 'Cap|Uid|Gid|NoNewPrivs' /proc/$pp/status; cat /proc/$pp/cmdline | tr '\\0' ' '; echo; fi; done`, { encoding: "utf8" }));
  await s.kill();
} finally {
  await closeServer(server.host);
  await rm(dataDir, { recursive: true, force: true });
  await restore();
}
