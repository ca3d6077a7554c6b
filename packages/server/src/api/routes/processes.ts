import { createRoute, z } from "@hono/zod-openapi";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import { IdParams } from "../schemas.js";

const security = [{ apiKeyAuth: [] }];
const tags = ["processes"];
const sandboxErrors = [
  "invalid_argument",
  "unauthenticated",
  "not_found",
  "failed_precondition",
  "unavailable",
] as const;

const ProcessSchema = z
  .object({
    pid: z.number().int(),
    tag: z.string().nullable(),
    cmd: z.string(),
    args: z.array(z.string()),
    cwd: z.string().nullable(),
    envs: z.record(z.string(), z.string()),
  })
  .openapi("Process");

const ProcessListSchema = z.object({ processes: z.array(ProcessSchema) }).openapi("ProcessList");

const PidParams = IdParams.extend({
  pid: z.coerce
    .number()
    .int()
    .min(1)
    .max(4_294_967_295)
    .openapi({ param: { name: "pid", in: "path" }, example: 42 }),
});

const SignalSchema = z
  .object({
    signal: z.enum(["SIGTERM", "SIGKILL"]).openapi({ description: "envd supports these two" }),
  })
  .openapi("ProcessSignal");

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const StdinSchema = z
  .object({
    data: z.string().openapi({ example: "hello\n" }),
    encoding: z.enum(["utf8", "base64"]).optional().openapi({ description: "Default utf8" }),
  })
  .refine((b) => b.encoding !== "base64" || BASE64.test(b.data), {
    message: "must be base64",
    path: ["data"],
  })
  .openapi("ProcessStdin");

const StreamQuery = z.object({
  ticket: z
    .string()
    .optional()
    .openapi({
      param: { name: "ticket", in: "query" },
      description:
        "A single-use ticket from POST /v1/sandboxes/{id}/ticket, for clients that cannot set headers (browsers)",
    }),
});

/** Running processes of a sandbox (REST), and the description of the exec stream WebSocket. */
export function registerProcessRoutes(app: App, services: Services): void {
  const middleware = requireApiKey(services);
  const { processes } = services;

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/processes",
      tags,
      summary: "List the processes envd started that are still running",
      security,
      middleware,
      request: { params: IdParams },
      responses: {
        200: {
          description: "The processes",
          content: { "application/json": { schema: ProcessListSchema } },
        },
        ...errorResponses(...sandboxErrors),
      },
    }),
    async (c) => {
      const list = await processes.list(c.get("team").teamId, c.req.valid("param").id);
      return c.json({ processes: list }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/processes/{pid}/signal",
      tags,
      summary: "Send SIGTERM or SIGKILL to a running process",
      security,
      middleware,
      request: {
        params: PidParams,
        body: { content: { "application/json": { schema: SignalSchema } }, required: true },
      },
      responses: { 204: { description: "Sent" }, ...errorResponses(...sandboxErrors) },
    }),
    async (c) => {
      const { id, pid } = c.req.valid("param");
      await processes.signal(c.get("team").teamId, id, { pid }, c.req.valid("json").signal);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/processes/{pid}/stdin",
      tags,
      summary: "Write to a process's stdin (started with stdin: true) or to its PTY",
      security,
      middleware,
      request: {
        params: PidParams,
        body: { content: { "application/json": { schema: StdinSchema } }, required: true },
      },
      responses: { 204: { description: "Written" }, ...errorResponses(...sandboxErrors) },
    }),
    async (c) => {
      const { id, pid } = c.req.valid("param");
      const { data, encoding } = c.req.valid("json");
      const bytes = Buffer.from(data, encoding === "base64" ? "base64" : "utf8");
      await processes.write(c.get("team").teamId, id, { pid }, bytes);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/processes/{pid}/close-stdin",
      tags,
      summary: "Close a process's stdin (EOF)",
      security,
      middleware,
      request: { params: PidParams },
      responses: { 204: { description: "Closed" }, ...errorResponses(...sandboxErrors) },
    }),
    async (c) => {
      const { id, pid } = c.req.valid("param");
      await processes.closeStdin(c.get("team").teamId, id, { pid });
      return c.body(null, 204);
    },
  );

  // The WebSocket itself is served by the HTTP server's upgrade handler (api/ws); this route
  // documents it and answers plain GETs that forgot to upgrade.
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/exec/stream",
      tags: ["exec"],
      summary: "Exec stream: upgrade to WebSocket (Upgrade: websocket)",
      description: [
        "First client frame (JSON text): `start` {cmd, args?, cwd?, envs?, user?, tag?, pty?: {cols, rows}, stdin?, timeout_ms?}",
        "or `connect` {pid | tag}. The server answers `start` {pid, tag}, then binary frames (first byte:",
        "1 stdout, 2 stderr, 3 pty), then `end` {exit_code, exited, status, error} and close 1000; failures",
        "are `error` {code, message} and close 4000 + HTTP status. Client frames after start: binary = stdin",
        "(or PTY input), `close_stdin`, `resize` {cols, rows}, `signal` {signal}. Closing the socket detaches:",
        "the process keeps running. Frames over 1 MiB close with 4413. See the server README.",
      ].join(" "),
      security,
      middleware: requireApiKey(services, { query: true }),
      request: { params: IdParams, query: StreamQuery },
      responses: {
        101: { description: "Switching to the WebSocket protocol" },
        ...errorResponses(...sandboxErrors),
      },
    }),
    () => {
      throw new ServerError(
        "invalid_argument",
        "this is a WebSocket: send the request with Connection: Upgrade and Upgrade: websocket",
      );
    },
  );
}
