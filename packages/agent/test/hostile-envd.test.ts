import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HostileSandbox, hostileRuntime } from "./fixtures/hostile-runtime.js";

/** What a sandbox does to its own envd's files API: envd must answer, never hang. */
describe("hostile sandbox: envd's files API", { timeout: 120_000 }, () => {
  const hx = hostileRuntime({ netBase: 96 });
  let s: HostileSandbox;

  beforeAll(async () => {
    s = await hx.create("envd");
  }, 120_000);
  afterAll(async () => {
    // Puts the files back, so nothing else in the sandbox trips over them before destroy.
    await s?.root.sh("rm -f /etc/group && mv /etc/group.orig /etc/group; true").catch(() => {});
  });

  it("lists and downloads while /etc/group is a FIFO: owners by name, groups by id", async () => {
    const plant = await s.root.sh(
      "mv /etc/group /etc/group.orig && mkfifo -m 644 /etc/group && echo hi > /home/user/here && echo ok",
    );
    expect(plant.stdout).toBe("ok\n");
    // More calls at once than libuv has threads: each open of the FIFO used to hold one forever.
    const lists = await Promise.all(
      Array.from({ length: 6 }, () =>
        s.user.list("/home/user", { signal: AbortSignal.timeout(10_000) }),
      ),
    );
    for (const res of lists) {
      expect(res.status).toBe(200);
      const { entries } = (await res.json()) as {
        entries: Array<{ name: string; owner: string; group: string }>;
      };
      const here = entries.find((e) => e.name === "here");
      expect(here?.owner).toBe("root");
      // No group names to read: the id stands in for the name.
      expect(here?.group).toBe("0");
    }
    const down = await s.user.download("/home/user/here");
    expect(down.status).toBe(200);
    expect(await down.text()).toBe("hi\n");
  });
});
