import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentError } from "../../errors.js";

/** One GET /health; true on 2xx. Connection refused (envd not listening yet) is false. */
function healthy(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: "/health", agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 300);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

/**
 * Polls envd's /health until it answers, the sandbox dies (`alive` false), the deadline passes
 * or `signal` aborts. Polls tightly at first: envd is usually up within tens of milliseconds.
 */
export async function waitForEnvd(opts: {
  host: string;
  port: number;
  timeoutMs: number;
  alive: () => Promise<boolean>;
  signal?: AbortSignal;
}): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    if (await healthy(opts.host, opts.port)) return;
    if (!(await opts.alive())) {
      throw new AgentError("internal", "the sandbox exited before envd answered");
    }
    if (Date.now() > deadline) {
      throw new AgentError("unavailable", `envd did not answer within ${opts.timeoutMs} ms`);
    }
    await sleep(attempt < 50 ? 2 : 20);
  }
}
