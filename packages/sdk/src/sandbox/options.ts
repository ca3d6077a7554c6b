import type { ConnectionOpts } from "../config/index.js";
import type { RequestOpts } from "../http/index.js";
import type { SandboxNetworkRules, SandboxState } from "./types.js";

/** Options of {@link Sandbox.create}. */
export interface SandboxCreateOpts extends ConnectionOpts {
  /** Template to start from (default: the server's default template). */
  template?: string;
  /** A team snapshot to start from instead of a template (sets the resources). */
  snapshot?: string;
  vcpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  /** Inactivity after which the sandbox pauses itself (rounded up to seconds); 0 = never. */
  timeoutMs?: number;
  /** Labels to find the sandbox by (`Sandbox.list({ metadata })`). */
  metadata?: Record<string, string>;
  /** Environment of every command in the sandbox (never stored by the server). */
  envs?: Record<string, string>;
  /** Let the sandbox reach the internet (the server's default otherwise); false cuts all egress. */
  allowInternetAccess?: boolean;
  /** Egress rules (see {@link SandboxNetworkRules}); change them later with `setNetwork`. */
  network?: SandboxNetworkRules;
  /**
   * Its ports answer anyone at `getHost(port)` (default true). False: only requests carrying the
   * `e2b-traffic-access-token` header with {@link Sandbox.trafficAccessToken}.
   */
  allowPublicTraffic?: boolean;
  /** A request to one of its ports while it is paused resumes it (default false: 409). */
  autoResume?: boolean;
  /** Run it on this host (the team's own or a shared one); default: the scheduler picks. */
  hostId?: string;
  /**
   * How it is isolated: `"namespace"` (Linux namespaces, the default) or `"microvm"` (its own
   * kernel in a QEMU microVM; pause frees its memory). The host must offer it.
   */
  runtime?: "namespace" | "microvm" | (string & {});
  /**
   * Aborts the create call. The server destroys a sandbox it was making for a request closed
   * before its answer, so an aborted create leaves nothing behind.
   */
  signal?: AbortSignal;
  /** Timeout of the create call itself (default 60 000 ms); like `signal` it leaves nothing behind. */
  requestTimeoutMs?: number;
}

/** Options of {@link Sandbox.list}. */
export interface SandboxListOpts extends ConnectionOpts, RequestOpts {
  /** Only these states (default every state but `stopped`). */
  state?: SandboxState | SandboxState[];
  /** Only sandboxes with all of these labels. */
  metadata?: Record<string, string>;
  /** Page size (1-1000). */
  limit?: number;
}
