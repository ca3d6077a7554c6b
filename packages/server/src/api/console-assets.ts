import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.js";

/** `packages/console/dist`, built by `npm run build` (the same path from src/ and dist/). */
export const CONSOLE_DIR = fileURLToPath(new URL("../../../console/dist/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Wrenn</title>
<p>The web console is not built. Run <code>npm run build</code> and reload; the API is at
<a href="/docs">/docs</a>.</p>`;

async function fileAt(dir: string, path: string) {
  const full = normalize(join(dir, decodeURIComponent(path)));
  if (!full.startsWith(dir.endsWith(sep) ? dir : dir + sep)) return undefined;
  const info = await stat(full).catch(() => undefined);
  return info?.isFile() ? { full, size: info.size } : undefined;
}

/**
 * The web console: files of its build, and `index.html` for its client routes (paths without an
 * extension). Mounted after every API route and as middleware, so the API keeps precedence
 * (`/v1/*` never falls back to the console, and unknown methods still get the API's 405/404).
 */
export function consoleAssets(dir = CONSOLE_DIR): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { method, path } = c.req;
    if ((method !== "GET" && method !== "HEAD") || path === "/v1" || path.startsWith("/v1/"))
      return next();
    let file = await fileAt(dir, path === "/" ? "/index.html" : path).catch(() => undefined);
    const clientRoute = !file && extname(path) === "";
    if (clientRoute) file = await fileAt(dir, "/index.html");
    if (!file) {
      if (clientRoute) return c.html(NOT_BUILT, 200, { "cache-control": "no-cache" });
      return next();
    }
    const headers = {
      "content-type": TYPES[extname(file.full)] ?? "application/octet-stream",
      "content-length": String(file.size),
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      // Hashed build assets never change; index.html must be fetched again to find new ones.
      "cache-control": path.startsWith("/assets/")
        ? "public, max-age=31536000, immutable"
        : "no-cache",
    };
    if (method === "HEAD") return c.body(null, 200, headers);
    const body = Readable.toWeb(createReadStream(file.full)) as ReadableStream<Uint8Array>;
    return c.body(body, 200, headers);
  };
}

/**
 * The console's `/sandboxes` pages share their paths with E2B's API (`GET /sandboxes`): a browser
 * navigation (HTML wanted, no API key) gets the page, anything else goes on to the API.
 */
export function consolePages(assets = consoleAssets()): MiddlewareHandler<AppEnv> {
  return (c, next) => {
    const page =
      c.req.method === "GET" &&
      (c.req.header("accept") ?? "").includes("text/html") &&
      !c.req.header("x-api-key");
    return page ? assets(c, next) : next();
  };
}
