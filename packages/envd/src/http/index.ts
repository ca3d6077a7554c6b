import { EnvdError } from "../errors.js";
import type { StartState } from "../start/index.js";
import { handleFiles } from "./files.js";
import { handleInit } from "./init.js";
import { handleMetrics } from "./metrics.js";
import { type Request, type Response, requestUrl, sendError, sendJson } from "./respond.js";

export type { Request, Response } from "./respond.js";
export { readJsonBody, requestUrl, sendError, sendJson } from "./respond.js";

/** What the routes may change in the server that runs them. */
export interface HttpContext {
  /** Replaces the access token every later request must carry. */
  setAccessToken(token: string): void;
  /** Where the template's start command is: /health answers ready only once it is. */
  startState(): StartState;
}

type Route = (req: Request, res: Response, ctx: HttpContext) => Promise<void> | void;

const routes: Record<string, Partial<Record<string, Route>>> = {
  "/health": {
    GET: (_req, res, ctx) => {
      const start = ctx.startState();
      if (start.phase === "starting") {
        sendJson(res, 503, {
          code: "starting",
          message: "the start command is not ready yet",
          readyTimeoutMs: start.readyTimeoutMs,
        });
      } else if (start.phase === "failed") {
        const { phase: _, ...failure } = start;
        sendJson(res, 500, { code: "start_failed", ...failure });
      } else {
        res.writeHead(204);
        res.end();
      }
    },
  },
  "/init": { POST: handleInit },
  "/files": { GET: handleFiles, POST: handleFiles },
  "/metrics": { GET: handleMetrics },
};

/** envd's plain-HTTP routes, beside the Connect services on the same port. */
export async function handleHttp(req: Request, res: Response, ctx: HttpContext): Promise<void> {
  try {
    const methods = routes[requestUrl(req).pathname];
    if (!methods) throw new EnvdError("not_found", `no route ${req.method} ${req.url}`);
    const route = methods[req.method ?? ""];
    if (!route) {
      res.setHeader("allow", Object.keys(methods).join(", "));
      throw new EnvdError("method_not_allowed", `method ${req.method} not allowed on ${req.url}`);
    }
    await route(req, res, ctx);
  } catch (err) {
    sendError(res, err);
  }
}
