import {
  type CodeContext,
  CodeInterpreter,
  type CreateCodeContextOpts,
  type Execution,
  type RunCodeOpts,
} from "../code-interpreter/index.js";
import { Commands } from "../commands/index.js";
import type { ConnectionOpts } from "../config/index.js";
import { NotFoundError } from "../errors/index.js";
import { Files } from "../files/index.js";
import { ApiClient, type RequestOpts, requestOpts } from "../http/index.js";
import { Paginator } from "../pagination/index.js";
import { Pty } from "../pty/index.js";
import { type SnapshotInfo, snapshotFromWire, type WireSnapshot } from "../snapshot/index.js";
import type { SandboxCreateOpts, SandboxListOpts } from "./options.js";
import {
  metricsFromWire,
  type SandboxInfo,
  type SandboxMetrics,
  type SandboxNetworkRules,
  sandboxFromWire,
  type WireSandbox,
} from "./types.js";

const path = (id: string) => `/v1/sandboxes/${encodeURIComponent(id)}`;

/**
 * An isolated sandbox. Make one with {@link Sandbox.create} or attach with
 * {@link Sandbox.connect}; run commands with `commands`, terminals with `pty`, and reach its
 * filesystem with `files`.
 */
export class Sandbox {
  /** The sandbox's id. */
  readonly sandboxId: string;
  /** Run and attach to processes. */
  readonly commands: Commands;
  /** Interactive terminals. */
  readonly pty: Pty;
  /** The sandbox's filesystem. */
  readonly files: Files;
  /** The low-level client this sandbox talks through. */
  readonly client: ApiClient;
  /**
   * Created with `allowPublicTraffic: false`: the `e2b-traffic-access-token` header value its
   * ports need, sent by `runCode` and its kin (set by `create`, `fork` and `connect`;
   * `getPortUrl` tells it to any sandbox of the team).
   */
  readonly trafficAccessToken: string | undefined;
  private readonly code: CodeInterpreter;

  private constructor(client: ApiClient, sandboxId: string, trafficAccessToken?: string) {
    this.client = client;
    this.sandboxId = sandboxId;
    this.trafficAccessToken = trafficAccessToken;
    this.commands = new Commands(client, sandboxId);
    this.pty = new Pty(client, sandboxId);
    this.files = new Files(client, sandboxId);
    this.code = new CodeInterpreter(client, sandboxId, trafficAccessToken);
  }

  /** Creates a sandbox and resolves once it is running. */
  static async create(opts: SandboxCreateOpts = {}): Promise<Sandbox> {
    const client = await ApiClient.fromOptions(opts);
    const body: Record<string, unknown> = {
      template: opts.template,
      snapshot: opts.snapshot,
      vcpus: opts.vcpus,
      memory_mb: opts.memoryMb,
      disk_size_mb: opts.diskSizeMb,
      timeout_sec: opts.timeoutMs === undefined ? undefined : Math.ceil(opts.timeoutMs / 1000),
      metadata: opts.metadata,
      envs: opts.envs,
      allow_internet_access: opts.allowInternetAccess,
      allow_out: opts.network?.allowOut,
      deny_out: opts.network?.denyOut,
      allow_public_traffic: opts.allowPublicTraffic,
      auto_resume: opts.autoResume,
      host_id: opts.hostId,
      runtime: opts.runtime,
    };
    const created = await client.json<WireSandbox & { traffic_access_token?: string | null }>({
      method: "POST",
      path: "/v1/sandboxes",
      json: Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    });
    return new Sandbox(client, created.id, created.traffic_access_token ?? undefined);
  }

  /**
   * Attaches to an existing sandbox, resuming it if it is paused (unless `resume: false`, for
   * calls that should leave a paused sandbox paused, such as reading its info).
   */
  static async connect(
    sandboxId: string,
    opts: ConnectionOpts & RequestOpts & { resume?: boolean } = {},
  ): Promise<Sandbox> {
    const client = await ApiClient.fromOptions(opts);
    const info = await client.json<WireSandbox & { traffic_access_token?: string | null }>({
      method: "GET",
      path: path(sandboxId),
      ...requestOpts(opts),
    });
    const sandbox = new Sandbox(client, sandboxId, info.traffic_access_token ?? undefined);
    if (info.state === "paused" && opts.resume !== false) await sandbox.resume(opts);
    return sandbox;
  }

  /** The team's sandboxes, page by page (iterate with `for await` for every one). */
  static list(opts: SandboxListOpts = {}): Paginator<SandboxInfo> {
    const states = opts.state === undefined ? undefined : [opts.state].flat().join(",");
    const metadata = opts.metadata ? new URLSearchParams(opts.metadata).toString() : undefined;
    let client: Promise<ApiClient> | undefined;
    return new Paginator(async (cursor) => {
      client ??= ApiClient.fromOptions(opts);
      const page = await (await client).json<{
        sandboxes: WireSandbox[];
        next_cursor: string | null;
      }>({
        method: "GET",
        path: "/v1/sandboxes",
        query: { state: states, metadata, limit: opts.limit, cursor },
        ...requestOpts(opts),
      });
      return {
        items: page.sandboxes.map(sandboxFromWire),
        nextCursor: page.next_cursor ?? undefined,
      };
    });
  }

  /** Destroys a sandbox; false when it did not exist. */
  static async kill(sandboxId: string, opts: ConnectionOpts & RequestOpts = {}): Promise<boolean> {
    const client = await ApiClient.fromOptions(opts);
    try {
      await client.json({ method: "DELETE", path: path(sandboxId), ...requestOpts(opts) });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** Describes a sandbox. */
  static async getInfo(
    sandboxId: string,
    opts: ConnectionOpts & RequestOpts = {},
  ): Promise<SandboxInfo> {
    const client = await ApiClient.fromOptions(opts);
    return sandboxFromWire(
      await client.json<WireSandbox>({
        method: "GET",
        path: path(sandboxId),
        ...requestOpts(opts),
      }),
    );
  }

  /** Destroys this sandbox and everything in it. */
  async kill(opts: RequestOpts = {}): Promise<void> {
    await this.client.json({ method: "DELETE", path: path(this.sandboxId), ...requestOpts(opts) });
  }

  /** Pauses the sandbox (memory kept); processes continue on resume. */
  async pause(opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${path(this.sandboxId)}/pause`,
      idempotent: true, // pausing a paused sandbox is a no-op
      ...requestOpts(opts),
    });
  }

  /** Resumes a paused sandbox. */
  async resume(opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${path(this.sandboxId)}/resume`,
      json: {},
      idempotent: true, // resuming a running sandbox is a no-op
      ...requestOpts(opts),
    });
  }

  /** Counts as activity: resets the inactivity timer. */
  async ping(opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${path(this.sandboxId)}/ping`,
      idempotent: true,
      ...requestOpts(opts),
    });
  }

  /** Sets the inactivity timeout (rounded up to seconds; 0 = never pause). */
  async setTimeout(timeoutMs: number, opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${path(this.sandboxId)}/timeout`,
      json: { timeout_sec: Math.ceil(timeoutMs / 1000) },
      idempotent: true,
      ...requestOpts(opts),
    });
  }

  /**
   * Replaces the sandbox's internet access (default: on) and egress rules, live: new
   * connections follow the new rules at once. Returns the sandbox as it is now.
   */
  async setNetwork(
    network: SandboxNetworkRules & { allowInternetAccess?: boolean },
    opts: RequestOpts = {},
  ): Promise<SandboxInfo> {
    return sandboxFromWire(
      await this.client.json<WireSandbox>({
        method: "PUT",
        path: `${path(this.sandboxId)}/network`,
        json: {
          allow_internet_access: network.allowInternetAccess ?? true,
          allow_out: network.allowOut ?? [],
          deny_out: network.denyOut ?? [],
        },
        idempotent: true,
        ...requestOpts(opts),
      }),
    );
  }

  /** Describes this sandbox. */
  async getInfo(opts: RequestOpts = {}): Promise<SandboxInfo> {
    return sandboxFromWire(
      await this.client.json<WireSandbox>({
        method: "GET",
        path: path(this.sandboxId),
        ...requestOpts(opts),
      }),
    );
  }

  /** True while the sandbox is running (not paused, stopped or lost). */
  async isRunning(opts: RequestOpts = {}): Promise<boolean> {
    return (await this.getInfo(opts)).state === "running";
  }

  /** Current resource use. */
  async getMetrics(opts: RequestOpts = {}): Promise<SandboxMetrics> {
    return metricsFromWire(
      await this.client.json<Record<string, unknown>>({
        method: "GET",
        path: `${path(this.sandboxId)}/metrics`,
        inSandbox: true,
        ...requestOpts(opts),
      }),
    );
  }

  /**
   * The public host name of a port of the sandbox, `<port>-<id>.<domain>` (the server's
   * `WRENN_DOMAIN`): requests for it reach that port inside the sandbox (HTTP and WebSocket).
   */
  async getHost(port: number, opts: RequestOpts = {}): Promise<string> {
    return (await this.getPortUrl(port, opts)).host;
  }

  /**
   * The port's host name and a URL for it (scheme and port of the server); for a sandbox without
   * public traffic also the `e2b-traffic-access-token` header value requests to it need.
   */
  async getPortUrl(
    port: number,
    opts: RequestOpts = {},
  ): Promise<{ host: string; url: string; trafficAccessToken?: string }> {
    const wire = await this.client.json<{
      host: string;
      url: string;
      traffic_access_token?: string | null;
    }>({
      method: "GET",
      path: `${path(this.sandboxId)}/ports/${encodeURIComponent(String(port))}`,
      ...requestOpts(opts),
    });
    return {
      host: wire.host,
      url: wire.url,
      ...(wire.traffic_access_token ? { trafficAccessToken: wire.traffic_access_token } : {}),
    };
  }

  /**
   * Runs a code cell (sandboxes of the `code-interpreter` template) in Python's Jupyter kernel,
   * or with `{ language: "js" }` in Node: the cell's value, displays (a matplotlib figure as
   * PNG), output and exception. Variables persist across calls in one context (by default, the
   * language's own).
   *
   * @example
   * ```ts
   * const sandbox = await Sandbox.create({ template: "code-interpreter" });
   * await sandbox.runCode("x = 41");
   * const { text } = await sandbox.runCode("x + 1"); // "42"
   * ```
   */
  runCode(code: string, opts: RunCodeOpts = {}): Promise<Execution> {
    return this.code.runCode(code, opts);
  }

  /** Starts a new code context (a kernel of its own) for {@link Sandbox.runCode}. */
  createCodeContext(opts: CreateCodeContextOpts = {}): Promise<CodeContext> {
    return this.code.createCodeContext(opts);
  }

  /** The sandbox's code contexts. */
  listCodeContexts(opts: RequestOpts = {}): Promise<CodeContext[]> {
    return this.code.listCodeContexts(opts);
  }

  /** Restarts a code context's kernel (its variables are lost). */
  restartCodeContext(context: CodeContext | string, opts: RequestOpts = {}): Promise<void> {
    return this.code.restartCodeContext(context, opts);
  }

  /** Shuts a code context down. */
  removeCodeContext(context: CodeContext | string, opts: RequestOpts = {}): Promise<void> {
    return this.code.removeCodeContext(context, opts);
  }

  /**
   * Forks this running sandbox into `count` (1-10) new ones with its files as they are now —
   * and in a microVM its memory and running processes too — on the same host, with its
   * template, resources and metadata plus `forked_from`. It keeps running; the forks then go
   * their own ways. All are made or none; an aborted or timed-out fork leaves none behind.
   */
  async fork(count = 1, opts: RequestOpts = {}): Promise<Sandbox[]> {
    const made = await this.client.json<{
      sandboxes: (WireSandbox & { traffic_access_token?: string | null })[];
    }>({
      method: "POST",
      path: `${path(this.sandboxId)}/fork`,
      json: { count },
      ...requestOpts(opts),
    });
    return made.sandboxes.map(
      (s) => new Sandbox(this.client, s.id, s.traffic_access_token ?? undefined),
    );
  }

  /** Freezes the sandbox's filesystem into a team snapshot new sandboxes can start from. */
  async createSnapshot(name: string, opts: RequestOpts = {}): Promise<SnapshotInfo> {
    return snapshotFromWire(
      await this.client.json<WireSnapshot>({
        method: "POST",
        path: "/v1/snapshots",
        json: { sandbox_id: this.sandboxId, name },
        ...requestOpts(opts),
      }),
    );
  }
}
