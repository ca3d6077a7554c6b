import http from "node:http";
import https from "node:https";
import { AgentError } from "../errors.js";

/** A non-2xx answer of the server: its HTTP status and `{code, message}`. */
export class ControlPlaneError extends AgentError {
  constructor(
    readonly status: number,
    readonly serverCode: string,
    message: string,
  ) {
    super(status === 401 ? "unauthenticated" : "unavailable", message);
  }
}

export interface ControlPlaneOptions {
  /** The server's API URL, e.g. https://wrenn.example:3000. */
  serverUrl: string;
  /** PEM of the only CA the server's certificate may chain to (`--server-ca`). */
  ca?: string;
  /** Per-request limit (default 10 s). */
  timeoutMs?: number;
}

/** The longest an idle connection to the server is kept (less when the server announces less). */
const IDLE_SOCKET_MS = 30_000;

/** The agent's JSON calls to the server's `/v1/hosts/*` routes. */
export class ControlPlane {
  private readonly base: URL;
  private readonly opts: ControlPlaneOptions;
  private readonly agent: http.Agent;

  constructor(opts: ControlPlaneOptions) {
    this.opts = opts;
    this.base = new URL(opts.serverUrl);
    // With a timeout, Node closes an idle connection a second before the server's announced
    // keep-alive (`Keep-Alive: timeout=5`) runs out; without one it keeps it until the server
    // closes it, and a heartbeat sent at that moment meets a reset socket ("socket hang up").
    const keepAlive = { keepAlive: true, timeout: IDLE_SOCKET_MS };
    this.agent =
      this.base.protocol === "https:"
        ? new https.Agent({ ...keepAlive, ...(opts.ca && { ca: opts.ca }) })
        : new http.Agent(keepAlive);
  }

  /**
   * POST `path` with a JSON body; resolves with the JSON answer on 2xx. A non-2xx answer
   * rejects with ControlPlaneError; no answer at all with AgentError("unavailable").
   */
  post<T>(path: string, body: unknown, bearer?: string): Promise<T> {
    const url = new URL(path, this.base);
    const payload = JSON.stringify(body);
    const lib = url.protocol === "https:" ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method: "POST",
          agent: this.agent,
          timeout: this.opts.timeoutMs ?? 10_000,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload),
            ...(bearer && { authorization: `Bearer ${bearer}` }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) => reject(unreachable(url, err)));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString();
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300 && json !== undefined) {
              resolve(json as T);
              return;
            }
            const err = (json ?? {}) as { code?: unknown; message?: unknown };
            reject(
              new ControlPlaneError(
                status,
                typeof err.code === "string" ? err.code : `http_${status}`,
                `${url.pathname}: ${status} ${typeof err.message === "string" ? err.message : text.slice(0, 200)}`,
              ),
            );
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (err) => reject(unreachable(url, err)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function unreachable(url: URL, err: Error): AgentError {
  return new AgentError("unavailable", `cannot reach the server at ${url.origin}: ${err.message}`, {
    cause: err,
  });
}
