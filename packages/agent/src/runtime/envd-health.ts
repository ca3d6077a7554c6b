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

/** One GET /health; true on 2xx. Connection refused (envd not listening yet) is false. */
function healthy(envd: EnvdTarget): Promise<boolean> {
  const { host, port } = envd;
  return new Promise((resolve) => {
    const req = http.get(
      { host, port, path: "/health", agent: false, timeout: 1_000, headers: tokenHeader(envd) },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) < 300);
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

/**
 * Polls envd's /health until it answers, the sandbox dies (`alive` false), the deadline passes
 * or `signal` aborts. Polls tightly at first: envd is usually up within tens of milliseconds.
 */
export async function waitForEnvd(
  opts: EnvdTarget & {
    timeoutMs: number;
    alive: () => Promise<boolean>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    if (await healthy(opts)) return;
    if (!(await opts.alive())) {
      throw new AgentError("internal", "the sandbox exited before envd answered");
    }
    if (Date.now() > deadline) {
      throw new AgentError("unavailable", `envd did not answer within ${opts.timeoutMs} ms`);
    }
    await sleep(attempt < 50 ? 2 : 20);
  }
}

/**
 * POST /init: defaults (envs, user, workdir) for the processes envd starts from now on, and
 * `accessToken` to replace the token envd requires (the request carries the current one).
 */
export function initEnvd(
  envd: EnvdTarget,
  body: {
    envVars?: Record<string, string>;
    defaultUser?: string;
    defaultWorkdir?: string;
    accessToken?: string;
  },
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
        timeout: 5_000,
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
