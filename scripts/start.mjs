// `npm start`: Wrenn in single-host mode (SQLite, embedded agent, API and web console on
// 127.0.0.1:3000), then a first sandbox through the REST API to show it working. Ctrl-C stops the
// server; sandboxes stay. `npm start -- --yes` (or WRENN_INSTALL_DEPS=1) installs missing host
// packages without asking.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { checkHost } from "./host-check.mjs";

const port = process.env.WRENN_PORT ?? "3000";
const api = `http://127.0.0.1:${port}`;
const dataDir = process.env.WRENN_DATA_DIR ?? join(homedir(), ".wrenn");
const firstStart = !existsSync(join(dataDir, "config.json"));

await checkHost({
  template: process.env.WRENN_DEFAULT_TEMPLATE || "base",
  assumeYes:
    process.argv.includes("--yes") ||
    process.argv.includes("-y") ||
    process.env.WRENN_INSTALL_DEPS === "1",
  // The first start names every check; later starts print them only when something is wrong.
  verbose: firstStart,
});

// The bin sizes libuv's thread pool for the server (16 threads unless UV_THREADPOOL_SIZE says).
const server = spawn(process.execPath, ["packages/server/bin/wrenn-server.cjs", "serve"], {
  stdio: "inherit",
});
server.once("exit", (code) => process.exit(code ?? 1));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.kill(signal));

// The first start builds the default template (minutes, with progress above); /health says 200
// once sandboxes can be created.
for (;;) {
  const status = await fetch(`${api}/health`).then(
    (r) => r.status,
    () => 0,
  );
  if (status === 200) break;
  await new Promise((r) => setTimeout(r, 1000));
}

const { api_key: key } = JSON.parse(await readFile(join(dataDir, "config.json"), "utf8"));
const call = async (method, path, body) => {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
};

const started = performance.now();
const sandbox = await call("POST", "/v1/sandboxes", {});
const created = performance.now() - started;
const run = await call("POST", `/v1/sandboxes/${sandbox.id}/exec`, {
  cmd: 'echo "hello from $(hostname), $(id -un), $(uname -sr)"; . /etc/os-release; echo $PRETTY_NAME',
});
await call("DELETE", `/v1/sandboxes/${sandbox.id}`);

console.log(`
Wrenn is running: the web console at ${api}/ (sign in as admin@wrenn.local with the password
printed at the first start), the API at ${api}/v1. A first sandbox was created in ${created.toFixed(0)} ms, ran:
${run.stdout.trimEnd().replace(/^/gm, "  ")}
and was destroyed. Try it yourself (key in ${join(dataDir, "config.json")}):

  export WRENN_API_URL=${api} WRENN_API_KEY=${key}
  id=$(curl -s -X POST $WRENN_API_URL/v1/sandboxes -H "x-api-key: $WRENN_API_KEY" | sed 's/.*"id":"\\([^"]*\\)".*/\\1/')
  curl -s -X POST $WRENN_API_URL/v1/sandboxes/$id/exec -H "x-api-key: $WRENN_API_KEY" \\
    -H 'content-type: application/json' -d '{"cmd":"python3 -c \\"print(6*7)\\""}'
  curl -s -X DELETE $WRENN_API_URL/v1/sandboxes/$id -H "x-api-key: $WRENN_API_KEY"

API reference: ${api}/docs. Ctrl-C stops the server.`);
