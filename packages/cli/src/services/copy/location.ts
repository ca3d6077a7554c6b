import { CliError } from "../../errors/index.js";

export type Location =
  | { kind: "local"; path: string }
  | { kind: "remote"; sandboxId: string; path: string };

/** `<id>:<path>` is in a sandbox (ids are lowercase alphanumeric); anything else is local. */
export function parseLocation(text: string): Location {
  const match = /^([a-z0-9]+):(.*)$/.exec(text);
  if (!match) return { kind: "local", path: text };
  const path = match[2] ?? "";
  if (path === "")
    throw new CliError(
      "invalid_argument",
      `${JSON.stringify(text)} names no path in the sandbox.`,
      `Write it as ${match[1]}:/path/in/sandbox.`,
    );
  return { kind: "remote", sandboxId: match[1] ?? "", path };
}

/** POSIX basename that ignores trailing slashes (`/a/b/` → `b`). */
export function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || "/";
}

export function joinRemote(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "")}/${name}`;
}
