import { spawn } from "node:child_process";
import { appendFile, chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EventType,
  type FilesystemEvent,
  FileType,
  type WatchDirResponse,
} from "@wrenn/proto/filesystem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";

const root = { authorization: `Basic ${Buffer.from("root:").toString("base64")}` };

/** Reads a WatchDir stream in the background; `until` waits for an event matching a predicate. */
function follow(stream: AsyncIterable<WatchDirResponse>) {
  const responses: WatchDirResponse[] = [];
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const response of stream) responses.push(response);
    } catch (err) {
      failure = err;
    }
  })();
  const events = () =>
    responses.flatMap((r) =>
      r.event.case === "filesystem" ? [r.event.value] : ([] as FilesystemEvent[]),
    );
  return {
    responses,
    events,
    done,
    failure: () => failure,
    async until(
      predicate: (events: FilesystemEvent[], responses: WatchDirResponse[]) => boolean,
      timeoutMs = 10_000,
    ) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(events(), responses)) {
        if (failure) throw failure;
        if (Date.now() > deadline)
          throw new Error(`timed out; events so far: ${JSON.stringify(summary(events()))}`);
        await sleep(20);
      }
    },
  };
}

function summary(events: FilesystemEvent[]): string[] {
  return events.map((e) => `${EventType[e.type]} ${e.name}`);
}

function has(events: FilesystemEvent[], type: EventType, name: string): boolean {
  return events.some((e) => e.type === type && e.name === name);
}

describe("filesystem.Filesystem watching", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd();
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("streams create, write, chmod, rename and remove events from subdirectories, with entries", async () => {
    const dir = join(envd.dir, "watched");
    await mkdir(join(dir, "sub"), { recursive: true });
    await writeFile(join(dir, "sub", "old.txt"), "there before the watch");
    const abort = new AbortController();
    const watch = follow(
      envd.filesystem.watchDir(
        { path: dir, recursive: true, includeEntry: true },
        { signal: abort.signal, headers: root },
      ),
    );
    try {
      await watch.until((_, responses) => responses.length > 0);
      expect(watch.responses[0]?.event.case).toBe("start");

      await writeFile(join(dir, "sub", "a.txt"), "one");
      await watch.until((events) => has(events, EventType.CREATE, "sub/a.txt"));
      const created = watch
        .events()
        .find((e) => e.type === EventType.CREATE && e.name === "sub/a.txt");
      expect(created?.entry).toMatchObject({
        type: FileType.FILE,
        path: join(dir, "sub", "a.txt"),
      });

      // A new WRITE: the first write may already have reported one.
      const writes = (events: FilesystemEvent[]) =>
        events.filter((e) => e.type === EventType.WRITE && e.name === "sub/a.txt").length;
      const writesBefore = writes(watch.events());
      await appendFile(join(dir, "sub", "a.txt"), "two");
      await watch.until((events) => writes(events) > writesBefore);

      await chmod(join(dir, "sub", "a.txt"), 0o600);
      await watch.until((events) => has(events, EventType.CHMOD, "sub/a.txt"));

      await rename(join(dir, "sub", "a.txt"), join(dir, "sub", "b.txt"));
      await watch.until(
        (events) =>
          has(events, EventType.RENAME, "sub/a.txt") && has(events, EventType.CREATE, "sub/b.txt"),
      );
      const renamed = summary(watch.events());
      expect(renamed.indexOf("RENAME sub/a.txt")).toBeLessThan(renamed.indexOf("CREATE sub/b.txt"));
      expect(has(watch.events(), EventType.REMOVE, "sub/a.txt")).toBe(false);

      await rm(join(dir, "sub", "b.txt"));
      await watch.until((events) => has(events, EventType.REMOVE, "sub/b.txt"));

      // A directory made after the watch started is watched too, with what was put in it at once.
      await mkdir(join(dir, "sub", "new", "deeper"), { recursive: true });
      await writeFile(join(dir, "sub", "new", "deeper", "c.txt"), "c");
      await watch.until(
        (events) =>
          has(events, EventType.CREATE, "sub/new") &&
          has(events, EventType.CREATE, "sub/new/deeper/c.txt"),
      );
      await appendFile(join(dir, "sub", "new", "deeper", "c.txt"), "more");
      await watch.until((events) => has(events, EventType.WRITE, "sub/new/deeper/c.txt"));
      const newDir = watch.events().find((e) => e.name === "sub/new");
      expect(newDir?.entry?.type).toBe(FileType.DIRECTORY);

      // Renaming what existed before the watch, and a watched directory, keeps names right.
      await rename(join(dir, "sub", "old.txt"), join(dir, "old-renamed.txt"));
      await watch.until(
        (events) =>
          has(events, EventType.RENAME, "sub/old.txt") &&
          has(events, EventType.CREATE, "old-renamed.txt"),
      );
      await rename(join(dir, "sub", "new"), join(dir, "moved"));
      await watch.until(
        (events) =>
          has(events, EventType.RENAME, "sub/new") && has(events, EventType.CREATE, "moved"),
      );
      await appendFile(join(dir, "moved", "deeper", "c.txt"), "after the move");
      await watch.until((events) => has(events, EventType.WRITE, "moved/deeper/c.txt"));
      expect(has(watch.events(), EventType.CREATE, "moved/deeper/c.txt")).toBe(false);
    } finally {
      abort.abort();
      await watch.done;
    }
  });

  it("does not watch, recursively, a subdirectory the user may not list", async () => {
    // As find(1) and a deep ListDir: what root does in root's closed directory is not the user's.
    await chmod(envd.dir, 0o755);
    const dir = join(envd.dir, "open");
    await mkdir(join(dir, "closed"), { recursive: true, mode: 0o755 });
    await chmod(join(dir, "closed"), 0o700);
    const abort = new AbortController();
    const watch = follow(
      envd.filesystem.watchDir({ path: dir, recursive: true }, { signal: abort.signal }),
    );
    try {
      await watch.until((_, responses) => responses.length > 0);
      await writeFile(join(dir, "closed", "secret.txt"), "x");
      await mkdir(join(dir, "closed-later"), { mode: 0o700 });
      await writeFile(join(dir, "closed-later", "secret.txt"), "x");
      await writeFile(join(dir, "seen.txt"), "x");
      await watch.until((events) => has(events, EventType.CREATE, "seen.txt"));
      expect(summary(watch.events()).filter((e) => e.includes("secret"))).toEqual([]);
      expect(has(watch.events(), EventType.CREATE, "closed-later")).toBe(true);
    } finally {
      abort.abort();
      await watch.done;
    }
  });

  it("stops watching a subdirectory closed to the user, and watches it again once opened", async () => {
    await chmod(envd.dir, 0o755);
    const dir = join(envd.dir, "reopened");
    const sub = join(dir, "sub");
    await mkdir(sub, { recursive: true, mode: 0o755 });
    const abort = new AbortController();
    const watch = follow(
      envd.filesystem.watchDir({ path: dir, recursive: true }, { signal: abort.signal }),
    );
    try {
      await watch.until((_, responses) => responses.length > 0);
      await writeFile(join(sub, "before.txt"), "x");
      await watch.until((events) => has(events, EventType.CREATE, "sub/before.txt"));
      await chmod(sub, 0o700);
      await writeFile(join(sub, "secret.txt"), "x");
      await writeFile(join(dir, "seen.txt"), "x");
      await watch.until((events) => has(events, EventType.CREATE, "seen.txt"));
      await chmod(sub, 0o755);
      // Watched again once envd has seen the chmod (what is made before that is not announced).
      for (let i = 0; !watch.events().some((e) => e.name.startsWith("sub/after-")); i++) {
        if (i === 50) throw new Error(`sub is not watched again: ${summary(watch.events())}`);
        await writeFile(join(sub, `after-${i}`), "x");
        await sleep(100);
      }
      expect(summary(watch.events()).filter((e) => e.includes("secret"))).toEqual([]);
    } finally {
      abort.abort();
      await watch.done;
    }
  });

  it("watches only the directory itself unless recursive", async () => {
    const dir = join(envd.dir, "flat");
    await mkdir(join(dir, "sub"), { recursive: true });
    const abort = new AbortController();
    const watch = follow(
      envd.filesystem.watchDir({ path: dir }, { signal: abort.signal, headers: root }),
    );
    try {
      await watch.until((_, responses) => responses.length > 0);
      await writeFile(join(dir, "sub", "hidden.txt"), "x");
      await writeFile(join(dir, "top.txt"), "x");
      await watch.until((events) => has(events, EventType.CREATE, "top.txt"));
      expect(watch.events().some((e) => e.name.startsWith("sub/"))).toBe(false);
      expect(watch.events().every((e) => e.entry === undefined)).toBe(true);
    } finally {
      abort.abort();
      await watch.done;
    }
  });

  it("sends keepalives at the client's Keepalive-Ping-Interval", async () => {
    const abort = new AbortController();
    const watch = follow(
      envd.filesystem.watchDir(
        { path: envd.dir },
        { signal: abort.signal, headers: { ...root, "keepalive-ping-interval": "1" } },
      ),
    );
    try {
      await watch.until(
        (_, responses) => responses.filter((r) => r.event.case === "keepalive").length >= 2,
        15_000,
      );
    } finally {
      abort.abort();
      await watch.done;
    }
  });

  it("refuses a missing directory and a file", async () => {
    const file = join(envd.dir, "not-a-dir");
    await writeFile(file, "x");
    for (const [path, code] of [
      [join(envd.dir, "missing"), Code.NotFound],
      [file, Code.InvalidArgument],
      ["", Code.InvalidArgument],
    ] as const) {
      const watch = follow(envd.filesystem.watchDir({ path }, { headers: root }));
      await watch.done;
      expect(ConnectError.from(watch.failure()).code).toBe(code);
      await expect(
        envd.filesystem.createWatcher({ path }, { headers: root }),
      ).rejects.toMatchObject({ code });
    }
  });

  it("gathers events for a polling watcher until it is removed", async () => {
    const dir = join(envd.dir, "polled");
    await mkdir(dir);
    const { watcherId } = await envd.filesystem.createWatcher(
      { path: dir, recursive: true },
      { headers: root },
    );
    expect(watcherId).toBeTruthy();

    await writeFile(join(dir, "p.txt"), "x");
    await mkdir(join(dir, "d"));
    await writeFile(join(dir, "d", "q.txt"), "x");
    const gathered: FilesystemEvent[] = [];
    const deadline = Date.now() + 10_000;
    while (
      !(has(gathered, EventType.CREATE, "p.txt") && has(gathered, EventType.CREATE, "d/q.txt"))
    ) {
      if (Date.now() > deadline) throw new Error(`timed out: ${summary(gathered)}`);
      gathered.push(...(await envd.filesystem.getWatcherEvents({ watcherId })).events);
      await sleep(50);
    }
    // Drained: with nothing new, the next call is empty. The WRITE of d/q.txt may come after its
    // CREATE (the watch on d is added when d appears): one more call first takes what is left.
    await sleep(200);
    await envd.filesystem.getWatcherEvents({ watcherId });
    await sleep(200);
    gathered.length = 0;
    gathered.push(...(await envd.filesystem.getWatcherEvents({ watcherId })).events);
    expect(summary(gathered)).toEqual([]);

    await envd.filesystem.removeWatcher({ watcherId });
    await expect(envd.filesystem.getWatcherEvents({ watcherId })).rejects.toMatchObject({
      code: Code.NotFound,
    });
    await expect(envd.filesystem.removeWatcher({ watcherId })).rejects.toMatchObject({
      code: Code.NotFound,
    });
    await expect(envd.filesystem.getWatcherEvents({ watcherId: "nope" })).rejects.toMatchObject({
      code: Code.NotFound,
    });
  });

  it("ends a watch of a directory changing faster than it can follow, its memory bounded", {
    timeout: 90_000,
  }, async () => {
    // A fresh envd: its peak memory is this test's alone.
    const own = await startEnvd();
    const dir = join(own.dir, "churn");
    await mkdir(dir);
    // What a sandbox process may do: make and remove files in a tight loop.
    const churn = spawn(process.execPath, [
      "-e",
      `const fs = require("node:fs");
       for (let n = 0; ; n++) { const p = ${JSON.stringify(dir)} + "/f" + (n % 100); fs.writeFileSync(p, ""); fs.unlinkSync(p); }`,
    ]);
    try {
      const watch = follow(
        own.filesystem.watchDir(
          { path: dir, recursive: true, includeEntry: true },
          { headers: root },
        ),
      );
      const deadline = Date.now() + 45_000;
      while (!watch.failure() && Date.now() < deadline) await sleep(200);
      const memory = await own.memory();
      const failure = ConnectError.from(watch.failure() ?? new Error("the watch went on"));
      expect(failure.code).toBe(Code.ResourceExhausted);
      expect(failure.rawMessage).toMatch(/changes faster than envd can follow/);
      expect(memory.peak).toBeLessThan(200 * 1024 * 1024);
      // envd serves on: a new watch starts.
      const again = follow(own.filesystem.watchDir({ path: own.dir }, { headers: root }));
      await again.until((_, responses) => responses.some((r) => r.event.case === "start"));
    } finally {
      churn.kill("SIGKILL");
      await own.stop();
    }
  });
});
