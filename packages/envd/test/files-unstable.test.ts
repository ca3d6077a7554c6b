import { randomBytes } from "node:crypto";
import { appendFile, chmod, readFile, truncate, writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";

const MiB = 1024 * 1024;

/**
 * Sends GET /files?path=… and GET /health on one connection, as a keep-alive client would, reads
 * nothing until `meanwhile` has run (so envd reads the file only after it), then everything until
 * envd closes the connection or goes quiet. Answers the raw bytes and whether envd closed it.
 */
async function twoRequests(
  envd: RunningEnvd,
  path: string,
  meanwhile: () => Promise<void>,
): Promise<{ wire: Buffer; closed: boolean }> {
  const socket = net.connect(envd.port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.pause();
  socket.write(
    `GET /files?path=${encodeURIComponent(path)} HTTP/1.1\r\nHost: envd\r\n\r\n` +
      "GET /health HTTP/1.1\r\nHost: envd\r\n\r\n",
  );
  await sleep(300);
  await meanwhile();
  const chunks: Buffer[] = [];
  let closed = false;
  let last = Date.now();
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    last = Date.now();
  });
  socket.once("close", () => {
    closed = true;
  });
  socket.resume();
  while (!closed && Date.now() - last < 1500) await sleep(50);
  socket.destroy();
  return { wire: Buffer.concat(chunks), closed };
}

/** The first answer's head and the bytes after it. */
function splitHead(wire: Buffer): { head: string; rest: Buffer } {
  const end = wire.indexOf("\r\n\r\n");
  return { head: wire.subarray(0, end).toString("latin1"), rest: wire.subarray(end + 4) };
}

describe("envd /files downloads of files that are not what their size says", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd();
    await chmod(envd.dir, 0o755);
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("sends a /proc file's content though it reports size 0, and an empty file as empty", async () => {
    const res = await fetch(`${envd.baseUrl}/files?path=/proc/version`);
    expect(res.status).toBe(200);
    const want = await readFile("/proc/version", "utf8");
    expect(want.length).toBeGreaterThan(0);
    expect(await res.text()).toBe(want);

    const empty = join(envd.dir, "empty");
    await writeFile(empty, "");
    await chmod(empty, 0o644);
    const none = await fetch(`${envd.baseUrl}/files?path=${encodeURIComponent(empty)}`);
    expect(none.status).toBe(200);
    expect((await none.arrayBuffer()).byteLength).toBe(0);
  });

  it("sends a file growing while read as big as it was when opened; the next answer follows intact", async () => {
    const path = join(envd.dir, "growing");
    const original = randomBytes(32 * MiB);
    await writeFile(path, original);
    await chmod(path, 0o644);
    // What the sandbox appends: an HTTP answer of its own, which must never reach the client as one.
    const forged = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged";
    const { wire } = await twoRequests(envd, path, () => appendFile(path, forged.repeat(1000)));
    const { head, rest } = splitHead(wire);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).toContain(`content-length: ${original.length}`);
    expect(rest.subarray(0, original.length).equals(original)).toBe(true);
    expect(rest.subarray(original.length).toString("latin1")).toMatch(/^HTTP\/1\.1 204 /);
  });

  it("cuts the connection when the file shrinks while read, instead of ending short and hanging the client", async () => {
    const path = join(envd.dir, "shrinking");
    await writeFile(path, randomBytes(32 * MiB));
    await chmod(path, 0o644);
    const { wire, closed } = await twoRequests(envd, path, () => truncate(path, MiB));
    const { head, rest } = splitHead(wire);
    expect(head).toContain(`content-length: ${32 * MiB}`);
    expect(rest.length).toBeLessThan(32 * MiB);
    // envd did not go on to answer /health as if the download had been whole.
    expect(closed).toBe(true);
    expect(rest.includes("HTTP/1.1 204")).toBe(false);
  });
});
