import { z } from "@hono/zod-openapi";
import { NoControl, Timestamp } from "./schemas.js";

// Requests and answers of a sandbox's commands and files (exec, /files, mkdir, move).

const SandboxPath = z
  .string()
  .min(1)
  .max(4096)
  .regex(NoControl, "must not contain control characters");
const EnvdUser = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/i, "must be a user name")
  .openapi({ example: "user" });

export const ExecSchema = z
  .object({
    cmd: z
      .string()
      .min(1)
      .max(64 * 1024)
      .regex(/^[^\0]*$/, "must not contain NUL")
      .openapi({
        description:
          "Without `args`: a shell command run as `/bin/sh -c cmd`. With `args`: the program.",
        example: "echo hello",
      }),
    args: z
      .array(
        z
          .string()
          .max(64 * 1024)
          .regex(/^[^\0]*$/, "must not contain NUL"),
      )
      .max(4096)
      .optional(),
    cwd: SandboxPath.optional(),
    envs: z
      .record(
        z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
          .max(256),
        z
          .string()
          .max(64 * 1024)
          .regex(/^[^\0]*$/, "must not contain NUL"),
      )
      .optional(),
    user: EnvdUser.optional().openapi({ description: "Who runs it; default the sandbox's user" }),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional().openapi({
      description:
        "Default 60000; past it the process is killed and the call answers 504 `timeout`",
    }),
  })
  .openapi("ExecRequest");

export const ExecResultSchema = z
  .object({
    stdout: z.string(),
    stderr: z.string(),
    exit_code: z.number().int(),
    duration_ms: z.number().int(),
    truncated: z.boolean().openapi({ description: "Output past 16 MiB per stream was dropped" }),
  })
  .openapi("ExecResult");

export const FilePathQuery = z.object({
  path: SandboxPath.openapi({ param: { name: "path", in: "query" }, example: "/tmp/data.bin" }),
  user: EnvdUser.optional().openapi({ param: { name: "user", in: "query" } }),
});

export const FileListQuery = z.object({
  path: SandboxPath.openapi({ param: { name: "path", in: "query" }, example: "/tmp" }),
  depth: z.coerce
    .number()
    .int()
    .min(1)
    .max(16)
    .optional()
    .openapi({ param: { name: "depth", in: "query" }, example: 1 }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      description: "Entries per page (default and most: 1000)",
      example: 100,
    }),
  cursor: z
    .string()
    .max(8192)
    .optional()
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "`next_cursor` of the previous page",
    }),
});

export const FileEntrySchema = z
  .object({
    name: z.string(),
    type: z.enum(["file", "dir", "symlink", "unknown"]),
    path: z.string(),
    size: z.number(),
    mode: z.number().int(),
    permissions: z.string(),
    owner: z.string(),
    group: z.string(),
    modified_time: Timestamp.nullable(),
    symlink_target: z.string().nullable(),
  })
  .openapi("FileEntry");

export const FileListSchema = z
  .object({
    entries: z.array(FileEntrySchema),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page; null on the last page" }),
  })
  .openapi("FileList");

export const UploadResultSchema = z
  .object({
    files: z.array(z.object({ name: z.string(), type: z.string(), path: z.string() })),
  })
  .openapi("UploadResult");

export const MkdirSchema = z.object({ path: SandboxPath }).openapi("Mkdir");
export const MoveSchema = z
  .object({ source: SandboxPath, destination: SandboxPath })
  .openapi("Move");
