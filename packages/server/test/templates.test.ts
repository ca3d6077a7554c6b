import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newTeamKey } from "./helpers/app.js";
import { type BuildResult, startTemplateHost, type TemplateHost } from "./helpers/template-host.js";

// Templates built from a recipe, for real: HTTP API → build service → embedded agent → build
// sandboxes in namespaces → layers frozen as snapshots → sandboxes started from the result.
// On `test-minimal` (busybox + Node, no download); an apt recipe on `base` runs in the
// custom-template example (examples/test), npm packages in the SDK's template-npm.test.ts. SQLite only:
// the build path does not depend on the database, and each build costs several sandboxes on a
// loaded machine.

const TEMPLATE = "test-minimal";
const SERVER_JS =
  "require('http').createServer((q, s) => s.end('hello from ' + process.env.GREETING)).listen(8080, '127.0.0.1');\n";
const sha256 = (data: string) => createHash("sha256").update(data).digest("hex");

describe("template builds on the namespace runtime", { timeout: 300_000 }, () => {
  let th: TemplateHost;
  const call = (method: string, path: string, json?: unknown) => th.call(method, path, json);
  const build = (
    recipe: Record<string, unknown>,
    onEvent?: (e: Record<string, unknown>) => void,
  ): Promise<BuildResult> => th.build(recipe, onEvent);
  const exec = (id: string, cmd: string) => th.exec(id, cmd);

  const recipe = (lastCmd: string) => ({
    name: "web",
    memory_mb: 256,
    disk_size_mb: 256,
    files: { [sha256(SERVER_JS)]: Buffer.from(SERVER_JS).toString("base64") },
    steps: [
      { type: "env", envs: { GREETING: "the template" } },
      // Stands in for an expensive install: the cached rebuild must skip it.
      { type: "run", cmd: "sleep 15; echo slow step done; echo one > /opt/one", user: "root" },
      {
        type: "copy",
        dest: "/opt/app/server.js",
        files: [{ path: "", sha256: sha256(SERVER_JS) }],
        user: "root",
      },
      { type: "workdir", path: "/opt/app" },
      { type: "run", cmd: lastCmd, user: "root" },
      { type: "start", cmd: "node server.js", ready: { port: 8080 }, ready_timeout_ms: 30_000 },
    ],
  });

  beforeAll(async () => {
    th = await startTemplateHost({ template: TEMPLATE });
  }, 180_000);

  afterAll(async () => {
    if (th) expect(await th.close()).toEqual([]);
  }, 120_000);

  it("refuses bad recipes with 400 {code, message} before building anything", async () => {
    const bad: [unknown, string][] = [
      [{ name: "../x", steps: [] }, "name"],
      [{ name: "a", steps: [{ type: "nope" }] }, "type"],
      [{ name: "a", steps: [{ type: "apt_install", packages: ["jq; rm -rf /"] }] }, "package"],
      [
        {
          name: "a",
          steps: [{ type: "copy", dest: "/x", files: [{ path: "", sha256: "a".repeat(64) }] }],
        },
        "files",
      ],
      [
        {
          name: "a",
          steps: [{ type: "copy", dest: "rel", files: [{ path: "", sha256: sha256("x") }] }],
          files: { [sha256("x")]: "eA==" },
        },
        "absolute",
      ],
      [
        {
          name: "a",
          steps: [
            { type: "start", cmd: "a" },
            { type: "start", cmd: "b" },
          ],
        },
        "start",
      ],
      [{ name: "a", from: { snapshot: "missing" }, steps: [] }, "not found"],
    ];
    for (const [body, word] of bad) {
      const res = await call("POST", "/v1/templates/builds", body);
      const json = (await res.json()) as { code: string; message: string };
      expect([400, 404], JSON.stringify(json)).toContain(res.status);
      expect(json.code).toEqual(expect.any(String));
      expect(json.message.toLowerCase()).toContain(word);
    }
    expect((await (await call("GET", "/v1/templates")).json()) as unknown).toEqual({
      templates: [],
    });
  });

  let first: BuildResult;

  it("builds a template whose sandboxes start with its files, defaults and a ready start command", async () => {
    first = await build(recipe("echo last-1 > /opt/last"));
    expect(first.last, JSON.stringify(first.events.slice(-3))).toMatchObject({
      type: "done",
      template: { name: "web", version: 1, start_cmd: "node server.js", base: TEMPLATE },
    });
    // Its layers as the agent measured them: the copied server.js at least, on top of its base.
    const size = (first.last.template as { size_bytes: unknown }).size_bytes;
    expect(size).toBeGreaterThanOrEqual(SERVER_JS.length);
    expect(first.events.filter((e) => e.type === "step").every((e) => e.cached === false)).toBe(
      true,
    );
    expect(
      first.events.some((e) => e.type === "log" && String(e.text).includes("slow step done")),
    ).toBe(true);

    const res = await call("POST", "/v1/sandboxes", { template: "web" });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect(await exec(id, "cat /opt/one /opt/last; pwd; echo $GREETING")).toMatchObject({
      stdout: "one\nlast-1\n/opt/app\nthe template\n",
      exit_code: 0,
    });
    // The start command runs (tag "start") and answered before the sandbox was handed out.
    const { processes } = (await (await call("GET", `/v1/sandboxes/${id}/processes`)).json()) as {
      processes: { tag: string | null; args: string[] }[];
    };
    expect(processes.find((p) => p.tag === "start")?.args.at(-1)).toBe("node server.js");
    expect((await exec(id, "wget -qO- http://127.0.0.1:8080/")).stdout).toBe(
      "hello from the template",
    );
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it("rebuilds after a change to the last step from cached layers, as a new version", async () => {
    const second = await build(recipe("echo last-2 > /opt/last"));
    expect(second.last).toMatchObject({ type: "done", template: { name: "web", version: 2 } });
    const steps = second.events.filter(
      (e) => e.type === "step" && String(e.step).match(/^(RUN|COPY)/),
    );
    expect(steps.map((e) => e.cached)).toEqual([true, true, false]);
    expect(
      second.events.some((e) => e.type === "log" && String(e.text).includes("slow step done")),
    ).toBe(false);
    const ratio = second.ms / first.ms;
    console.log(
      `template rebuild after a last-step change: ${Math.round(second.ms)} ms vs ${Math.round(first.ms)} ms first (×${ratio.toFixed(2)})`,
    );
    expect(ratio).toBeLessThan(0.9);

    const { templates } = (await (await call("GET", "/v1/templates")).json()) as {
      templates: { name: string; version: number; base: string; size_bytes: number }[];
    };
    expect(templates.map((t) => [t.name, t.version, t.base]).sort()).toEqual([
      ["web", 1, TEMPLATE],
      ["web", 2, TEMPLATE],
    ]);
    // Version 2 stands on the cached layers of version 1: they count in its size too.
    for (const t of templates) expect(t.size_bytes).toBeGreaterThanOrEqual(SERVER_JS.length);
    const res = await call("POST", "/v1/sandboxes", { template: "web" });
    const { id } = (await res.json()) as { id: string };
    expect((await exec(id, "cat /opt/last")).stdout).toBe("last-2\n");
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it("finishes two builds of one name at once: versions increase, the last finished wins", async () => {
    const race = (word: string) =>
      build({
        name: "race",
        // A workdir not there yet is made for the step (as Docker does), the user's.
        steps: [
          { type: "workdir", path: "/srv/race" },
          { type: "run", cmd: `echo ${word} > word` },
        ],
      });
    const [a, b] = await Promise.all([race("alpha"), race("beta")]);
    const version = (r: BuildResult) =>
      (r.last.template as { version: number } | undefined)?.version;
    expect([version(a), version(b)].sort()).toEqual([1, 2]);
    const res = await call("POST", "/v1/sandboxes", { template: "race" });
    const { id } = (await res.json()) as { id: string };
    expect((await exec(id, "pwd; stat -c %U .; cat word")).stdout).toBe(
      `/srv/race\nuser\n${version(a) === 2 ? "alpha" : "beta"}\n`,
    );
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await call("DELETE", "/v1/templates/race")).status).toBe(204);
  });

  it("copies a tree whole: every file, its mode, and names with quotes, spaces or non-ASCII", async () => {
    const files: Record<string, string> = {};
    const entries: { path: string; sha256: string; mode: number }[] = [];
    const add = (path: string, content: string, mode: number) => {
      files[sha256(content)] = Buffer.from(content).toString("base64");
      entries.push({ path, sha256: sha256(content), mode });
    };
    for (let i = 0; i < 120; i++) add(`many/f${i}.txt`, `file ${i}\n`, 0o644);
    add("bin/run.sh", "#!/bin/sh\necho ran\n", 0o755);
    add('odd "quoted" name.txt', "quoted\n", 0o600);
    add("日本語 ファイル.txt", "unicode\n", 0o640);
    const built = await build({
      name: "tree",
      memory_mb: 256,
      disk_size_mb: 256,
      files,
      steps: [{ type: "copy", dest: "/opt/tree", files: entries, user: "root" }],
    });
    expect(built.last, JSON.stringify(built.events.slice(-3))).toMatchObject({ type: "done" });
    const res = await call("POST", "/v1/sandboxes", { template: "tree" });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const check = `node -e '
      const fs = require("fs");
      const seen = JSON.parse(process.argv[1]).map(({ path, mode }) => {
        const st = fs.statSync("/opt/tree/" + path);
        return [path, (st.mode & 0o7777) === mode, fs.readFileSync("/opt/tree/" + path, "utf8")];
      });
      console.log(JSON.stringify(seen));
    ' '${JSON.stringify(entries.map(({ path, mode }) => ({ path, mode })))}'`;
    // As root: the copy made them root's, some readable by root only.
    const got = (await (
      await call("POST", `/v1/sandboxes/${id}/exec`, { cmd: check, user: "root" })
    ).json()) as { stdout: string; stderr: string; exit_code: number };
    expect(got.exit_code, got.stderr).toBe(0);
    const contentOf = Object.fromEntries(
      Object.entries(files).map(([hash, b64]) => [hash, Buffer.from(b64, "base64").toString()]),
    );
    expect(JSON.parse(got.stdout)).toEqual(entries.map((e) => [e.path, true, contentOf[e.sha256]]));
    expect((await exec(id, "/opt/tree/bin/run.sh")).stdout).toBe("ran\n");
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await call("DELETE", "/v1/templates/tree")).status).toBe(204);
  });

  it("fails a build on a failing step with its output and exit code, leaving no template", async () => {
    const before = th.host.embedded.agent.runtime.list().length;
    const failed = await build({
      name: "broken",
      steps: [{ type: "run", cmd: "echo about to fail; exit 7" }],
    });
    expect(failed.last).toMatchObject({
      type: "error",
      code: "step_failed",
      step: 0,
      exit_code: 7,
    });
    expect(String(failed.last.output)).toContain("about to fail");
    expect((await call("POST", "/v1/sandboxes", { template: "broken" })).status).toBe(404);
    expect(th.host.embedded.agent.runtime.list().length).toBe(before);
  });

  it("fails a build whose start command never becomes ready, with the command's output", async () => {
    const failed = await build({
      name: "bad-start",
      steps: [{ type: "start", cmd: "echo cannot serve; exit 3", ready: { port: 9000 } }],
    });
    expect(failed.last).toMatchObject({ type: "error", code: "start_failed" });
    expect(String(failed.last.message)).toContain("cannot serve");
    expect((await call("POST", "/v1/sandboxes", { template: "bad-start" })).status).toBe(404);
  });

  it("logs a step's UTF-8 output whole, however its output was cut into pieces", async () => {
    // An odd byte, then 2-byte characters: any cut at an even offset (envd's reads, the 16 KiB
    // pieces of the log) falls inside a character.
    const printed = `a${"é".repeat(100_000)}\n`;
    const built = await build({
      name: "unicode",
      steps: [
        { type: "run", cmd: `node -e "process.stdout.write('a' + 'é'.repeat(100000) + '\\n')"` },
      ],
    });
    expect(built.last.type, JSON.stringify(built.last)).toBe("done");
    const logged = built.events
      .filter((e) => e.type === "log" && e.index === 0)
      .map((e) => e.text)
      .join("");
    expect(logged.includes("\uFFFD")).toBe(false);
    expect(logged).toBe(printed);
    expect((await call("DELETE", "/v1/templates/unicode")).status).toBe(204);
  });

  it("drops step output a client leaves unread instead of queuing it, and says so", async () => {
    const printed = 32 * 1024 * 1024;
    const res = await call("POST", "/v1/templates/builds", {
      from: { template: TEMPLATE },
      name: "loud",
      steps: [{ type: "run", cmd: `yes | head -c ${printed}` }],
    });
    expect(res.status).toBe(200);
    // The log is not read until the build is over (its template listed).
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { templates } = (await (await call("GET", "/v1/templates")).json()) as {
        templates: { name: string }[];
      };
      if (templates.some((t) => t.name === "loud")) break;
      expect(Date.now(), "the build never finished").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 500));
    }
    const events = (await res.text())
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.at(-1), JSON.stringify(events.at(-1))).toMatchObject({ type: "done" });
    const sent = events
      .filter((e) => e.type === "log")
      .reduce((sum, e) => sum + Buffer.byteLength(String(e.text)), 0);
    // What was held for the client is bounded (a few MiB), not the step's whole output.
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(printed / 2);
    // Each gap is told, with its size: what was sent and what was dropped add up.
    const notes = events.filter((e) => e.type === "info" && String(e.message).includes("not sent"));
    expect(notes.length).toBeGreaterThan(0);
    const dropped = notes.reduce((sum, e) => sum + Number.parseInt(String(e.message), 10), 0);
    expect(sent + dropped).toBe(printed);
    expect((await call("DELETE", "/v1/templates/loud")).status).toBe(204);
  });

  it("cancels a running build", async () => {
    const before = th.host.embedded.agent.runtime.list().length;
    let cancel: Promise<Response> | undefined;
    const cancelled = await build(
      { name: "slow", steps: [{ type: "run", cmd: "echo started; sleep 120" }] },
      (e) => {
        if (e.type === "log" && String(e.text).includes("started")) {
          const buildId = (cancelledId ?? "") as string;
          cancel = Promise.resolve(call("DELETE", `/v1/templates/builds/${buildId}`));
        }
        if (e.type === "build") cancelledId = e.build_id as string;
      },
    );
    expect((await cancel)?.status).toBe(204);
    expect(cancelled.last).toMatchObject({ type: "error", code: "cancelled" });
    expect(cancelled.ms).toBeLessThan(100_000);
    expect((await call("DELETE", "/v1/templates/builds/nope")).status).toBe(404);
    expect((await call("POST", "/v1/sandboxes", { template: "slow" })).status).toBe(404);
    expect(th.host.embedded.agent.runtime.list().length).toBe(before);

    // In its start check too: the check's sandbox does not wait out its ready timeout. Its result
    // exists by then (the check starts a sandbox from it) but is no template yet: not listed.
    let cancelledAt = 0;
    let listedInCheck: string[] = [];
    const inCheck = await build(
      {
        name: "slow",
        steps: [
          { type: "start", cmd: "sleep 600", ready: { port: 9000 }, ready_timeout_ms: 60_000 },
        ],
      },
      (e) => {
        if (e.type === "build") cancelledId = e.build_id as string;
        if (e.type === "info" && String(e.message).includes("checking the start command")) {
          // Once the check's sandbox is being made (its create waits for the ready check).
          setTimeout(() => {
            cancel = call("GET", "/v1/templates").then(async (res) => {
              const { templates } = (await res.json()) as { templates: { name: string }[] };
              listedInCheck = templates.map((t) => t.name);
              cancelledAt = performance.now();
              return call("DELETE", `/v1/templates/builds/${cancelledId}`);
            });
          }, 2_000);
        }
      },
    );
    expect((await cancel)?.status).toBe(204);
    expect(inCheck.last).toMatchObject({ type: "error", code: "cancelled" });
    expect(listedInCheck.filter((name) => name.startsWith("slow"))).toEqual([]);
    expect(performance.now() - cancelledAt).toBeLessThan(20_000);
    expect((await call("POST", "/v1/sandboxes", { template: "slow" })).status).toBe(404);
    expect(th.host.embedded.agent.runtime.list().length).toBe(before);
  });
  let cancelledId: string | undefined;

  it("takes a template whose name looks like an id by that name", async () => {
    // 20 lowercase letters and digits, as row ids are: still the template's name.
    const name = "pythontemplate202601";
    const built = await build({ name, steps: [{ type: "run", cmd: "echo ok > /tmp/ok" }] });
    expect(built.last, JSON.stringify(built.last)).toMatchObject({ type: "done" });
    const res = await call("POST", "/v1/sandboxes", { template: name });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect((await exec(id, "cat /tmp/ok")).stdout).toBe("ok\n");
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await call("DELETE", `/v1/templates/${name}`)).status).toBe(204);
  });

  it("deletes a snapshot a build went from, with the cached layers only that build made on it", async () => {
    const res = await call("POST", "/v1/sandboxes", { template: TEMPLATE });
    const { id } = (await res.json()) as { id: string };
    await exec(id, "echo snapped > /home/user/snapped");
    const snap = await call("POST", "/v1/snapshots", { sandbox_id: id, name: "snap-base" });
    expect(snap.status, await snap.clone().text()).toBe(201);
    const snapId = ((await snap.json()) as { id: string }).id;
    // A build under the snapshot's name is refused before it starts, not after all its steps.
    const clash = await call("POST", "/v1/templates/builds", { name: "snap-base", steps: [] });
    expect(clash.status).toBe(409);
    expect(await clash.json()).toMatchObject({ code: "already_exists" });
    expect((await call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
    const layersOn = () =>
      th.database.handle.db
        .selectFrom("templates")
        .select("id")
        .where("kind", "=", "layer")
        .where("parentId", "=", snapId)
        .execute();

    // A built template of the team stands on it: refused, naming that template.
    const built = await build({
      name: "from-snap",
      from: { snapshot: "snap-base" },
      steps: [{ type: "run", cmd: "cat /home/user/snapped > /opt/seen", user: "root" }],
    });
    expect(built.last, JSON.stringify(built.last)).toMatchObject({ type: "done" });
    const refused = await call("DELETE", "/v1/snapshots/snap-base");
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      code: "failed_precondition",
      message: expect.stringContaining('template "from-snap"'),
    });
    expect((await call("DELETE", "/v1/templates/from-snap")).status).toBe(204);
    expect(await layersOn()).toEqual([]);

    // A failed build from it: its first step is cached as a layer on the snapshot.
    const failed = await build({
      name: "from-snap",
      from: { snapshot: "snap-base" },
      steps: [
        { type: "run", cmd: "echo more > /opt/more", user: "root" },
        { type: "run", cmd: "exit 3" },
      ],
    });
    expect(failed.last).toMatchObject({ type: "error", code: "step_failed", step: 1 });
    const [layer] = await layersOn();
    expect(layer).toBeDefined();

    // Only cached layers stand on it now: they go with it, in the database and on the agent.
    const deleted = await call("DELETE", "/v1/snapshots/snap-base");
    expect(deleted.status, await deleted.clone().text()).toBe(204);
    expect(await layersOn()).toEqual([]);
    const onAgent = await readdir(join(th.agentDir, "templates"));
    expect(onAgent).not.toContain(snapId);
    expect(onAgent).not.toContain(layer?.id);
  });

  it("deletes every version of a template by name; another team cannot see it", async () => {
    const other = await newTeamKey(th.host.app);
    const theirs = await th.host.app.request("/v1/sandboxes", {
      method: "POST",
      headers: { ...other, "content-type": "application/json" },
      body: JSON.stringify({ template: "web" }),
    });
    expect(theirs.status).not.toBe(201);
    expect((await call("DELETE", "/v1/templates/web")).status).toBe(204);
    expect((await (await call("GET", "/v1/templates")).json()) as unknown).toEqual({
      templates: [],
    });
    expect((await call("DELETE", "/v1/templates/web")).status).toBe(404);
  });
});
