import { z } from "@hono/zod-openapi";
import type { ServerError } from "../../errors.js";
import type { OutputStream, ProcessEnd, StartProcessInput } from "../../service/index.js";
import { describeIssues } from "../error-handling.js";
import { ExecSchema } from "../sandbox-io-schemas.js";

// The exec stream's frames (packages/server/README.md, "Streaming"). Text frames are JSON
// objects with a `type`; binary frames carry process bytes behind a one-byte stream number.

/** Client frames past this are refused (close 4413); the WebSocket layer cuts at MAX_WS_PAYLOAD. */
export const MAX_FRAME_BYTES = 1024 * 1024;
export const MAX_WS_PAYLOAD = 4 * MAX_FRAME_BYTES;

const PtySize = z.object({
  cols: z.number().int().min(1).max(10_000),
  rows: z.number().int().min(1).max(10_000),
});
const Tag = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

const StartFrame = ExecSchema.omit({ timeout_ms: true }).extend({
  type: z.literal("start"),
  tag: Tag.optional(),
  pty: PtySize.optional(),
  stdin: z.boolean().optional(),
  /** 0 = no limit; setTimeout's own limit bounds the rest. */
  timeout_ms: z.number().int().min(0).max(2_147_483_647).optional(),
});

const ConnectFrame = z
  .object({
    type: z.literal("connect"),
    pid: z.number().int().min(1).max(4_294_967_295).optional(),
    tag: Tag.optional(),
  })
  .refine((f) => (f.pid === undefined) !== (f.tag === undefined), {
    message: "give pid or tag (exactly one)",
    path: ["pid"],
  });

const ControlFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("close_stdin") }),
  PtySize.extend({ type: z.literal("resize") }),
  z.object({ type: z.literal("signal"), signal: z.enum(["SIGTERM", "SIGKILL"]) }),
]);

export type OpenFrame = z.infer<typeof StartFrame> | z.infer<typeof ConnectFrame>;
export type ControlFrame = z.infer<typeof ControlFrame>;

type Parsed<T> = { ok: true; frame: T } | { ok: false; message: string };

/** A text frame as a JSON object and its `type`. */
function jsonFrame(text: string): Parsed<{ type: unknown }> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // not JSON: refused below like any other non-object
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, message: "a text frame must be a JSON object" };
  return { ok: true, frame: value as { type: unknown } };
}

function validate<T>(schema: z.ZodType<T>, value: unknown): Parsed<T> {
  const result = schema.safeParse(value);
  return result.success
    ? { ok: true, frame: result.data }
    : { ok: false, message: describeIssues("frame", result.error) };
}

const unknownType = (type: unknown, expected: string) => ({
  ok: false as const,
  message: `unknown frame type ${JSON.stringify(type ?? null)}; expected ${expected}`,
});

/** The first frame: `start` or `connect`. */
export function parseOpenFrame(text: string): Parsed<OpenFrame> {
  const json = jsonFrame(text);
  if (!json.ok) return json;
  const { type } = json.frame;
  if (type === "start") return validate(StartFrame, json.frame);
  if (type === "connect") return validate(ConnectFrame, json.frame);
  return unknownType(type, "start or connect first");
}

/** A text frame after the start. */
export function parseControlFrame(text: string): Parsed<ControlFrame> {
  const json = jsonFrame(text);
  if (!json.ok) return json;
  const { type } = json.frame;
  if (type === "start" || type === "connect")
    return { ok: false, message: "this stream already has a process; open another socket" };
  if (type === "close_stdin" || type === "resize" || type === "signal")
    return validate(ControlFrame, json.frame);
  return unknownType(type, "close_stdin, resize or signal");
}

export function startInput(f: z.infer<typeof StartFrame>): StartProcessInput {
  return {
    cmd: f.cmd,
    ...(f.args !== undefined ? { args: f.args } : {}),
    ...(f.cwd !== undefined ? { cwd: f.cwd } : {}),
    ...(f.envs !== undefined ? { envs: f.envs } : {}),
    ...(f.user !== undefined ? { user: f.user } : {}),
    ...(f.tag !== undefined ? { tag: f.tag } : {}),
    ...(f.pty !== undefined ? { pty: f.pty } : {}),
    ...(f.stdin !== undefined ? { stdin: f.stdin } : {}),
    ...(f.timeout_ms !== undefined ? { timeoutMs: f.timeout_ms } : {}),
  };
}

const streamByte: Record<OutputStream, number> = { stdout: 1, stderr: 2, pty: 3 };

export function outputFrame(stream: OutputStream, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(data.byteLength + 1);
  frame[0] = streamByte[stream];
  frame.set(data, 1);
  return frame;
}

export const startFrame = (pid: number, tag: string | null) =>
  JSON.stringify({ type: "start", pid, tag });

export const endFrame = (end: ProcessEnd) =>
  JSON.stringify({
    type: "end",
    exit_code: end.exitCode,
    exited: end.exited,
    status: end.status,
    error: end.error,
  });

export const errorFrame = (err: ServerError) =>
  JSON.stringify({ type: "error", code: err.code, message: err.message });

/** The close code that goes with an error frame: 4000 + the HTTP status of its code. */
export const closeCodeOf = (err: ServerError) => 4000 + err.status;
