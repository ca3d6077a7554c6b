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

  it("takes a user without /etc/group as a member of its own group only", async () => {
    await writeFile(join(root, "etc/passwd"), "user:x:1000:1000::/home/user:/bin/sh\n");
    expect((await lookupUser("user", root)).groups).toEqual([1000]);
  });
});
