import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Process } from "@wrenn/proto/process";

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Talks to one envd, directly (`http://<envdAddress>`) or through the agent's proxy
 * (`http://<agent>/sandboxes/<id>/envd`).
 */
export class EnvdClient {
  private readonly process;

  /**
   * `user` names who commands run as (E2B's Basic auth); envd's default user otherwise.
   * `headers` go on every request (envd's X-Access-Token directly, the agent's bearer through
   * its proxy).
   */
  constructor(
    readonly baseUrl: string,
    private readonly user?: string,
    private readonly headers: Record<string, string> = {},
  ) {
    this.process = createClient(Process, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
  }

  /** A sandbox's envd reached directly, with its access token. */
  static direct(info: { envdAddress: string; envdAccessToken?: string }, user?: string) {
    return new EnvdClient(
      `http://${info.envdAddress}`,
      user,
      info.envdAccessToken ? { "x-access-token": info.envdAccessToken } : {},
    );
  }

  /** Runs `sh -c script` (as `user` unless envd is told otherwise) and collects its output. */
  async sh(script: string, options: { signal?: AbortSignal } = {}): Promise<ExecResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let exitCode = -1;
    const stream = this.process.start(
      { process: { cmd: "/bin/sh", args: ["-c", script] } },
      {
        signal: options.signal ?? AbortSignal.timeout(30_000),
        headers: {
          ...this.headers,
          ...(this.user && {
            authorization: `Basic ${Buffer.from(`${this.user}:`).toString("base64")}`,
          }),
        },
      },
    );
    for await (const res of stream) {
      const event = res.event?.event;
      if (event?.case === "data") {
        const o = event.value.output;
        if (o.case === "stdout") out.push(Buffer.from(o.value));
        if (o.case === "stderr") err.push(Buffer.from(o.value));
      } else if (event?.case === "end") {
        exitCode = event.value.exitCode;
      }
    }
    return {
      stdout: Buffer.concat(out).toString(),
      stderr: Buffer.concat(err).toString(),
      exitCode,
    };
  }

  async upload(path: string, body: string | Buffer): Promise<Response> {
    return fetch(`${this.baseUrl}/files?path=${encodeURIComponent(path)}`, {
      method: "POST",
      headers: { ...this.headers, "content-type": "application/octet-stream" },
      body,
      signal: AbortSignal.timeout(15_000),
    });
  }

  /** filesystem.Filesystem/ListDir as a Connect unary JSON call, as `user`. */
  async list(path: string, options: { signal?: AbortSignal } = {}): Promise<Response> {
    return fetch(`${this.baseUrl}/filesystem.Filesystem/ListDir`, {
      method: "POST",
      headers: {
        ...this.headers,
        "content-type": "application/json",
        ...(this.user && {
          authorization: `Basic ${Buffer.from(`${this.user}:`).toString("base64")}`,
        }),
      },
      body: JSON.stringify({ path }),
      signal: options.signal ?? AbortSignal.timeout(15_000),
    });
  }

  async download(path: string): Promise<Response> {
    return fetch(`${this.baseUrl}/files?path=${encodeURIComponent(path)}`, {
      headers: this.headers,
      signal: AbortSignal.timeout(15_000),
    });
  }
}
