import { describe, expect, it } from "vitest";
import { CliError } from "../errors/index.js";
import { baseName, parseLocation } from "./copy/index.js";
import { cgroupLayout } from "./doctor.js";
import { commandLine, localExitCode } from "./exec.js";
import { formatBytes, parseDuration, parsePairs, table } from "./format.js";

describe("parseLocation", () => {
  it("reads <id>:<path> as a sandbox path and anything else as local", () => {
    expect(parseLocation("abc123:/tmp/x")).toEqual({
      kind: "remote",
      sandboxId: "abc123",
      path: "/tmp/x",
    });
    expect(parseLocation("./abc:def")).toEqual({ kind: "local", path: "./abc:def" });
    expect(parseLocation("/tmp/a")).toEqual({ kind: "local", path: "/tmp/a" });
    expect(() => parseLocation("abc123:")).toThrow(CliError);
  });

  it("takes base names like cp does", () => {
    expect(baseName("/a/b/")).toBe("b");
    expect(baseName("file")).toBe("file");
  });
});

describe("commandLine", () => {
  it("keeps one word as shell code and quotes several as words", () => {
    expect(commandLine(["ls | wc -l"])).toBe("ls | wc -l");
    expect(commandLine(["echo", "$HOME", "it's"])).toBe(`echo '$HOME' 'it'\\''s'`);
  });

  it("maps exit codes the local shell cannot carry to 1", () => {
    expect(localExitCode(3)).toBe(3);
    expect(localExitCode(-1)).toBe(1);
    expect(localExitCode(300)).toBe(1);
  });
});

describe("format", () => {
  it("parses durations, bare numbers being seconds", () => {
    expect(parseDuration("90", "timeout")).toBe(90_000);
    expect(parseDuration("5m", "timeout")).toBe(300_000);
    expect(parseDuration("1.5h", "timeout")).toBe(5_400_000);
    expect(() => parseDuration("soon", "timeout")).toThrow(/--timeout takes a duration/);
  });

  it("parses key=value pairs, values may hold =", () => {
    expect(parsePairs(["a=1", "b=x=y"], "metadata")).toEqual({ a: "1", b: "x=y" });
    expect(() => parsePairs(["novalue"], "metadata")).toThrow(/--metadata takes key=value/);
  });

  it("formats bytes and aligned tables", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MiB");
    expect(table(["A", "LONGER"], [["xyz", "1"]])).toBe("A    LONGER\nxyz  1");
  });
});

describe("cgroupLayout", () => {
  it("finds v1 controllers and the v2 mount of a hybrid host", () => {
    const mountinfo = [
      "30 23 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
      "31 23 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
      "32 23 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
    ].join("\n");
    expect(cgroupLayout(mountinfo)).toEqual({
      v2At: "/sys/fs/cgroup/unified",
      v1Controllers: ["cpu", "memory"],
    });
  });

  it("sees a pure v2 host", () => {
    expect(cgroupLayout("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw")).toEqual({
      v2At: "/sys/fs/cgroup",
      v1Controllers: [],
    });
  });
});
