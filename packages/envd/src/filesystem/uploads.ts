import { randomBytes } from "node:crypto";
import type { BigIntStats } from "node:fs";

/**
 * An upload is written to a temporary file beside its target and renamed over it. Watchers hide
 * that: E2B's envd writes in place, so its clients (and its docs' watchDir example) expect the
 * target's own name, created (when new) then written, and never the temporary name.
 */

const tempPattern = /^\..+\.wrenn-upload-[0-9a-f]{12}$/;

/** The temporary name an upload to `name` is written under. */
export function uploadTempName(name: string): string {
  return `.${name}.wrenn-upload-${randomBytes(6).toString("hex")}`;
}

/** Whether `name` (a directory entry's name) is an upload's temporary file. */
export function isUploadTemp(name: string): boolean {
  return tempPattern.test(name);
}

/**
 * Who an entry is, across renames: its inode plus its birth time, since a freed inode number is
 * soon given to a new file (birth time is 0 where the filesystem does not record it).
 */
export function identity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
}

/** How long a watcher may take to reach an upload's rename in its queue. */
const rememberMs = 60_000;
const maxRemembered = 10_000;
/** identity of an upload's temporary file → when it is forgotten. */
const uploads = new Map<string, number>();

/** Marks a temporary file (before its rename) as an upload's. */
export function rememberUpload(st: BigIntStats): void {
  const now = Date.now();
  for (const [id, until] of uploads) {
    if (until > now && uploads.size < maxRemembered) break;
    uploads.delete(id);
  }
  uploads.set(identity(st), now + rememberMs);
}

/** Whether the entry with this identity arrived by an upload's rename. */
export function isUpload(id: string): boolean {
  return (uploads.get(id) ?? 0) > Date.now();
}
