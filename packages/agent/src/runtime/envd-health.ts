import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Process } from "@wrenn/proto/process";
import { AgentError } from "../errors.js";

/** A sandbox's envd as the agent reaches it: address and the access token envd requires. */
export interface EnvdTarget {
  host: string;
  port: number;
  accessToken?: string;
}

/** The header carrying envd's per-sandbox access token. */
export const ACCESS_TOKEN_HEADER = "x-access-token";

function tokenHeader(envd: EnvdTarget): Record<string, string> {
  return envd.accessToken ? { [ACCESS_TOKEN_HEADER]: envd.accessToken } : {};
}

/** What one GET /health said: up, not answering, or up but its template's start command is not ready (or failed). */
type Health =
  | { state: "up" }
  | { state: "down" }
  | { state: "starting"; readyTimeoutMs: number }
  | { state: "failed"; message: string };

/** envd's 503/500 body while a template's start command starts, or after it failed. */
function startHealth(status: number, body: string): Health {
  try {
    const json = JSON.parse(body) as Record<string, unknown>;
    if (status === 503 && json.code === "starting") {
      return { state: "starting", readyTimeoutMs: Number(json.readyTimeoutMs) || 60_000 };
    }
    if (json.code === "start_failed") {
      const exit = json.exitCode === undefined ? "" : ` (exit code ${json.exitCode})`;
      const output = typeof json.output === "string" && json.output ? `\n${json.output}` : "";
      return { state: "failed", message: `${json.message}${exit}${output}` };
    }
  } catch {
    // not envd's JSON: as good as not answering
  }
  return { state: "down" };
}

/** One GET /health. Connection refused (envd not listening yet) is down. */
function health(envd: EnvdTarget): Promise<Health> {
  const { host, port } = envd;
  return new Promise((resolve) => {
    const req = http.get(
      { host, port, path: "/health", agent: false, timeout: 1_000, headers: tokenHeader(envd) },
      (res) => {
        const status = res.statusCode ?? 500;
        if (status < 300) {
          res.resume();
          resolve({ state: "up" });
          return;
        }
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (body.length < 64 * 1024) body += chunk;
        });
        res.on("end", () => resolve(startHealth(status, body)));
        res.on("error", () => resolve({ state: "down" }));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve({ state: "down" }));
  });
}

/** Between polls while envd may still tell its readiness: in case it never does. */
const READY_SIGNAL_FALLBACK_MS = 50;

/**
 * Polls envd's /health until it answers, the sandbox dies (`alive` false), the deadline passes
 * or `signal` aborts. Polls tightly at first: envd is usually up within tens of milliseconds.
 * With `ready` (envd's ready pipe: it listens), a poll waits for it instead, so a create does not
 * spend its envd's boot on refused connections. A template's start command extends the deadline
 * by its ready timeout (envd enforces it and then reports the failure, which is thrown with the
 * command's output).
 */
export async function waitForEnvd(
  opts: EnvdTarget & {
    timeoutMs: number;
    alive: () => Promise<boolean>;
    ready?: Promise<void>;
    signal?: AbortSignal;
  },
): Promise<void> {
  let deadline = Date.now() + opts.timeoutMs;
  let extended = false;
  let signalled = !opts.ready;
  void opts.ready?.then(() => {
    signalled = true;
  });
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    const answer = await health(opts);
    if (answer.state === "up") return;
    if (answer.state === "failed") {
      throw new AgentError("failed_precondition", `the template's ${answer.message}`);
    }
    if (answer.state === "starting" && !extended) {
      extended = true;
      deadline = Date.now() + answer.readyTimeoutMs + opts.timeoutMs;
    }
    if (!(await opts.alive())) {
      throw new AgentError("internal", "the sandbox exited before envd answered");
    }
    if (Date.now() > deadline) {
      throw new AgentError("unavailable", `envd did not answer within ${opts.timeoutMs} ms`);
    }
    if (!signalled && opts.ready) {
      await Promise.race([opts.ready, sleep(READY_SIGNAL_FALLBACK_MS)]);
      continue;
    }
    await sleep(attempt < 50 ? 2 : answer.state === "starting" ? 50 : 20);
  }
}

/**
 * POST /init: defaults (envs, user, workdir) for the processes envd starts from now on, and
 * `accessToken` to replace the token envd requires (the request carries the current one).
 * Not retried (a lost answer may have replaced the token): `timeoutMs` is the one chance.
 */
export function initEnvd(
  envd: EnvdTarget,
  body: {
    envVars?: Record<string, string>;
    defaultUser?: string;
    defaultWorkdir?: string;
    accessToken?: string;
  },
  timeoutMs = 5_000,
): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: envd.host,
        port: envd.port,
        method: "POST",
        path: "/init",
        agent: false,
        timeout: timeoutMs,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          ...tokenHeader(envd),
        },
      },
      (res) => {
        res.resume();
        if ((res.statusCode ?? 500) < 300) resolve();
        else reject(new AgentError("internal", `envd /init answered ${res.statusCode}`));
      },
    );
    req.on("timeout", () => req.destroy(new AgentError("unavailable", "envd /init timed out")));
    req.on("error", (err) => reject(AgentError.from(err)));
    req.end(payload);
  });
}

/**
 * Checks that envd refuses a request without `envd.accessToken`: an envd too old to take a
 * token from /init (in a snapshot made before) would otherwise stay open without a word.
 */
export function expectEnvdLocked(envd: EnvdTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: envd.host, port: envd.port, path: "/metrics", agent: false, timeout: 5_000 },
      (res) => {
        res.resume();
        if (res.statusCode === 401) resolve();
        else {
          reject(
            new AgentError(
              "failed_precondition",
              `envd answered ${res.statusCode} without its access token: its snapshot predates per-sandbox tokens; make it again`,
            ),
          );
        }
      },
    );
    req.on("timeout", () => req.destroy(new AgentError("unavailable", "envd timed out")));
    req.on("error", (err) => reject(AgentError.from(err)));
  });
}

/**
 * Runs `true` through envd a few times, so that the code of an exec (Connect handler, spawn,
 * streaming) is compiled before a caller's first command instead of during it.
 */
export async function warmUpEnvd(envd: EnvdTarget, runs = 3): Promise<void> {
  const token = envd.accessToken;
  const client = createClient(
    Process,
    createConnectTransport({
      baseUrl: `http://${envd.host}:${envd.port}`,
      httpVersion: "1.1",
      interceptors: token
        ? [
            (next) => (req) => {
              req.header.set(ACCESS_TOKEN_HEADER, token);
              return next(req);
            },
          ]
        : [],
    }),
  );
  for (let i = 0; i < runs; i++) {
    for await (const res of client.start(
      { process: { cmd: "true" } },
      { signal: AbortSignal.timeout(10_000) },
    )) {
      const event = res.event?.event;
      if (event?.case === "end" && event.value.exitCode !== 0) {
        throw new AgentError("internal", `warm-up exec exited ${event.value.exitCode}`);
      }
    }
  }
}

/** Runs one command through envd as `user` and resolves with its exit code. */
export async function execEnvd(
  envd: EnvdTarget,
  cmd: string,
  args: string[],
  user = "root",
): Promise<number> {
  const client = createClient(
    Process,
    createConnectTransport({ baseUrl: `http://${envd.host}:${envd.port}`, httpVersion: "1.1" }),
  );
  const headers = {
    ...tokenHeader(envd),
    authorization: `Basic ${Buffer.from(`${user}:`).toString("base64")}`,
  };
  for await (const res of client.start(
    { process: { cmd, args } },
    { headers, signal: AbortSignal.timeout(30_000) },
  )) {
    const event = res.event?.event;
    if (event?.case === "end") return event.value.exitCode;
  }
  throw new AgentError("internal", `${cmd}: envd closed the stream without an end`);
}
