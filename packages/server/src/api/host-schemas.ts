import { z } from "@hono/zod-openapi";
import { NoControl, Timestamp } from "./schemas.js";

// The fleet's shapes: hosts as teams see them, and what agents send to join and stay joined.

export const HOST_STATE_VALUES = ["ready", "draining", "unreachable", "offline"] as const;

export const HostSchema = z
  .object({
    id: z.string(),
    state: z.enum(HOST_STATE_VALUES),
    shared: z.boolean().openapi({ description: "Serves every team (else only `team_id`)" }),
    team_id: z.string().nullable(),
    address: z.string().nullable().openapi({
      description: "The agent's URL; null on shared hosts for teams other than the operator's",
    }),
    hostname: z.string().nullable(),
    version: z.string().nullable(),
    runtimes: z.array(z.string()),
    runtime_details: z
      .array(z.object({ name: z.string(), accel: z.string() }))
      .openapi({ description: "How each runtime runs there: microvm's accel is kvm or tcg" }),
    default_runtime: z.string().nullable(),
    capacity: z
      .object({ vcpus: z.number(), memory_mb: z.number(), disk_mb: z.number() })
      .nullable(),
    usage: z.object({ sandboxes: z.number(), vcpus: z.number(), memory_mb: z.number() }),
    created_at: Timestamp,
    last_seen_at: Timestamp.nullable(),
  })
  .openapi("Host");

const HostId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be letters, digits and ._-");

export const HostIdParams = z.object({ id: HostId });

export const HostDeleteQuery = z.object({
  force: z.enum(["true", "false"]).optional().openapi({
    description: "Destroy its sandboxes (where it answers) and remove it anyway",
  }),
});

export const HostTokenCreateSchema = z
  .object({
    shared: z
      .boolean()
      .optional()
      .openapi({ description: "A host for every team (operator only)" }),
    ttl_sec: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .optional(),
  })
  .openapi("HostTokenCreate");

export const HostTokenSchema = z
  .object({ token: z.string(), expires_at: Timestamp, shared: z.boolean() })
  .openapi("HostToken");

const Capacity = z.object({
  vcpus: z.number().int().min(0).max(1_000_000),
  memory_mb: z.number().int().min(0),
  disk_mb: z.number().int().min(0),
  max_sandboxes: z.number().int().min(0).default(0),
});
const AdvertiseUrl = z.string().max(2048).url();
const Pem = z
  .string()
  .max(64 * 1024)
  .regex(/-----BEGIN CERTIFICATE-----/, "must be a PEM certificate");

export const HostRegisterSchema = z
  .object({
    token: z.string().min(1).max(512),
    host_id: HostId,
    instance_id: z.string().min(1).max(128),
    advertise_url: AdvertiseUrl,
    hostname: z.string().max(255).regex(NoControl, "must not contain control characters"),
    version: z.string().max(64).regex(NoControl, "must not contain control characters"),
    runtimes: z
      .array(z.enum(["namespace", "microvm"]))
      .min(1)
      .max(8),
    default_runtime: z.enum(["namespace", "microvm"]),
    runtime_details: z
      .array(
        z.object({
          name: z.enum(["namespace", "microvm"]),
          accel: z.enum(["", "kvm", "tcg"]),
        }),
      )
      .max(8)
      .optional(),
    capacity: Capacity,
    sandbox_cidr: z
      .string()
      .max(64)
      .regex(/^[0-9./]+$/, "must be a CIDR"),
    agent_key: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 hex characters"),
    tls_cert: Pem.optional(),
  })
  .openapi("HostRegister");

export const HostCredentialsSchema = z
  .object({
    host_id: z.string(),
    host_jwt: z.string(),
    host_jwt_expires_at: Timestamp,
    refresh_token: z.string(),
    refresh_token_expires_at: Timestamp,
    heartbeat_sec: z.number().int(),
  })
  .openapi("HostCredentials");

export const HostRefreshSchema = z
  .object({ refresh_token: z.string().min(1).max(512) })
  .openapi("HostRefresh");

export const HostHeartbeatSchema = z
  .object({
    host_id: HostId,
    instance_id: z.string().min(1).max(128),
    advertise_url: AdvertiseUrl.optional(),
    usage: z.record(z.string().max(64), z.number()).optional(),
    sandboxes: z
      .array(z.object({ id: z.string().max(64), state: z.string().max(32) }))
      .max(100_000)
      .optional(),
  })
  .openapi("HostHeartbeat");

export const HostHeartbeatAnswerSchema = z
  .object({ host_state: z.enum(["ready", "draining"]), heartbeat_sec: z.number().int() })
  .openapi("HostHeartbeatAnswer");

export const HostListSchema = z.object({ hosts: z.array(HostSchema) }).openapi("HostList");

/** A path inside a sandbox: absolute, or relative to the user's home. */
