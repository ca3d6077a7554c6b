import { lstat, open, realpath, rename, stat, unlink } from "node:fs/promises";
import type http from "node:http";
import { basename, dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import { EnvdError } from "../errors.js";
// The helpers' own modules, not the folder's index: it would load the Filesystem service, which
// envd loads only once a client first calls it.
import {
  assertAccess,
  assertRemovable,
  ensureDirs,
  openChecked,
  openWritableDir,
} from "../filesystem/access.js";
import { resolvePath } from "../filesystem/paths.js";
import { rememberUpload, uploadTempName } from "../filesystem/uploads.js";
import { type UserInfo, userFromName } from "../user/index.js";
import { FileSink } from "./file-sink.js";
import { answerBeforeBody, brokenAlready, pour, requestBody } from "./request-body.js";
import { type Request, type Response, requestUrl, sendJson } from "./respond.js";

/** Parts one upload may carry. */
const maxParts = 1000;
/**
 * Read buffer per download: big enough that the disk and the socket overlap instead of taking
 * turns per 64 KiB, small enough that memory stays flat.
 */
const chunkBytes = 1024 * 1024;

interface UploadedEntry {
  name: string;
  type: "file";
  path: string;
}

/** `Content-Disposition` naming the file, plain ASCII for old clients and RFC 5987 for the rest. */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** GET /files?path=P&username=U: the file's bytes, streamed from disk. */
async function download(req: Request, res: Response): Promise<void> {
  const url = requestUrl(req);
  const user = await userFromName(url.searchParams.get("username"));
  const path = resolvePath(url.searchParams.get("path"), user);
  // Opened once and the opened file checked: no window for a symlink swap.
  const { file, st } = await openChecked(user, path, { read: true }).catch((err: unknown) => {
    throw EnvdError.from(err, path);
  });
  if (!st.isFile()) {
    await file.close();
    throw new EnvdError(
      "invalid_argument",
      st.isDirectory() ? `path is a directory: ${path}` : `not a regular file: ${path}`,
    );
  }
  const { size } = st;
  const headers = {
    "content-type": "application/octet-stream",
    "content-disposition": contentDisposition(basename(path)),
  };
  // Size 0 is also what /proc and /sys report for files with content: those go out chunked, to
  // their end. Any other file goes out as big as it was when opened, exactly: bytes appended
  // meanwhile past the Content-Length would be read as the connection's next answer.
  // The stream owns the handle from here: it closes it when done or failed.
  if (size === 0) {
    res.writeHead(200, headers);
    await pipeline(
      file.createReadStream({ highWaterMark: chunkBytes }),
      res as NodeJS.WritableStream,
    );
    return;
  }
  const stream = file.createReadStream({ highWaterMark: chunkBytes, end: size - 1 });
  res.writeHead(200, { ...headers, "content-length": size });
  await pipeline(stream, shortReadFails(size, path), res as NodeJS.WritableStream);
}

/**
 * Passes a download's bytes on and fails it if the file ends before `size` (truncated while being
 * read): a cut connection tells the client the file is incomplete, a clean end would not.
 */
function shortReadFails(size: number, path: string) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let sent = 0;
    for await (const chunk of source) {
      sent += chunk.length;
      yield chunk;
    }
    if (sent < size)
      throw new EnvdError(
        "failed_precondition",
        `file shrank to ${sent} of ${size} bytes while read: ${path}`,
      );
  };
}

/**
 * Writes one uploaded stream to `path` as `user`: missing parents are made, the bytes go to a
 * temporary file beside the target which replaces it only once complete, so a failed upload
 * never leaves a half-written file. Backpressure flows from the disk to the client.
 */
async function writeFile(user: UserInfo, path: string, body: Readable): Promise<UploadedEntry> {
  let target = path;
  const existing = await lstat(target).catch(() => undefined);
  // Writing through a symlink writes what it points to, as open(2) would.
  if (existing?.isSymbolicLink()) target = await realpath(target).catch(() => target);
  await ensureDirs(user, dirname(target));
  // The directory is opened once and checked; the file is made and renamed inside the opened
  // directory, so swapping a symlink in for it after the check leads nowhere else.
  const dir = await openWritableDir(user, dirname(target));
  try {
    return await writeInto(user, dir, basename(target), path, body);
  } finally {
    await dir.handle.close();
  }
}

async function writeInto(
  user: UserInfo,
  dir: Awaited<ReturnType<typeof openWritableDir>>,
  name: string,
  path: string,
  body: Readable,
): Promise<UploadedEntry> {
  const target = dir.at(name);
  const current = await lstat(target).catch(() => undefined);
  if (current?.isDirectory())
    throw new EnvdError("invalid_argument", `path is a directory: ${path}`);
  if (current) {
    if (!current.isFile()) throw new EnvdError("invalid_argument", `not a regular file: ${path}`);
    await assertAccess(user, target, { write: true });
    await assertRemovable(user, target, current);
  }
  const temp = dir.at(uploadTempName(name));
  const file = await open(temp, "wx", 0o600);
  try {
    try {
      await file.chown(user.uid, user.gid);
      // A replaced file keeps its mode; a new one gets the usual 0644.
      await file.chmod(current ? current.mode & 0o7777 : 0o644);
      rememberUpload(await file.stat({ bigint: true }));
    } catch (err) {
      await file.close();
      throw err;
    }
    // The sink owns (and closes) the handle.
    await pour(body, new FileSink(file));
    await rename(temp, target);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  return { name: basename(path), type: "file", path };
}

/**
 * Where each part goes. With `path` naming an existing directory (or ending in "/"), every part
 * goes inside it under its own file name; with any other `path`, the (single) part goes to
 * `path`; without `path`, each part's file name is its path (what E2B's SDK sends for several
 * files), relative to the user's home unless absolute.
 */
async function partTargets(
  user: UserInfo,
  pathParam: string | null,
): Promise<(filename: string | undefined) => string> {
  if (!pathParam) {
    return (filename) => {
      if (!filename)
        throw new EnvdError("invalid_argument", "no path: give ?path= or a file name on each part");
      return resolvePath(filename, user);
    };
  }
  const base = resolvePath(pathParam, user);
  const isDir =
    pathParam.endsWith("/") || (await stat(base).catch(() => undefined))?.isDirectory() === true;
  if (!isDir) return () => base;
  return (filename) => {
    const name = filename ? basename(filename) : "";
    if (!name || name === "." || name === "..")
      throw new EnvdError("invalid_argument", "a part uploaded into a directory needs a file name");
    return join(base, name);
  };
}

async function uploadMultipart(
  req: Request,
  body: Readable,
  user: UserInfo,
  pathParam: string | null,
): Promise<UploadedEntry[]> {
  const targetOf = await partTargets(user, pathParam);
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers as http.IncomingHttpHeaders,
      preservePath: true,
      // A part's file name is the UTF-8 that FormData sends (busboy's default reads it as latin1,
      // so "ü" named a file "Ã¼"); E2B's envd (Go) takes its bytes as they are.
      defParamCharset: "utf8",
      limits: { parts: maxParts, files: maxParts },
    });
  } catch (err) {
    throw new EnvdError("invalid_argument", `bad multipart request: ${(err as Error).message}`);
  }
  const written: UploadedEntry[] = [];
  const seen = new Set<string>();
  let failure: unknown;
  // Parts arrive one after another; each is written before busboy reads the next.
  let work: Promise<void> = Promise.resolve();
  parser.on("file", (field, stream, info) => {
    if (field !== "file" || failure) {
      stream.resume();
      return;
    }
    work = work.then(async () => {
      try {
        const path = targetOf(info.filename);
        if (seen.has(path))
          throw new EnvdError("invalid_argument", `several parts for the same path ${path}`);
        seen.add(path);
        written.push(await writeFile(user, path, stream));
      } catch (err) {
        failure ??= err;
        stream.resume();
        // Stop reading the rest of the body: the answer is already an error.
        parser.destroy(EnvdError.from(err));
      }
    });
  });
  parser.on("partsLimit", () =>
    parser.destroy(new EnvdError("invalid_argument", `over ${maxParts} parts`)),
  );
  const parsed = new Promise<void>((resolve) => {
    parser.on("close", resolve);
    parser.on("error", (err: Error) => {
      failure ??=
        err instanceof EnvdError
          ? err
          : new EnvdError("invalid_argument", `bad upload: ${err.message}`);
      resolve();
    });
  });
  // A client that goes away mid-upload fails the part being written (its temporary file is removed).
  req.once("close", () => {
    if (!req.complete)
      parser.destroy(new EnvdError("invalid_argument", "upload aborted by the client"));
  });
  const bad = (err: Error) =>
    parser.destroy(new EnvdError("invalid_argument", `bad request body: ${err.message}`));
  body.on("error", bad);
  const early = brokenAlready(body);
  if (early) bad(early);
  else body.pipe(parser);
  await parsed;
  body.unpipe(parser);
  await work;
  if (failure) throw failure;
  if (written.length === 0) throw new EnvdError("invalid_argument", 'no "file" part in the upload');
  return written;
}

/** POST /files?path=P&username=U: multipart/form-data (or a raw octet-stream body with ?path=). */
async function upload(req: Request, res: Response): Promise<void> {
  const url = requestUrl(req);
  const user = await userFromName(url.searchParams.get("username"));
  const pathParam = url.searchParams.get("path");
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  const multipart = type.startsWith("multipart/form-data");
  if (!multipart && !type.startsWith("application/octet-stream")) {
    throw new EnvdError(
      "invalid_argument",
      "content-type must be multipart/form-data or application/octet-stream",
    );
  }
  const body = requestBody(req);
  try {
    const entries = multipart
      ? await uploadMultipart(req, body, user, pathParam)
      : [await writeFile(user, resolvePath(pathParam, user), body)];
    sendJson(res, 200, entries);
  } catch (err) {
    // The gunzip stream, if any: the request itself is left whole for answerBeforeBody.
    if (body !== req) body.destroy();
    // Its own failure (a body that is not gzip) is the client's mistake.
    if (body !== req && err === body.errored)
      throw new EnvdError("invalid_argument", `bad request body: ${(err as Error).message}`);
    throw err;
  }
}

/** /files: download (GET) and upload (POST). */
export async function handleFiles(req: Request, res: Response): Promise<void> {
  try {
    if (req.method === "GET") await download(req, res);
    else await upload(req, res);
  } catch (err) {
    answerBeforeBody(req, res, err);
  }
}
