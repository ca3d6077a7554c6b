import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  checkRecipe,
  commandOf,
  layerKey,
  type Recipe,
  type RecipeStep,
  type StepContext,
} from "./recipe.js";

const ctx: StepContext = { envs: {}, workdir: "/srv", user: "user" };
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("template recipes", () => {
  it("turns package steps into commands run as the right user", () => {
    expect(commandOf({ type: "apt_install", packages: ["jq", "curl=7.88*"] }, 0, ctx)).toEqual({
      cmd: expect.stringContaining(
        "apt-get install -y -q --no-install-recommends 'jq' 'curl=7.88*'",
      ),
      user: "root",
    });
    expect(commandOf({ type: "pip_install", packages: ["numpy>=1.26"] }, 0, ctx)?.cmd).toBe(
      "pip3 install --no-cache-dir --break-system-packages 'numpy>=1.26'",
    );
    expect(
      commandOf({ type: "npm_install", packages: ["@scope/pkg@1"], global: true }, 0, ctx),
    ).toEqual({
      cmd: "npm install -g --no-fund --no-audit '@scope/pkg@1'",
      user: "root",
    });
    expect(commandOf({ type: "npm_install", packages: ["left-pad"] }, 0, ctx)?.user).toBe("user");
    expect(commandOf({ type: "run", cmd: "make" }, 0, ctx)).toEqual({ cmd: "make", user: "user" });
    expect(commandOf({ type: "env", envs: { A: "1" } }, 0, ctx)).toBeUndefined();
  });

  it("refuses package names that would be shell", () => {
    for (const name of ["jq; rm -rf /", "$(id)", "a b", "`x`", "-o=evil"]) {
      expect(() => commandOf({ type: "apt_install", packages: [name] }, 3, ctx)).toThrow(
        /steps\[3\]/,
      );
    }
  });

  it("keys a layer by its parent, the step, the context it runs in and the files it copies", () => {
    const step: RecipeStep = { type: "run", cmd: "make" };
    const base = layerKey("base:base", step, ctx);
    expect(layerKey("base:base", step, ctx)).toBe(base);
    expect(layerKey("row:x", step, ctx)).not.toBe(base);
    expect(layerKey("base:base", { type: "run", cmd: "make all" }, ctx)).not.toBe(base);
    expect(layerKey("base:base", step, { ...ctx, envs: { A: "1" } })).not.toBe(base);
    const copy = (hash: string): RecipeStep => ({
      type: "copy",
      dest: "/a",
      files: [{ path: "", sha256: hash }],
    });
    expect(layerKey("p", copy(sha("one")), ctx)).not.toBe(layerKey("p", copy(sha("two")), ctx));
  });

  it("checks copies against the files sent, paths, and one start command", () => {
    const recipe = (steps: RecipeStep[], files: Record<string, Buffer> = {}): Recipe => ({
      name: "t",
      from: { template: "base" },
      steps,
      files,
    });
    const content = Buffer.from("hello");
    const good = {
      type: "copy" as const,
      dest: "/opt/x",
      files: [{ path: "", sha256: sha("hello") }],
    };
    expect(() => checkRecipe(recipe([good], { [sha("hello")]: content }))).not.toThrow();
    expect(() => checkRecipe(recipe([good]))).toThrow(/not in "files"/);
    expect(() => checkRecipe(recipe([good], { [sha("hello")]: Buffer.from("other") }))).toThrow(
      /does not match/,
    );
    expect(() =>
      checkRecipe(
        recipe([{ ...good, files: [{ path: "../x", sha256: sha("hello") }] }], {
          [sha("hello")]: content,
        }),
      ),
    ).toThrow(/relative/);
    expect(() => checkRecipe(recipe([{ type: "workdir", path: "rel" }]))).toThrow(/absolute/);
    expect(() =>
      checkRecipe(
        recipe([
          { type: "start", cmd: "a" },
          { type: "start", cmd: "b" },
        ]),
      ),
    ).toThrow(/one start/);
  });
});
