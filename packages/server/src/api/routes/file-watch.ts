import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import { FilePathQuery } from "../sandbox-io-schemas.js";
import { IdParams } from "../schemas.js";

/** Comment lines keep proxies and clients from timing out an idle stream. */
const PING_MS = 15_000;

const WatchQuery = FilePathQuery.pick({ path: true }).extend({
  recursive: z
    .enum(["true", "false", "1", "0"])
    .optional()
    .openapi({ param: { name: "recursive", in: "query" }, description: "Default false" }),
  ticket: z
    .string()
    .optional()
    .openapi({
      param: { name: "ticket", in: "query" },
      description:
        "A single-use ticket from POST /v1/sandboxes/{id}/ticket, for clients that cannot set headers (browsers)",
    }),
});

/** `GET /v1/sandboxes/{id}/files/watch`: a directory's changes as Server-Sent Events. */
export function registerFileWatchRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/watch",
      tags: ["files"],
      summary: "Watch a directory (Server-Sent Events)",
      description:
        "First `event: ready` (`data: {}`) once the watch is in place, then one `event: fs` per change with " +
        '`data: {"type":"create"|"write"|"remove"|"rename"|"chmod","name":"relative/path"}`; `: ping` comments ' +
        "every 15 s. A failure after the start is an `event: error` with `{code, message}`, and the end of " +
        "the stream. Disconnecting stops the watch in the sandbox.",
      security: [{ apiKeyAuth: [] }],
      middleware: requireApiKey(services, { query: true }),
      request: { params: IdParams, query: WatchQuery },
      responses: {
        200: {
          description: "The event stream",
          content: { "text/event-stream": { schema: z.string() } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "failed_precondition",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const { path, recursive } = c.req.valid("query");
      const { teamId } = c.get("team");
      const release = await services.quotas.acquire(teamId, "file_watches");
      const watch = await services.watch
        .watch(teamId, c.req.valid("param").id, {
          path,
          recursive: recursive === "true" || recursive === "1",
        })
        .catch((err: unknown) => {
          release();
          throw err;
        });
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => watch.close());
        const ping = setInterval(() => void stream.write(": ping\n\n"), PING_MS);
        try {
          await stream.writeSSE({ event: "ready", data: "{}" });
          for await (const event of watch) {
            if (stream.aborted) break;
            await stream.writeSSE({ event: "fs", data: JSON.stringify(event) });
          }
        } catch (err) {
          const failure = ServerError.from(err);
          await stream.writeSSE({ event: "error", data: JSON.stringify(failure.toJSON()) });
        } finally {
          clearInterval(ping);
          watch.close();
          release();
        }
      });
    },
  );
}
