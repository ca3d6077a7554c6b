import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer, type Server, Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Daemon, spawnDaemon, until } from "./processes.js";

const serverMain = fileURLToPath(new URL("../../dist/main.js", import.meta.url));
const agentMain = fileURLToPath(new URL("../../../agent/dist/main.js", import.meta.url));

/** A port free on loopback right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A FAKE load balancer (TCP, loopback): each connection goes to the first replica that accepts
 * it. It stands for whatever balancer a deployment puts in front of its replicas; the replicas
 * behind it are the subject.
 */
export async function startFakeBalancer(
  backends: () => number[],
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.pause();
    const tryNext = (ports: number[]) => {
      const [port, ...rest] = ports;
      if (port === undefined) {
        client.destroy();
        return;
      }
      const upstream = new Socket();
      let connected = false;
      upstream.once("error", () => {
        if (!connected) tryNext(rest);
        else client.destroy();
      });
      upstream.connect(port, "127.0.0.1", () => {
        connected = true;
        sockets.add(upstream);
        upstream.on("close", () => {
          sockets.delete(upstream);
          client.destroy();
        });
        client.on("close", () => upstream.destroy());
        client.on("error", () => upstream.destroy());
        upstream.pipe(client);
        client.pipe(upstream);
        client.resume();
      });
    };
    tryNext(backends());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface FleetServer extends Daemon {
  /** The program it runs. */
  script: string;
  url: string;
  port: number;
  dataDir: string;
}

/** `wrenn-server` with WRENN_EMBEDDED_AGENT=false on `databaseUrl`, as its own process. */
export async function startFleetServer(
  name: string,
  databaseUrl: string,
  env: Record<string, string>,
  logDir: string,
): Promise<FleetServer> {
  const port = await freePort();
  // Inside logDir, which every caller removes (or keeps, with the logs, to debug).
  const dataDir = mkdtempSync(join(logDir, `data-${name}-`));
  const daemon = spawnDaemon(
    name,
    serverMain,
    ["serve"],
    {
      WRENN_EMBEDDED_AGENT: "false",
      WRENN_DATABASE_URL: databaseUrl,
      WRENN_DATA_DIR: dataDir,
      WRENN_PORT: String(port),
      WRENN_LOG_LEVEL: "info",
      ...env,
    },
    join(logDir, `${name}.log`),
  );
  const url = `http://127.0.0.1:${port}`;
  await until(
    `${name} to answer /health`,
    async () => {
      if (daemon.proc.exitCode !== null) throw new Error(`${name} exited: ${daemon.output()}`);
      return (await fetch(`${url}/health`)).ok;
    },
    30_000,
  );
  return { ...daemon, script: serverMain, url, port, dataDir };
}

export interface FleetAgent extends Daemon {
  dir: string;
  port: number;
  url: string;
  cidr: string;
  /** PEM of the certificate it serves HTTPS with, when it does. */
  ca?: string;
}

/** A self-signed certificate for 127.0.0.1 (openssl), as PEM files in `dir`. */
export function selfSignedCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-keyout",
      key,
      "-out",
      cert,
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "pipe" },
  );
  return { cert, key };
}

/** `wrenn-agent` as its own process, joining the fleet at `serverUrl` (token only the first time). */
export function startFleetAgent(
  name: string,
  opts: {
    dir: string;
    port: number;
    cidr: string;
    serverUrl: string;
    token?: string;
    tls?: { cert: string; key: string };
  },
  env: Record<string, string>,
  logDir: string,
): FleetAgent {
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${opts.port}`;
  const daemon = spawnDaemon(
    name,
    agentMain,
    [],
    {
      WRENN_AGENT_DIR: opts.dir,
      WRENN_AGENT_HOST: "127.0.0.1",
      WRENN_AGENT_PORT: String(opts.port),
      WRENN_AGENT_ADVERTISE_URL: url,
      WRENN_SANDBOX_CIDR: opts.cidr,
      WRENN_SERVER_URL: opts.serverUrl,
      WRENN_WARM_POOL: "0",
      WRENN_LOG_LEVEL: "info",
      ...(opts.token ? { WRENN_REGISTRATION_TOKEN: opts.token } : {}),
      ...(opts.tls ? { WRENN_TLS_CERT: opts.tls.cert, WRENN_TLS_KEY: opts.tls.key } : {}),
      ...env,
    },
    join(logDir, `${name}.log`),
  );
  return {
    ...daemon,
    dir: opts.dir,
    port: opts.port,
    url,
    cidr: opts.cidr,
    ...(opts.tls ? { ca: readFileSync(opts.tls.cert, "utf8") } : {}),
  };
}

/** What the agent keeps of its registration (root-only file). */
export function agentCredentials(dir: string): { host_id: string; agent_key: string } {
  return JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as {
    host_id: string;
    agent_key: string;
  };
}

/** A Connect (JSON) call straight to an agent with its key, as the server makes them. */
export async function agentCall<T>(
  agent: { dir: string; url: string; ca?: string },
  method: string,
  body = {},
): Promise<T> {
  const { agent_key } = agentCredentials(agent.dir);
  const url = new URL(`/wrenn.agent.v1.HostAgentService/${method}`, agent.url);
  const options = {
    method: "POST",
    headers: { authorization: `Bearer ${agent_key}`, "content-type": "application/json" },
    ...(agent.ca ? { ca: agent.ca } : {}),
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, options, resolve);
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
  let text = "";
  for await (const chunk of res) text += (chunk as Buffer).toString("utf8");
  if (res.statusCode !== 200) throw new Error(`${method}: ${res.statusCode} ${text}`);
  return JSON.parse(text) as T;
}

/** The sandboxes an agent holds, as the agent itself lists them (id and state). */
export async function agentSandboxes(
  agent: FleetAgent,
): Promise<{ sandboxId: string; state: string }[]> {
  const { sandboxes } = await agentCall<{ sandboxes?: { sandboxId: string; state: string }[] }>(
    agent,
    "ListSandboxes",
  );
  return sandboxes ?? [];
}

/**
 * A suite's clean-up: whatever a running agent still holds is destroyed through the agent
 * itself (its own bearer), then the agent is stopped by its pid. A failure is reported, not
 * thrown, so the rest of the clean-up goes on.
 */
export async function stopAgentWithSandboxes(agent: FleetAgent): Promise<void> {
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
    try {
      for (const s of await agentSandboxes(agent))
        await agentCall(agent, "DestroySandbox", { sandboxId: s.sandboxId });
    } catch (err) {
      console.error(`[${agent.name}] destroying its sandboxes failed:`, err);
    }
  }
  await agent.stop();
}

/** A JSON client for the REST API with one API key. */
export function apiClient(baseUrl: () => string, apiKey: string) {
  return async <T = unknown>(
    method: string,
    path: string,
    json?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        "x-api-key": apiKey,
        ...(json === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
}

export const sharedSecret = () => randomBytes(32).toString("base64url");
