import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import { type ProxyRequest, type ProxyResponse, sendError } from "../proxy/index.js";
import { isForkLayer, type Runtime, type SnapshotInfo } from "../runtime/index.js";
import { isSafeName } from "../template/index.js";

/** JSON of the snapshot's metadata, on both the GET answer and the PUT request. */
export const SNAPSHOT_HEADER = "x-wrenn-snapshot";

const ARCHIVE_PATH = /^\/snapshots\/([^/?]*)\/archive(?:\?.*)?$/s;

/**
 * `GET /snapshots/<name>/archive` (a tar stream of the snapshot) and `PUT` of the same (installed
 * whole or not at all), for the server to copy a snapshot between hosts. Handles the request
 * when the path is one of these and returns true; false otherwise.
 */
export function handleSnapshotArchive(
  req: ProxyRequest,
  res: ProxyResponse,
  runtime: Runtime,
  logger: Logger,
): boolean {
  const match = ARCHIVE_PATH.exec(req.url ?? "");
  if (!match) return false;
  const name = decodeURIComponentSafe(match[1] ?? "");
  const fail = (err: unknown) => {
    const error = AgentError.from(err);
    if (error.code === "internal")
      logger.error({ snapshot: name, err }, "snapshot transfer failed");
    sendError(res, error);
  };
  // Fork layers are internal: they never leave their host.
  if (!name || !isSafeName(name) || isForkLayer(name)) {
    fail(new AgentError("invalid_argument", `invalid snapshot name ${JSON.stringify(name)}`));
    return true;
  }
  if (!runtime.exportSnapshot || !runtime.importSnapshot) {
    fail(
      new AgentError("failed_precondition", `the ${runtime.name} runtime cannot move snapshots`),
    );
    return true;
  }
  if (req.method === "GET") {
    runtime
      .exportSnapshot(name)
      .then(({ info, archive }) => send(res, info, archive, logger), fail);
  } else if (req.method === "PUT") {
    receive(req, name, runtime).then((info) => {
      const body = JSON.stringify({ name: info.name, size_bytes: info.sizeBytes });
      res.writeHead(201, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    }, fail);
  } else {
    fail(new AgentError("invalid_argument", `method ${req.method} not allowed on ${req.url}`));
  }
  return true;
}

function send(res: ProxyResponse, info: SnapshotInfo, archive: Readable, logger: Logger): void {
  res.writeHead(200, {
    "content-type": "application/x-tar",
    [SNAPSHOT_HEADER]: JSON.stringify({
      base_template: info.baseTemplate,
      vcpus: info.vcpus,
      memory_mb: info.memoryMb,
      disk_size_mb: info.diskSizeMb,
      source_sandbox_id: info.sourceSandboxId,
    }),
  });
  archive.pipe(res as NodeJS.WritableStream);
  // tar failed midway: the receiver must see a broken body, never a short archive.
  archive.once("error", (err) => {
    logger.error({ snapshot: info.name, err }, "snapshot export failed midway");
    res.destroy(err);
  });
  res.once("close", () => archive.destroy());
}

async function receive(req: ProxyRequest, name: string, runtime: Runtime): Promise<SnapshotInfo> {
  let meta: { source_sandbox_id?: unknown };
  try {
    meta = JSON.parse(String(req.headers[SNAPSHOT_HEADER] ?? "{}")) as typeof meta;
  } catch {
    throw new AgentError("invalid_argument", `${SNAPSHOT_HEADER} is not JSON`);
  }
  const sourceSandboxId = typeof meta.source_sandbox_id === "string" ? meta.source_sandbox_id : "";
  return runtime.importSnapshot!(name, req as Readable, { sourceSandboxId });
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
