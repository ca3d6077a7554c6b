import { describe, expect, it } from "vitest";
import { DockerfileError, parseDockerfile } from "./dockerfile.js";

describe("parseDockerfile", () => {
  it("reads the supported subset into recipe steps", () => {
    const parsed = parseDockerfile(
      [
        "# syntax=docker/dockerfile:1",
        "ARG VERSION=1.2",
        "FROM debian:bookworm-slim",
        'ENV APP_HOME=/srv/app GREETING="hi there"',
        "RUN apt-get update && \\",
        "    apt-get install -y jq",
        "WORKDIR $APP_HOME",
        "COPY --chown=user server.js package.json ./",
        "ADD config.json /etc/app/config.json",
        "USER user",
        'RUN ["echo", "v$VERSION"]',
        'ENTRYPOINT ["node"]',
        "CMD server.js",
      ].join("\n"),
    );
    expect(parsed.from).toEqual({ template: "base" });
    expect(parsed.steps).toEqual([
      { type: "env", envs: { APP_HOME: "/srv/app", GREETING: "hi there" } },
      {
        type: "run",
        cmd: "export VERSION=1.2 APP_HOME=/srv/app GREETING='hi there'; apt-get update &&  apt-get install -y jq",
        user: "root",
      },
      { type: "run", cmd: "mkdir -p /srv/app", user: "root" },
      { type: "workdir", path: "/srv/app" },
      { type: "copy", src: "server.js", dest: "/srv/app/", user: "user" },
      { type: "copy", src: "package.json", dest: "/srv/app/", user: "user" },
      { type: "copy", src: "config.json", dest: "/etc/app/config.json", user: "root" },
      { type: "user", name: "user" },
      {
        type: "run",
        cmd: "export VERSION=1.2 APP_HOME=/srv/app GREETING='hi there'; echo 'v$VERSION'",
      },
      { type: "start", cmd: "node server.js" },
    ]);
  });

  it("takes FROM wrenn/<template> and build args", () => {
    const parsed = parseDockerfile("ARG NAME\nFROM wrenn/my-env\nRUN echo $NAME", {
      buildArgs: { NAME: "x" },
    });
    expect(parsed).toEqual({
      from: { template: "my-env" },
      steps: [{ type: "run", cmd: "export NAME=x; echo $NAME", user: "root" }],
    });
  });

  it("resolves relative COPY destinations against the WORKDIR, as Docker does", () => {
    const parsed = parseDockerfile(
      [
        "FROM debian:bookworm",
        "COPY top.txt .",
        "WORKDIR /app",
        "COPY . .",
        "COPY requirements.txt ./",
        "COPY conf etc/conf",
        "COPY a.txt b.txt ../shared/",
        "ADD run.sh bin/run.sh",
      ].join("\n"),
    );
    expect(parsed.steps.filter((s) => s.type === "copy")).toEqual([
      { type: "copy", src: "top.txt", dest: "/", user: "root" },
      { type: "copy", src: ".", dest: "/app/", user: "root" },
      { type: "copy", src: "requirements.txt", dest: "/app/", user: "root" },
      { type: "copy", src: "conf", dest: "/app/etc/conf", user: "root" },
      { type: "copy", src: "a.txt", dest: "/shared/", user: "root" },
      { type: "copy", src: "b.txt", dest: "/shared/", user: "root" },
      { type: "copy", src: "run.sh", dest: "/app/bin/run.sh", user: "root" },
    ]);
    // A template's own working directory is not known to the parser: say what is missing.
    expect(() => parseDockerfile("FROM wrenn/my-env\nCOPY app.py .")).toThrow(
      /line 2: COPY to a relative destination needs a WORKDIR first/,
    );
    expect(parseDockerfile("FROM wrenn/my-env\nWORKDIR /w\nCOPY app.py .").steps.at(-1)).toEqual({
      type: "copy",
      src: "app.py",
      dest: "/w/",
      user: "root",
    });
  });

  it("carries COPY --chmod's octal mode to the copy, as Docker applies it", () => {
    const parsed = parseDockerfile(
      "FROM debian:bookworm\nCOPY --chown=user --chmod=755 run.sh /app/\nADD --chmod=0600 key /k",
    );
    expect(parsed.steps).toEqual([
      { type: "copy", src: "run.sh", dest: "/app/", user: "user", mode: 0o755 },
      { type: "copy", src: "key", dest: "/k", user: "root", mode: 0o600 },
    ]);
  });

  it("refuses what it does not take, naming the line and why", () => {
    const cases: [string, number, RegExp][] = [
      ["FROM ubuntu:22.04", 1, /FROM takes wrenn/],
      ["FROM debian:trixie", 1, /bookworm/],
      ["FROM wrenn/base\n\nEXPOSE 80", 3, /EXPOSE: ports/],
      ["FROM wrenn/base\nADD https://example.com/x /x", 2, /URL/],
      ["FROM wrenn/base\nCOPY --from=build /a /b", 2, /--from/],
      ["FROM wrenn/base\nCOPY ../secret /x", 2, /outside the build context/],
      ["FROM wrenn/base\nCOPY --chmod=u+x run.sh /x", 2, /--chmod takes an octal mode/],
      ["FROM wrenn/base\nCOPY --chmod=999 run.sh /x", 2, /--chmod takes an octal mode/],
      ["FROM wrenn/base AS build", 1, /stages/],
      ["FROM wrenn/base\nFROM wrenn/base", 2, /one FROM/],
      ["RUN true", 1, /before FROM/],
      ["FROM wrenn/base\nHEALTHCHECK CMD true", 2, /ready check/],
      ["FROM wrenn/base\nFROBNICATE", 2, /unsupported instruction FROBNICATE/],
      ["FROM wrenn/base\nCMD [1, 2]", 2, /JSON array of strings/],
    ];
    for (const [text, line, why] of cases) {
      let caught: unknown;
      try {
        parseDockerfile(text);
      } catch (err) {
        caught = err;
      }
      expect(caught, text).toBeInstanceOf(DockerfileError);
      expect((caught as DockerfileError).line, text).toBe(line);
      expect((caught as DockerfileError).message, text).toMatch(why);
      expect((caught as DockerfileError).code).toBe("invalid_argument");
    }
  });
});
