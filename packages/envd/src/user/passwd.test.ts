import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { lookupUser } from "./passwd.js";

describe("lookupUser", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "wrenn-envd-passwd-"));
    await mkdir(join(root, "etc"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reads a user and its groups by name or uid", async () => {
    await writeFile(
      join(root, "etc/passwd"),
      "# comment\nroot:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/sh\n",
    );
    await writeFile(join(root, "etc/group"), "user:x:1000:\ndocker:x:999:root,user\n");
    const user = await lookupUser("user", root);
    expect(user).toEqual({
      name: "user",
      uid: 1000,
      gid: 1000,
      groups: [1000, 999],
      home: "/home/user",
      shell: "/bin/sh",
    });
    expect((await lookupUser("0", root)).name).toBe("root");
    await expect(lookupUser("nobody", root)).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("refuses a FIFO put in place of /etc/passwd instead of blocking envd on it", async () => {
    execFileSync("mkfifo", [join(root, "etc/passwd")]);
    await expect(lookupUser("user", root)).rejects.toThrow(/not a regular file/);
  });

  it("sees every change to a file it has read before, even one that keeps its size", async () => {
    const passwd = join(root, "etc/passwd");
    const group = join(root, "etc/group");
    await writeFile(passwd, "user:x:1000:1000::/home/user:/bin/sh\n");
    await writeFile(group, "user:x:1000:\n");
    // Files changed in the last two seconds are never kept: let these settle, so the lookups
    // below are the ones served from memory until the files change.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect((await lookupUser("user", root)).uid).toBe(1000);
    expect((await lookupUser("user", root)).groups).toEqual([1000]);

    await writeFile(passwd, "user:x:1001:1000::/home/user:/bin/sh\n");
    expect((await lookupUser("user", root)).uid).toBe(1001);
    await writeFile(group, "user:x:1000:\nstaff:x:50:user\n");
    expect((await lookupUser("user", root)).groups).toEqual([1000, 50]);
    await writeFile(passwd, "user:x:1001:1000::/home/user:/bin/sh\nnew:x:1002:1002::/:/bin/sh\n");
    expect((await lookupUser("new", root)).uid).toBe(1002);
    // Another root's files are its own.
    await expect(lookupUser("user", `${root}/elsewhere`)).rejects.toThrow();
  }, 10_000);

  it("takes a user without /etc/group as a member of its own group only", async () => {
    await writeFile(join(root, "etc/passwd"), "user:x:1000:1000::/home/user:/bin/sh\n");
    expect((await lookupUser("user", root)).groups).toEqual([1000]);
  });
});
