import pino from "pino";
import { describe, expect, it } from "vitest";
import { humanStream } from "./human-format.js";
import { logFormat } from "./logger.js";

/** A pino logger writing human lines into a string, as a terminal (tty) or a plain pipe would. */
function capture(tty: boolean) {
  let text = "";
  const write = (s: string) => {
    text += s;
    return true;
  };
  const out = { isTTY: tty, columns: 80, write };
  const logger = pino({ level: "info" }, humanStream({ out, color: tty }));
  return { logger, text: () => text };
}

describe("human log lines", () => {
  it("are the format on a terminal unless WRENN_LOG_FORMAT says otherwise; JSON elsewhere", () => {
    expect(logFormat({}, { isTTY: true })).toBe("human");
    expect(logFormat({}, { isTTY: false })).toBe("json");
    expect(logFormat({ WRENN_LOG_FORMAT: "json" }, { isTTY: true })).toBe("json");
    expect(logFormat({ WRENN_LOG_FORMAT: "Human" }, { isTTY: false })).toBe("human");
  });

  it("prints the message and its fields, hiding the noise JSON keeps", () => {
    const { logger, text } = capture(false);
    logger.info(
      { url: "http://127.0.0.1:3000", steps: { a: 1 }, op: "x" },
      "wrenn server listening",
    );
    logger.warn({ err: new Error("disk full") }, "snapshot failed");
    logger.info({ method: "GET", path: "/v1/sandboxes", status: 200, ms: 3.2 }, "request");
    logger.info({ method: "GET", path: "/health", status: 503, ms: 1 }, "request");
    const lines = text().trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d wrenn server listening url=http:\/\/127\.0\.0\.1:3000$/,
    );
    expect(lines[1]).toMatch(/ warn snapshot failed: disk full$/);
    expect(lines[2]).toMatch(/ GET \/v1\/sandboxes 200 3\.2 ms$/);
  });

  it("turns a template build into one line per phase (each once) and a status line in place", () => {
    const { logger, text } = capture(true);
    const progress = [
      "debootstrap bookworm from http://deb.debian.org/debian",
      "I: Retrieving InRelease",
      "I: Retrieving Packages",
      "I: Validating Packages",
      "I: Retrieving libc6 2.36",
      "creating user 'user' (uid 1000)",
    ];
    for (const p of progress) logger.info({ template: "base", progress: p }, "template build");
    logger.info({ template: "base" }, "template built");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI escapes
    const plain = text().replace(/\x1b\[[0-9;]*[mK]/g, "");
    const permanent = plain
      .split("\n")
      .map((l) => l.split("\r").pop() ?? "")
      .filter(Boolean);
    expect(permanent).toEqual([
      "▸ template base: debootstrap bookworm from http://deb.debian.org/debian",
      "▸ template base: Retrieving…",
      "▸ template base: Validating…",
      "▸ template base: Retrieving…",
      "▸ template base: creating user 'user' (uid 1000)",
      expect.stringMatching(/ template built template=base$/),
    ]);
    // The status line showed each debootstrap line, replaced in place.
    expect(plain).toContain("\r     2  I: Retrieving Packages");
  });
});
