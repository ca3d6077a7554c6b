import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { ERROR_CODE_HEADER } from "@wrenn/agent";
import { type EntryInfo, Filesystem, FileType } from "@wrenn/proto/filesystem";
import { httpStatusOf, ServerError, type ServerErrorCode } from "../errors.js";
import { agentRequest, responseOf } from "../hosts/agent-http.js";
import { envdTransport } from "../hosts/envd-transport.js";
import { serverErrorIn } from "../hosts/give-up.js";
import { fromAgentError } from "./agent-errors.js";
import type { AgentHost } from "./sandbox-types.js";
import type { SandboxService } from "./sandboxes.js";

export interface FileEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "unknown";
  path: string;
  size: number;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  modifiedTime: string | null;
  symlinkTarget: string | null;
}

export interface UploadedFile {
  name: string;
  type: string;
  path: string;
}

/**
 * A streamed download: envd's bytes, untouched, with the headers that describe them. The body is
 * the agent's Node response itself, so it can be piped to the client without a web stream.
 */
export interface Download {
  body: IncomingMessage;
  headers: Record<string, string>;
}

const fileTypes: Record<FileType, FileEntry["type"]> = {
  [FileType.UNSPECIFIED]: "unknown",
  [FileType.FILE]: "file",
  [FileType.DIRECTORY]: "dir",
  [FileType.SYMLINK]: "symlink",
};

function entryOf(e: EntryInfo | undefined): FileEntry {
  if (!e) throw new ServerError("internal", "envd returned no entry");
  return {
    name: e.name,
    type: fileTypes[e.type] ?? "unknown",
    path: e.path,
    size: Number(e.size),
    mode: e.mode,
    permissions: e.permissions,
    owner: e.owner,
    group: e.group,
    modifiedTime: e.modifiedTime ? timestampDate(e.modifiedTime).toISOString() : null,
    symlinkTarget: e.symlinkTarget ?? null,
  };
}

const knownCodes = new Set(Object.keys(httpStatusOf));
/** envd's codes that mean something else on this API. */
const envdCodes: Partial<Record<string, ServerErrorCode>> = {
  unauthenticated: "invalid_argument",
  // A full disk, as envd named it before it had insufficient_storage (one in a paused sandbox).
  resource_exhausted: "insufficient_storage",
};
const codeOfStatus: Record<number, ServerErrorCode> = {
  400: "invalid_argument",
  401: "invalid_argument",
  403: "permission_denied",
  404: "not_found",
  409: "already_exists",
  412: "failed_precondition",
  413: "payload_too_large",
  // envd's disk full (ENOSPC, EDQUOT): no rate limit, and no retry empties it.
  507: "insufficient_storage",
};

/** The most of an error body from envd or the agent that is read; the rest is dropped. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** The most of an upload's answer (the list of files written) that is read. */
export const MAX_UPLOAD_ANSWER_BYTES = 1024 * 1024;

/** Reads at most `max` bytes of a body; undefined (and the rest discarded) if it is longer. */
export async function readCapped(
  body: AsyncIterable<Uint8Array> | null,
  max: number,
): Promise<Buffer | undefined> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > max) return undefined;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** envd's (or the agent proxy's) `{code, message}` answer (`raw`, read capped) as a ServerError. */
function errorOf(res: { status: number; raw: Buffer | undefined }, context: string): ServerError {
  const { raw } = res;
  let body: { code?: unknown; message?: unknown } = {};
  try {
    body = raw ? JSON.parse(raw.toString("utf8")) : {};
  } catch {}
  const message = typeof body.message === "string" ? body.message : `HTTP ${res.status}`;
  const status = codeOfStatus[res.status];
  let code: ServerErrorCode = status ?? (res.status >= 500 ? "unavailable" : "invalid_argument");
  // envd's failed_precondition is 412, ours 409; its unauthenticated is a bad user name here.
  if (status && typeof body.code === "string" && knownCodes.has(body.code)) {
    code = envdCodes[body.code] ?? (body.code as ServerErrorCode);
  }
  // A 5xx is the host's own trouble (the proxy, envd's state): its words are for the log.
  if (res.status >= 500 && !status) {
    return new ServerError(code, `${context}: the sandbox did not answer; retry`, {
      logDetail: `${context}: ${message}`,
    });
  }
  return new ServerError(code, `${context}: ${message}`);
}

/** A transfer that could not reach the sandbox: the network detail is for the log only. */
function hostTrouble(context: string, err: unknown): ServerError {
  const own = serverErrorIn(err);
  if (own) return own;
  return new ServerError("unavailable", `${context}: the sandbox could not be reached; retry`, {
    cause: err,
    logDetail: `${context}: ${(err as Error).message}`,
  });
}

/**
 * Files of a team's running sandbox. Transfers are piped to and from envd's `/files` through the
 * agent's proxy, chunk by chunk, so memory stays flat whatever the size; the rest are envd's
 * Filesystem RPCs.
 */
export class FileService {
  constructor(private readonly sandboxes: SandboxService) {}

  private filesUrl(host: AgentHost, id: string, path?: string, user?: string): string {
    const query = new URLSearchParams(path ? { path } : {});
    if (user) query.set("username", user);
    return `${host.url}/sandboxes/${id}/envd/files?${query}`;
  }

  /**
   * Streams `body` into the sandbox. `contentType` is the client's: application/octet-stream
   * writes `path`; multipart/form-data writes each `file` part (into `path` if a directory;
   * without `path`, where the part's file name says).
   */
  async upload(
    teamId: string,
    id: string,
    input: {
      path?: string;
      user?: string;
      /** A Node stream: piped with backpressure (web streams on Node 20 read ahead unbounded). */
      body: Readable;
      contentType: string;
      contentLength?: string;
    },
  ): Promise<UploadedFile[]> {
    const host = await this.sandboxes.reachable(teamId, id);
    // A connection of its own: one that carried a body envd refused part-way is not handed to the
    // next request while the agent may still be reading that body's rest.
    const headers: Record<string, string> = {
      "content-type": input.contentType,
      connection: "close",
    };
    if (input.contentLength) headers["content-length"] = input.contentLength;
    else headers["transfer-encoding"] = "chunked";
    const body = input.body;
    const req = agentRequest(host, this.filesUrl(host, id, input.path, input.user), {
      method: "POST",
      headers,
    });
    body.on("error", (err) => req.destroy(err));
    // A client gone mid-upload cancels it upstream (envd removes the partial file).
    body.once("close", () => {
      if (!body.readableEnded) req.destroy(new Error("client went away mid-upload"));
    });
    body.pipe(req);
    const res = await responseOf(req).catch((err: unknown) => {
      throw hostTrouble("upload", err);
    });
    const status = res.statusCode ?? 502;
    const cap = status < 300 ? MAX_UPLOAD_ANSWER_BYTES : MAX_ERROR_BODY_BYTES;
    const read = await readCapped(res, cap);
    if (read === undefined) {
      res.destroy();
      throw new ServerError("internal", "upload: the sandbox's answer was too large", {
        logDetail: `upload: answer of status ${status} longer than ${cap} bytes`,
      });
    }
    if (status < 200 || status >= 300) {
      // envd may answer before it has the whole body: sending it the rest is pointless, and the
      // client's rest is read and dropped so that it, too, can finish and read the error.
      body.unpipe();
      body.resume();
      req.destroy();
      throw errorOf({ status, raw: read }, "upload");
    }
    try {
      return JSON.parse(read.toString("utf8")) as UploadedFile[];
    } catch (err) {
      throw new ServerError("internal", "upload: the sandbox's answer was not JSON", {
        cause: err,
      });
    }
  }

  async download(
    teamId: string,
    id: string,
    input: { path: string; user?: string; signal?: AbortSignal },
  ): Promise<Download> {
    const host = await this.sandboxes.reachable(teamId, id);
    const req = agentRequest(host, this.filesUrl(host, id, input.path, input.user), {
      method: "GET",
      ...(input.signal ? { signal: input.signal } : {}),
    });
    req.end();
    const res = await responseOf(req).catch((err: unknown) => {
      throw hostTrouble("download", err);
    });
    const status = res.statusCode ?? 502;
    if (status < 200 || status >= 300) {
      const raw = await readCapped(res, MAX_ERROR_BODY_BYTES).catch(() => undefined);
      if (!raw) res.destroy();
      throw errorOf({ status, raw }, "download");
    }
    const headers: Record<string, string> = {};
    for (const name of ["content-type", "content-length", "content-disposition"]) {
      const value = res.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    return { body: res, headers };
  }

  /**
   * One page of a directory listing, `depth` levels deep, in path order. envd (E2B's protocol)
   * answers the whole tree at once; clients get it `limit` entries at a time, the cursor naming
   * the last path they got.
   */
  async list(
    teamId: string,
    id: string,
    path: string,
    depth: number,
    page: { limit?: number; cursor?: string } = {},
  ): Promise<{ entries: FileEntry[]; nextCursor: string | undefined }> {
    const limit = page.limit ?? LIST_PAGE_SIZE;
    const after = page.cursor === undefined ? undefined : pathOfCursor(page.cursor);
    const fs = await this.client(teamId, id);
    const res = await fs.listDir({ path, depth }).catch(rethrow("list"));
    const sorted = res.entries
      .filter((e) => after === undefined || e.path > after)
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const entries = sorted.slice(0, limit).map(entryOf);
    const last = entries.at(-1);
    return {
      entries,
      nextCursor:
        sorted.length > limit && last ? Buffer.from(last.path).toString("base64url") : undefined,
    };
  }

  async stat(teamId: string, id: string, path: string): Promise<FileEntry> {
    const fs = await this.client(teamId, id);
    return entryOf((await fs.stat({ path }).catch(rethrow("stat"))).entry);
  }

  async mkdir(teamId: string, id: string, path: string): Promise<FileEntry> {
    const fs = await this.client(teamId, id);
    return entryOf((await fs.makeDir({ path }).catch(rethrow("mkdir"))).entry);
  }

  async move(teamId: string, id: string, source: string, destination: string): Promise<FileEntry> {
    const fs = await this.client(teamId, id);
    return entryOf((await fs.move({ source, destination }).catch(rethrow("move"))).entry);
  }

  async remove(teamId: string, id: string, path: string): Promise<void> {
    const fs = await this.client(teamId, id);
    await fs.remove({ path }).catch(rethrow("remove"));
  }

  private async client(teamId: string, id: string) {
    const host = await this.sandboxes.reachable(teamId, id);
    return createClient(Filesystem, envdTransport(host, id));
  }
}

/** Entries per listing page unless the client asks for fewer (the most it serves). */
export const LIST_PAGE_SIZE = 1000;

function pathOfCursor(cursor: string): string {
  const path = Buffer.from(cursor, "base64url").toString("utf8");
  if (!path.startsWith("/") || Buffer.from(path).toString("base64url") !== cursor) {
    throw new ServerError("invalid_argument", "cursor: not a cursor of a directory listing");
  }
  return path;
}

function rethrow(context: string): (err: unknown) => never {
  return (err) => {
    // Over envd's transport a full disk is the sandbox's own (the agent's proxy never says it),
    // and envd's words name the path.
    if (
      err instanceof ConnectError &&
      err.metadata.get(ERROR_CODE_HEADER) === "insufficient_storage"
    )
      throw new ServerError("insufficient_storage", `${context}: ${err.rawMessage}`, {
        cause: err,
      });
    throw fromAgentError(err, context);
  };
}
