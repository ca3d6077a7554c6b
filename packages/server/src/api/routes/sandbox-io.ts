import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ServerError } from "../../errors.js";
import { webStreamOf } from "../../hosts/index.js";
import type { Download, FileEntry, Services } from "../../service/index.js";
import type { App, AppEnv } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import {
  ExecResultSchema,
  ExecSchema,
  FileEntrySchema,
  FileListQuery,
  FileListSchema,
  FilePathQuery,
  MkdirSchema,
  MoveSchema,
  UploadResultSchema,
} from "../sandbox-io-schemas.js";
import { IdParams } from "../schemas.js";

const security = [{ apiKeyAuth: [] }];
const json = <T>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
/** What every call into a sandbox can fail with, besides its own. */
const sandboxErrors = [
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "failed_precondition",
  "unavailable",
] as const;

function formatEntry(e: FileEntry) {
  return {
    name: e.name,
    type: e.type,
    path: e.path,
    size: e.size,
    mode: e.mode,
    permissions: e.permissions,
    owner: e.owner,
    group: e.group,
    modified_time: e.modifiedTime,
    symlink_target: e.symlinkTarget,
  };
}

/**
 * The request body as a Node stream: the socket itself when served by @hono/node-server (so
 * backpressure reaches the client), else the web stream (in-process `app.request`).
 */
function requestStream(c: Context<AppEnv>): Readable {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as NodeReadableStream) : Readable.from([]);
}

/**
 * The agent's response piped straight into the client's: Node stream to Node stream, chunk by
 * chunk with backpressure, no web stream between them (a promise or three per chunk).
 */
function pipeDownload(download: Download, outgoing: ServerResponse): void {
  const { body } = download;
  outgoing.writeHead(200, download.headers);
  body.pipe(outgoing);
  // The agent's side broke mid-body: the client must see a broken response, not a short one.
  body.once("close", () => {
    if (!body.complete) outgoing.destroy();
  });
  // The client went away: the transfer from the sandbox stops too.
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) body.destroy();
  });
}

/** Paths whose request bodies are streamed to the sandbox (exempt from the JSON body limit). */
export const STREAMED_BODY_PATH = /^\/v1\/sandboxes\/[^/]+\/files$/;

/** Exec and files of a running sandbox, through its host agent's envd proxy. */
export function registerSandboxIoRoutes(app: App, services: Services): void {
  const middleware = requireApiKey(services);
  const { exec, files } = services;

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/exec",
      tags: ["exec"],
      summary: "Run a command to completion; a non-zero exit is a 200 with its exit_code",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: ExecSchema } }, required: true },
      },
      responses: {
        200: json(ExecResultSchema, "The command's output and exit code"),
        ...errorResponses(...sandboxErrors, "timeout"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const result = await exec.exec(c.get("team").teamId, c.req.valid("param").id, {
        cmd: body.cmd,
        ...(body.args !== undefined ? { args: body.args } : {}),
        ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
        ...(body.envs !== undefined ? { envs: body.envs } : {}),
        ...(body.user !== undefined ? { user: body.user } : {}),
        ...(body.timeout_ms !== undefined ? { timeoutMs: body.timeout_ms } : {}),
      });
      return c.json(
        {
          stdout: result.stdout,
          stderr: result.stderr,
          exit_code: result.exitCode,
          duration_ms: result.durationMs,
          truncated: result.truncated,
        },
        200,
      );
    },
  );

  /** Plain OpenAPI schemas (not zod): described in the document, never parsed (it would buffer). */
  const BINARY = { type: "string" as const, format: "binary" };
  const MULTIPART = {
    type: "object" as const,
    properties: { file: { type: "string" as const, format: "binary" } },
  };

  const upload = (method: "put" | "post", summary: string, contentType: string) =>
    createRoute({
      method,
      path: "/v1/sandboxes/{id}/files",
      tags: ["files"],
      summary,
      security,
      middleware,
      // The body is streamed straight to the sandbox, so it is described, never parsed here.
      request: {
        params: IdParams,
        query: FilePathQuery,
        body: {
          content: { [contentType]: { schema: method === "put" ? BINARY : MULTIPART } },
          required: true,
        },
      },
      responses: {
        200: json(UploadResultSchema, "What was written"),
        ...errorResponses(...sandboxErrors, "already_exists", "insufficient_storage"),
      },
    });
  const handleUpload = async (
    c: Context<AppEnv>,
    contentType: string,
    query: { path: string; user?: string | undefined },
  ) => {
    const written = await files.upload(c.get("team").teamId, c.req.param("id") ?? "", {
      path: query.path,
      ...(query.user !== undefined ? { user: query.user } : {}),
      body: requestStream(c),
      contentType,
      ...(c.req.header("content-length") ? { contentLength: c.req.header("content-length") } : {}),
    });
    return { files: written.map(({ name, type, path }) => ({ name, type, path })) };
  };

  app.openapi(
    upload("put", "Upload one file as the raw (streamed) request body", "application/octet-stream"),
    async (c) =>
      c.json(await handleUpload(c, "application/octet-stream", c.req.valid("query")), 200),
  );

  app.openapi(
    upload(
      "post",
      'Upload multipart/form-data "file" parts (streamed) to path, or into it when a directory',
      "multipart/form-data",
    ),
    async (c) => {
      const type = c.req.header("content-type") ?? "";
      if (!type.toLowerCase().startsWith("multipart/form-data")) {
        throw new ServerError("unsupported_media_type", "the body must be multipart/form-data");
      }
      return c.json(await handleUpload(c, type, c.req.valid("query")), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files",
      tags: ["files"],
      summary: "Download a file (streamed)",
      security,
      middleware,
      request: { params: IdParams, query: FilePathQuery },
      responses: {
        200: {
          description: "The file's bytes",
          content: {
            "application/octet-stream": {
              schema: z.any().openapi({ type: "string", format: "binary" }),
            },
          },
        },
        ...errorResponses(...sandboxErrors),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const download = await files.download(c.get("team").teamId, c.req.valid("param").id, {
        path: query.path,
        ...(query.user !== undefined ? { user: query.user } : {}),
        signal: c.req.raw.signal,
      });
      const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
      // In-process (`app.request`) there is no Node response: a web stream it is.
      if (!outgoing) {
        return new Response(webStreamOf(download.body), { status: 200, headers: download.headers });
      }
      pipeDownload(download, outgoing);
      return RESPONSE_ALREADY_SENT;
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/sandboxes/{id}/files",
      tags: ["files"],
      summary: "Remove a file or a directory (recursively)",
      security,
      middleware,
      request: { params: IdParams, query: FilePathQuery.pick({ path: true }) },
      responses: { 204: { description: "Removed" }, ...errorResponses(...sandboxErrors) },
    }),
    async (c) => {
      await files.remove(c.get("team").teamId, c.req.valid("param").id, c.req.valid("query").path);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/list",
      tags: ["files"],
      summary: "List a directory, `depth` levels deep (default 1), a page at a time",
      security,
      middleware,
      request: { params: IdParams, query: FileListQuery },
      responses: {
        200: json(FileListSchema, "The entries"),
        ...errorResponses(...sandboxErrors),
      },
    }),
    async (c) => {
      const { path, depth, limit, cursor } = c.req.valid("query");
      const page = await files.list(
        c.get("team").teamId,
        c.req.valid("param").id,
        path,
        depth ?? 1,
        {
          ...(limit !== undefined ? { limit } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
        },
      );
      return c.json(
        { entries: page.entries.map(formatEntry), next_cursor: page.nextCursor ?? null },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/stat",
      tags: ["files"],
      summary: "Describe one path",
      security,
      middleware,
      request: { params: IdParams, query: FilePathQuery.pick({ path: true }) },
      responses: { 200: json(FileEntrySchema, "The entry"), ...errorResponses(...sandboxErrors) },
    }),
    async (c) => {
      const entry = await files.stat(
        c.get("team").teamId,
        c.req.valid("param").id,
        c.req.valid("query").path,
      );
      return c.json(formatEntry(entry), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/files/mkdir",
      tags: ["files"],
      summary: "Make a directory and its parents (an existing one: 409 already_exists)",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: MkdirSchema } }, required: true },
      },
      responses: {
        201: json(FileEntrySchema, "The new directory"),
        ...errorResponses(...sandboxErrors, "already_exists", "insufficient_storage"),
      },
    }),
    async (c) => {
      const entry = await files.mkdir(
        c.get("team").teamId,
        c.req.valid("param").id,
        c.req.valid("json").path,
      );
      return c.json(formatEntry(entry), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/files/move",
      tags: ["files"],
      summary: "Move or rename",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: MoveSchema } }, required: true },
      },
      responses: {
        200: json(FileEntrySchema, "The entry at its new path"),
        ...errorResponses(...sandboxErrors, "already_exists", "insufficient_storage"),
      },
    }),
    async (c) => {
      const { source, destination } = c.req.valid("json");
      const entry = await files.move(
        c.get("team").teamId,
        c.req.valid("param").id,
        source,
        destination,
      );
      return c.json(formatEntry(entry), 200);
    },
  );
}
