import { z } from "@hono/zod-openapi";
import { httpStatusOf, type ServerErrorCode } from "../errors.js";
import { MAX_FORKS, SAFE_NAME } from "../service/index.js";
import { EgressList, SandboxNetworkSchema } from "./egress-rules.js";

// Every request and response shape of the public API. The OpenAPI document is generated from
// these same schemas, so the docs cannot drift from what is validated. JSON is snake_case.

const ERROR_CODES = Object.keys(httpStatusOf) as [ServerErrorCode, ...ServerErrorCode[]];

export const ErrorSchema = z
  .object({
    code: z.enum(ERROR_CODES).openapi({ example: "not_found" }),
    message: z.string().openapi({ example: 'sandbox "abc" not found' }),
  })
  .openapi("Error");

export const Timestamp = z
  .string()
  .openapi({ format: "date-time", example: "2026-01-01T00:00:00.000Z" });
const Id = z.string().openapi({ example: "k3x9q2m7v1b8n4c6z0ta" });

export const IdParams = z.object({
  id: z
    .string()
    .max(256)
    .openapi({ param: { name: "id", in: "path" }, example: "k3x9q2m7v1b8n4c6z0ta" }),
});

export const CredentialsSchema = z
  .object({
    email: z.email().max(254).openapi({ example: "ada@example.com" }),
    password: z.string().min(8).max(1024).openapi({ example: "correct horse battery" }),
  })
  .openapi("Credentials");

export const SignupSchema = CredentialsSchema.extend({
  invite: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .openapi({ description: "An invitation token from a team owner: the user joins that team" }),
}).openapi("Signup");

export const InviteResponseSchema = z
  .object({ id: Id, token: z.string(), expires_at: Timestamp })
  .openapi("Invite");

export const PendingInviteSchema = z
  .object({
    id: Id,
    created_at: Timestamp,
    expires_at: Timestamp,
    created_by: Id.nullable().openapi({ description: "The inviting user; null once deleted" }),
  })
  .openapi("PendingInvite");

export const PendingInviteListSchema = z
  .object({ invites: z.array(PendingInviteSchema) })
  .openapi("PendingInviteList");

export const TeamMemberSchema = z
  .object({
    user_id: z.string(),
    email: z.string(),
    role: z.enum(["owner", "member"]),
    joined_at: Timestamp,
  })
  .openapi("TeamMember");

export const TeamMemberListSchema = z
  .object({ members: z.array(TeamMemberSchema) })
  .openapi("TeamMemberList");

export const PasswordChangeSchema = z
  .object({
    current_password: z.string().min(1).max(1024),
    new_password: z.string().min(8).max(1024),
  })
  .openapi("PasswordChange");

export const SignupResponseSchema = z
  .object({ id: Id, email: z.string(), team_id: Id, created_at: Timestamp })
  .openapi("User");

export const LoginResponseSchema = z
  .object({
    token: z.string().openapi({ description: "Send as `Authorization: Bearer <token>`" }),
    expires_at: Timestamp,
    user_id: Id,
    team_id: Id,
  })
  .openapi("Login");

/** Free text that will be stored and shown: no control characters (PostgreSQL refuses NUL). */
const Name = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

export const ApiKeyCreateSchema = z
  .object({
    name: Name.optional().openapi({ example: "ci", description: "Default: the format's name" }),
    format: z.enum(["wrenn", "e2b"]).optional().openapi({
      description:
        "`e2b`: a key shaped `e2b_<hex>`, as E2B's SDK expects; default `wrenn` (`wrn_…`)",
    }),
  })
  .openapi("ApiKeyCreate");

export const ApiKeySchema = z
  .object({
    id: Id,
    name: z.string(),
    prefix: z
      .string()
      .openapi({ description: "First characters of the key", example: "wrn_Ab3dE9fG" }),
    created_at: Timestamp,
    last_used_at: Timestamp.nullable(),
  })
  .openapi("ApiKey");

export const ApiKeyCreatedSchema = ApiKeySchema.extend({
  key: z.string().openapi({ description: "The key itself; shown only in this response" }),
}).openapi("ApiKeyCreated");

export const ApiKeyListSchema = z.object({ api_keys: z.array(ApiKeySchema) }).openapi("ApiKeyList");

export const HealthSchema = z
  .object({ status: z.enum(["ok", "preparing"]), preparing: z.array(z.string()).optional() })
  .openapi("Health");

export const NoControl = /^[^\p{Cc}]*$/u;

/** The agent's SafeName: letters, digits and ._- ; no leading dot; bounded length. */
const TemplateName = z
  .string()
  .regex(SAFE_NAME, "must be 1-64 of letters, digits, '.', '_', '-' (no leading '.')");

const Metadata = z
  .record(
    z.string().min(1).max(64).regex(NoControl, "keys must not contain control characters"),
    z.string().max(512).regex(NoControl, "values must not contain control characters"),
  )
  .refine((m) => Object.keys(m).length <= 64, "at most 64 entries")
  .openapi({ example: { owner: "ci", run: "42" } });

const Envs = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "keys must be environment variable names"),
    z
      .string()
      .max(32_768)
      .regex(/^[^\0]*$/, "values must not contain NUL"),
  )
  .refine((m) => Object.keys(m).length <= 256, "at most 256 entries")
  .openapi({ example: { LANG: "C.UTF-8" } });

const TimeoutSec = z
  .number()
  .int()
  .min(0)
  .max(30 * 24 * 3600)
  .openapi({ description: "Seconds of inactivity before the sandbox pauses; 0 = never" });

export const SandboxCreateSchema = z
  .object({
    template: TemplateName.optional(),
    snapshot: TemplateName.optional().openapi({
      description: "A team snapshot name; sets the resources",
    }),
    vcpus: z.number().int().min(1).max(64).optional(),
    memory_mb: z.number().int().min(64).max(262_144).optional(),
    disk_size_mb: z.number().int().min(16).max(1_048_576).optional(),
    timeout_sec: TimeoutSec.optional(),
    metadata: Metadata.optional(),
    envs: Envs.optional().openapi({
      description: "Passed to the sandbox; never stored by the server",
    }),
    allow_internet_access: z.boolean().optional(),
    allow_out: EgressList.optional(),
    deny_out: EgressList.optional(),
    allow_public_traffic: z.boolean().optional().openapi({
      description:
        "Default true: its ports answer anyone at <port>-<id>.<domain>. False: only requests with the e2b-traffic-access-token header (traffic_access_token)",
    }),
    auto_resume: z.boolean().optional().openapi({
      description:
        "Default false. True: a request to one of its ports while it is paused resumes it (else 409)",
    }),
    host_id: z.string().min(1).max(64).optional().openapi({
      description: "Run it on this host (the team's own or a shared one)",
    }),
    runtime: z.enum(["namespace", "microvm"]).optional().openapi({
      description: "Default: the host's default runtime",
    }),
  })
  .refine((b) => b.template === undefined || b.snapshot === undefined, {
    message: "give template or snapshot, not both",
    path: ["snapshot"],
  })
  .openapi("SandboxCreate");

export const SANDBOX_STATE_VALUES = [
  "pending",
  "running",
  "paused",
  "stopped",
  "missing",
  "error",
] as const;

export const SandboxSchema = z
  .object({
    id: Id,
    template: z.string(),
    state: z.enum(SANDBOX_STATE_VALUES),
    host_id: z.string().nullable(),
    runtime: z.string(),
    vcpus: z.number().int(),
    memory_mb: z.number().int(),
    disk_size_mb: z.number().int(),
    timeout_sec: z.number().int(),
    metadata: z.record(z.string(), z.string()),
    network: SandboxNetworkSchema,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_active_at: Timestamp,
    stopped_at: Timestamp.nullable(),
    allow_public_traffic: z.boolean(),
    auto_resume: z.boolean(),
  })
  .openapi("Sandbox");

export const SandboxCreatedSchema = SandboxSchema.extend({
  traffic_access_token: z.string().nullable().openapi({
    description:
      "With allow_public_traffic false: the e2b-traffic-access-token header its ports need; else null",
  }),
}).openapi("SandboxCreated");

export const SandboxListQuery = z.object({
  state: z.string().max(200).optional().openapi({
    description: "Comma-separated states; default every state but stopped",
    example: "running,paused",
  }),
  metadata: z.string().max(4096).optional().openapi({
    description: "URL-encoded key=value pairs that must all match",
    example: "owner%3Dci",
  }),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().max(512).optional(),
});

export const SandboxListSchema = z
  .object({
    sandboxes: z.array(SandboxSchema),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page" }),
  })
  .openapi("SandboxList");

export const SandboxResumeSchema = z
  .object({ timeout_sec: TimeoutSec.optional() })
  .openapi("SandboxResume");
export const SandboxTimeoutSchema = z.object({ timeout_sec: TimeoutSec }).openapi("SandboxTimeout");

export const SandboxForkSchema = z
  .object({
    count: z
      .number()
      .int()
      .min(1)
      .max(MAX_FORKS)
      .optional()
      .openapi({ description: `How many sandboxes to make (1 to ${MAX_FORKS}; default 1)` }),
  })
  .openapi("SandboxFork");

export const SandboxForkResultSchema = z
  .object({
    sandboxes: z.array(SandboxCreatedSchema),
    source_pause_ms: z
      .number()
      .int()
      .openapi({ description: "How long the source stood still while its state was copied" }),
  })
  .openapi("SandboxForkResult");

export const SnapshotCreateSchema = z
  .object({
    sandbox_id: z.string().max(256),
    name: TemplateName.openapi({ example: "python-deps" }),
  })
  .openapi("SnapshotCreate");

export const SnapshotSchema = z
  .object({
    id: Id,
    name: z.string(),
    base_template: z.string(),
    source_sandbox_id: Id.nullable(),
    vcpus: z.number().int(),
    memory_mb: z.number().int(),
    disk_size_mb: z.number().int(),
    created_at: Timestamp,
  })
  .openapi("Snapshot");

export const SnapshotListSchema = z
  .object({ snapshots: z.array(SnapshotSchema) })
  .openapi("SnapshotList");

export const SnapshotParams = z.object({
  id: z
    .string()
    .max(256)
    .openapi({ param: { name: "id", in: "path" }, description: "Snapshot id or name" }),
});

export const WhoAmISchema = z
  .object({
    team_id: Id,
    team_name: z.string(),
    user_id: Id.optional().openapi({ description: "Set when called with a bearer token" }),
    email: z.string().optional(),
    api_key_id: Id.optional().openapi({ description: "Set when called with an API key" }),
    api_key_name: z.string().optional(),
  })
  .openapi("WhoAmI");
