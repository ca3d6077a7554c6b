import { timingSafeEqual } from "node:crypto";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Process } from "@wrenn/proto/process";
import { EnvdError } from "../errors.js";
import { type HttpContext, handleHttp, type Response, sendError } from "../http/index.js";
import { createProcessService } from "../process/index.js";
import { launchStartCommand } from "../start/index.js";
import type { RequestHandler } from "./listen.js";

export interface EnvdOptions {
  /**
   * When set, every request must carry it in `X-Access-Token` ("secure" sandboxes). POST /init
   * may replace it (or set one where there was none).
   */
  accessToken?: string;
  /** The template's config dir (`/etc/wrenn` in a sandbox): its start command and process defaults. */
  configDir?: string;
  /**
   * envd's spawn helper (wrenn-spawn, built beside the bundle): processes with pipes start from
   * it without a fork of envd. Without it, or when it is missing, Node's spawn starts them.
   */
  spawnHelper?: string;
}

export interface Envd {
  handler: RequestHandler;
  /** Ends every process envd started and stops its watchers. */
  close(): Promise<void>;
}

function tokenMatches(expected: Buffer, given: string | string[] | undefined): boolean {
  if (typeof given !== "string") return false;
  const b = Buffer.from(given);
  return expected.length === b.length && timingSafeEqual(expected, b);
}

/** GET /health answers without the token: it says nothing but "up". */
function isHealthCheck(req: { method?: string | undefined; url?: string | undefined }): boolean {
  return (
    req.method === "GET" && (req.url === "/health" || req.url?.startsWith("/health?") === true)
  );
}

/** Where Connect routes the Filesystem service's calls. */
const FILESYSTEM_PREFIX = "/filesystem.Filesystem/";

/** envd: the Connect services and the HTTP routes, as one Node request handler. */
export function createEnvd(options: EnvdOptions = {}): Envd {
  // Kept as a buffer: compared in constant time, never logged.
  let accessToken = options.accessToken ? Buffer.from(options.accessToken) : undefined;
  const processes = createProcessService(options.spawnHelper);
  const startState = options.configDir
    ? launchStartCommand(options.configDir, processes.manager)
    : () => ({ phase: "none" as const });
  const ctx: HttpContext = {
    setAccessToken(token) {
      accessToken = Buffer.from(token);
    },
    startState,
  };
  const adapter = (routes: (router: ConnectRouter) => void) =>
    connectNodeAdapter({
      routes,
      // connect-node's response type is a narrower view of the same Node objects.
      fallback: (req, res) => void handleHttp(req, res as unknown as Response, ctx),
      // Output and files cross loopback or a veth: compressing them costs more CPU than it saves.
      acceptCompression: [],
    });
  const connect = adapter((router) => router.service(Process, processes.service));
  // The Filesystem service (its descriptors, its handlers) is loaded on its first call: about
  // 4.5 ms of envd's start-up CPU (of 54) that a sandbox's first command does not wait for.
  let filesystem: Promise<{ handle: RequestHandler; close(): Promise<void> }> | undefined;
  const loadFilesystem = () => {
    filesystem ??= Promise.all([
      import("@wrenn/proto/filesystem"),
      import("../filesystem/service.js"),
    ]).then(([{ Filesystem }, { createFilesystemService }]) => {
      const service = createFilesystemService();
      return {
        handle: adapter((router) => router.service(Filesystem, service.service)),
        close: () => service.close(),
      };
    });
    return filesystem;
  };
  let answered = false;
  const handler: RequestHandler = (req, res) => {
    if (!answered) {
      answered = true;
      // The first answer is usually the agent's ready check: the spawn helper starts after it is
      // sent, while the sandbox's first command is still on its way.
      res.once("finish", () => setImmediate(() => processes.manager.startHelper()));
    }
    if (
      accessToken &&
      !isHealthCheck(req) &&
      !tokenMatches(accessToken, req.headers["x-access-token"])
    ) {
      sendError(res, new EnvdError("unauthenticated", "missing or wrong X-Access-Token"));
      return;
    }
    if (req.url?.startsWith(FILESYSTEM_PREFIX)) {
      loadFilesystem().then(
        (fs) => fs.handle(req, res),
        (err: unknown) => sendError(res, err),
      );
      return;
    }
    connect(req, res);
  };
  return {
    handler,
    async close() {
      await Promise.allSettled([processes.close(), filesystem?.then((fs) => fs.close())]);
    },
  };
}
