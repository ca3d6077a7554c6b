import type { GetHostInfoResponse } from "@wrenn/proto/agent";
import { AgentError } from "../errors.js";
import { type ControlPlane, ControlPlaneError } from "./control-plane.js";
import type { HostCredentials } from "./credentials.js";

/** What `/v1/hosts/register` and `/v1/hosts/refresh` answer. */
export interface CredentialsResponse {
  host_id: string;
  host_jwt: string;
  host_jwt_expires_at: string;
  refresh_token: string;
  refresh_token_expires_at: string;
  heartbeat_sec?: number;
}

export interface RegisterOptions {
  controlPlane: ControlPlane;
  serverUrl: string;
  token: string;
  instanceId: string;
  advertiseUrl: string;
  agentKey: string;
  sandboxCidr: string;
  info: GetHostInfoResponse;
  /** PEM of the agent's certificate, when it serves HTTPS. */
  tlsCert?: string;
}

/**
 * POST /v1/hosts/register. The agent must already accept `agentKey` at `advertiseUrl`: the
 * server calls GetHostInfo there before it answers. Failures become one clear sentence.
 */
export async function register(
  opts: RegisterOptions,
): Promise<CredentialsResponse & HostCredentials> {
  const { info } = opts;
  let res: CredentialsResponse;
  try {
    res = await opts.controlPlane.post<CredentialsResponse>("/v1/hosts/register", {
      token: opts.token,
      host_id: info.hostId,
      instance_id: opts.instanceId,
      advertise_url: opts.advertiseUrl,
      hostname: info.hostname,
      version: info.version,
      runtimes: info.runtimes,
      default_runtime: info.defaultRuntime,
      runtime_details: info.runtimeDetails.map((d) => ({ name: d.name, accel: d.accel })),
      capacity: {
        vcpus: info.capacity?.vcpus ?? 0,
        memory_mb: Number(info.capacity?.memoryMb ?? 0),
        disk_mb: Number(info.capacity?.diskMb ?? 0),
        max_sandboxes: info.capacity?.maxSandboxes ?? 0,
      },
      sandbox_cidr: opts.sandboxCidr,
      agent_key: opts.agentKey,
      ...(opts.tlsCert && { tls_cert: opts.tlsCert }),
    });
  } catch (err) {
    throw registrationError(err, opts);
  }
  if (res.host_id !== info.hostId || !res.host_jwt || !res.refresh_token) {
    throw new AgentError(
      "internal",
      "registration: the server's answer lacks the host credentials",
    );
  }
  return {
    ...res,
    server_url: opts.serverUrl,
    host_id: info.hostId,
    agent_key: opts.agentKey,
  };
}

function registrationError(err: unknown, opts: RegisterOptions): AgentError {
  if (!(err instanceof ControlPlaneError)) {
    return new AgentError("unavailable", `registration failed: ${AgentError.from(err).message}`, {
      cause: err,
    });
  }
  const said = err.message.replace(/^[^:]*: \d+ /, "");
  switch (err.status) {
    case 401:
      return new AgentError(
        "unauthenticated",
        `registration token rejected by ${opts.serverUrl} (unknown, expired or already used): make a new one with \`wrenn host add\``,
        { cause: err },
      );
    case 409:
      return new AgentError(
        "already_exists",
        `host ${opts.info.hostId} is already registered with ${opts.serverUrl}: remove it there (\`wrenn host rm\`) or start with a fresh agent directory`,
        { cause: err },
      );
    case 400:
      return new AgentError(
        "failed_precondition",
        `registration refused: ${said} (the server must reach this agent at ${opts.advertiseUrl}; set --advertise-url)`,
        { cause: err },
      );
    default:
      return new AgentError("unavailable", `registration failed: ${said}`, { cause: err });
  }
}
