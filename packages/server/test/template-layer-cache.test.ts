import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildResult, startTemplateHost, type TemplateHost } from "./helpers/template-host.js";

// The template build layer cache, bounded, for real: builds on `test-minimal` through the API
// of a single-host server whose cache keeps 2 layers (WRENN_TEMPLATE_CACHE_LAYERS), checked in
// the database and in the agent's templates directory. Layers are the team's rows of kind
// `layer`; each run step of a build makes one, named on the agent by its row id.

const rootSkip = process.getuid?.() === 0 ? undefined : "needs root (namespaces, mounts, cgroups)";
if (rootSkip) console.warn(`layer cache suite skipped: ${rootSkip}`);

describe.skipIf(rootSkip)("template build layer cache", { timeout: 300_000 }, () => {
  let th: TemplateHost;

  beforeAll(async () => {
    th = await startTemplateHost({
      template: "test-minimal",
      env: { WRENN_TEMPLATE_CACHE_LAYERS: "2" },
    });
  }, 180_000);

  afterAll(async () => {
    if (th) expect(await th.close()).toEqual([]);
  }, 120_000);

  /** Run steps as root, each writing its word into /opt: one layer per step. */
  const steps = (...words: string[]) =>
    words.map((w) => ({ type: "run", cmd: `echo ${w} > /opt/${w}`, user: "root" }));

  const expectBuilt = (result: BuildResult, name: string) =>
    expect(result.last, JSON.stringify(result.events.slice(-3))).toMatchObject({
      type: "done",
      template: { name },
    });

  /** Each cached layer's word (the newest file of /opt in it), by its cache key. */
  const words = new Map<string, string>();
  /** Every layer row seen. */
  const known = new Set<string>();
  const layers = () =>
    th.database.handle.db
      .selectFrom("templates")
      .select(["id", "cacheKey"])
      .where("kind", "=", "layer")
      .execute();
  /** Which words' layers exist, in the database and (the same) on the agent. */
  const cached = async (): Promise<string[]> => {
    const rows = await layers();
    const onAgent = new Set(await readdir(join(th.agentDir, "templates")));
    for (const r of rows) expect(onAgent.has(r.id), `layer ${r.id} on the agent`).toBe(true);
    // Every row the cache removed is gone from the agent too.
    for (const id of known) if (!rows.some((r) => r.id === id)) expect(onAgent.has(id)).toBe(false);
    return rows.map((r) => words.get(r.cacheKey ?? "") ?? `?${r.id}`).sort();
  };

  /** Builds, then names every layer row that appeared by the word its step wrote. */
  const build = async (
    name: string,
    ws: string[],
    onEvent?: (e: Record<string, unknown>) => void,
  ) => {
    const before = new Set((await layers()).map((r) => r.id));
    const result = await th.build({ name, steps: steps(...ws) }, onEvent);
    const made = (await layers()).filter((r) => !before.has(r.id));
    for (const r of made) known.add(r.id);
    return { result, made };
  };
  /** Which word a new layer is: the one file that layer holds and its parent does not. */
  const nameLayers = async (made: { id: string; cacheKey: string | null }[], ws: string[]) => {
    for (const r of made) {
      const files = await readdir(join(th.agentDir, "templates", r.id, "rootfs", "opt"));
      // A layer of a build sandbox holds every step so far: its word is the newest of them.
      const word = ws.filter((w) => files.includes(w)).at(-1);
      if (word && r.cacheKey) words.set(r.cacheKey, word);
    }
  };

  /** A sandbox of the template has every word's file. */
  const expectFiles = async (template: string, ws: string[]) => {
    const res = await th.call("POST", "/v1/sandboxes", { template });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const cat = await th.exec(id, `cat ${ws.map((w) => `/opt/${w}`).join(" ")}`);
    expect(cat).toMatchObject({ exit_code: 0, stdout: ws.map((w) => `${w}\n`).join("") });
    expect((await th.call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
  };

  it("evicts the least recently used layers past its budget, never one a template stacks on", async () => {
    // a1, a2: two layers, within the budget.
    const one = await build("one", ["a1", "a2"]);
    expectBuilt(one.result, "one");
    await nameLayers(one.made, ["a1", "a2"]);
    expect(await cached()).toEqual(["a1", "a2"]);

    // a1 reused (and so used now), b2 made on it: a2 is the least recently used and goes.
    const two = await build("two", ["a1", "b2"]);
    expectBuilt(two.result, "two");
    expect(two.result.events.filter((e) => e.type === "step").map((e) => e.cached)).toEqual([
      true,
      false,
    ]);
    await nameLayers(two.made, ["a1", "b2"]);
    expect(await cached()).toEqual(["a1", "b2"]);

    // c1, c2 made: b2 and then c1 go (least recently used first); a1 is older than both but
    // template `two` stacks on it, so it stays past the budget's order.
    const three = await build("three", ["c1", "c2"]);
    expectBuilt(three.result, "three");
    await nameLayers(three.made, ["c1", "c2"]);
    expect(await cached()).toEqual(["a1", "c2"]);

    // Every template still starts with its files.
    await expectFiles("one", ["a1", "a2"]);
    await expectFiles("two", ["a1", "b2"]);
    await expectFiles("three", ["c1", "c2"]);

    // A rebuild of `one` finds a1 still cached, not a2 (evicted): it redoes that step only.
    const again = await build("one", ["a1", "a2"]);
    expect(again.result.events.filter((e) => e.type === "step").map((e) => e.cached)).toEqual([
      true,
      false,
    ]);
    await nameLayers(again.made, ["a1", "a2"]);
    expect(await cached()).toEqual(["a1", "a2"]);
  });

  it("keeps a layer a running build holds, and lets it go once that build is over", async () => {
    // `held` makes d1, then waits in its second step until told to go on.
    let waiting: () => void = () => {};
    const inStep2 = new Promise<void>((done) => {
      waiting = done;
    });
    const held = th.build(
      {
        name: "held",
        steps: [
          ...steps("d1"),
          {
            type: "run",
            cmd: "echo waiting; i=0; while [ ! -e /tmp/go ] && [ $i -lt 1200 ]; do sleep 0.2; i=$((i+1)); done; echo d2 > /opt/d2",
            user: "root",
          },
        ],
      },
      (e) => {
        if (e.type === "log" && String(e.text).includes("waiting")) waiting();
      },
    );
    await inStep2;
    const d1 = (await layers()).filter((r) => !known.has(r.id));
    expect(d1).toHaveLength(1);
    await nameLayers(d1, ["d1"]);
    known.add(d1[0]!.id);
    // Another build ends meanwhile. Its trim takes a2 (the least recently used), then passes
    // over d1 (older than e1, but held) and takes e1.
    const other = await build("other", ["e1"]);
    expectBuilt(other.result, "other");
    await nameLayers(other.made, ["e1"]);
    expect(await cached()).toEqual(["a1", "d1"]);

    // Let `held` finish: d1 is free again, and the cache is back within its budget.
    const { sandboxes } = (await (await th.call("GET", "/v1/sandboxes?state=running")).json()) as {
      sandboxes: { id: string; metadata: Record<string, string> }[];
    };
    const buildSandbox = sandboxes.find((s) => s.metadata["wrenn.template-build"] === "held")?.id;
    expect(buildSandbox).toBeDefined();
    expect(
      (await th.call("POST", `/v1/sandboxes/${buildSandbox}/exec`, { cmd: "touch /tmp/go" }))
        .status,
    ).toBe(200);
    const done = await held;
    expectBuilt(done, "held");
    const d2 = (await layers()).filter((r) => !known.has(r.id));
    for (const r of d2) known.add(r.id);
    await nameLayers(d2, ["d1", "d2"]);
    expect(await cached()).toEqual(["a1", "d2"]);
    await expectFiles("held", ["d1", "d2"]);
  });

  it("deleting a template takes the layers only its builds went through", async () => {
    // Their layers are gone already (the budget took them): nothing changes.
    for (const name of ["other", "three"]) {
      expect((await th.call("DELETE", `/v1/templates/${name}`)).status).toBe(204);
    }
    expect(await cached()).toEqual(["a1", "d2"]);
    // d2 fits the budget, but only `held` went through it.
    expect((await th.call("DELETE", "/v1/templates/held")).status).toBe(204);
    expect(await cached()).toEqual(["a1"]);
    // `one` went through a1, and so did `two` (which also stacks on it): it stays.
    expect((await th.call("DELETE", "/v1/templates/one")).status).toBe(204);
    expect(await cached()).toEqual(["a1"]);
    await expectFiles("two", ["a1", "b2"]);
    expect((await th.call("DELETE", "/v1/templates/two")).status).toBe(204);
    expect(await cached()).toEqual([]);
    expect(await readdir(join(th.agentDir, "templates"))).toEqual(["test-minimal"]);
  });

  it("deletes a template whole or not at all, with the layers of builds from it", async () => {
    const listed = async () => {
      const { templates } = (await (await th.call("GET", "/v1/templates")).json()) as {
        templates: { name: string; version: number }[];
      };
      return templates.map((t) => `${t.name}@${t.version}`).sort();
    };
    expectBuilt((await build("tbase", ["t1"])).result, "tbase");
    expectBuilt((await build("tbase", ["t2"])).result, "tbase");
    const fromBase = (name: string, extra: Record<string, unknown>[] = []) =>
      th.build({ name, from: { template: "tbase" }, steps: [...steps("k1"), ...extra] });
    expectBuilt(await fromBase("kid"), "kid");

    // `kid` was built from its newest version: refused, naming it, and no version goes.
    const refused = await th.call("DELETE", "/v1/templates/tbase");
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      code: "failed_precondition",
      message: expect.stringContaining('template "kid"'),
    });
    expect(await listed()).toEqual(["kid@1", "tbase@1", "tbase@2"]);
    expect((await th.call("DELETE", "/v1/templates/kid")).status).toBe(204);

    // A sandbox of its newest version: refused, naming it, and no version goes.
    const res = await th.call("POST", "/v1/sandboxes", { template: "tbase" });
    const { id } = (await res.json()) as { id: string };
    const busy = await th.call("DELETE", "/v1/templates/tbase");
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { message: string }).message).toContain(id);
    expect(await listed()).toEqual(["tbase@1", "tbase@2"]);
    expect((await th.call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);

    // A failed build from it leaves a cached layer on it: that goes with it.
    const failed = await fromBase("kid", [{ type: "run", cmd: "exit 3" }]);
    expect(failed.last).toMatchObject({ type: "error", code: "step_failed" });
    const deleted = await th.call("DELETE", "/v1/templates/tbase");
    expect(deleted.status, await deleted.clone().text()).toBe(204);
    expect(await listed()).toEqual([]);
    expect(await layers()).toEqual([]);
    expect(await readdir(join(th.agentDir, "templates"))).toEqual(["test-minimal"]);
  });
});
