import { setTimeout as sleep } from "node:timers/promises";
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { Confirm } from "./confirm.js";
import { TextPrompt } from "./text-prompt.js";

// Ink reads stdin on the next tick after mount and after every key.
const tick = () => sleep(20);

describe("<Confirm>", () => {
  it("answers yes to y", async () => {
    const answers: boolean[] = [];
    const { stdin, lastFrame, frames } = render(
      <Confirm message="Kill all 3 sandbox(es)?" onAnswer={(a) => answers.push(a)} />,
    );
    await tick();
    expect(lastFrame()).toContain("Kill all 3 sandbox(es)? (y/N)");
    stdin.write("y");
    await tick();
    expect(answers).toEqual([true]);
    // Drawn before the prompt exits (what remains after exit differs in and out of CI).
    expect(frames.some((f) => f.includes("(y/N) yes"))).toBe(true);
  });

  it("takes only the first of keys typed before a render", async () => {
    const answers: boolean[] = [];
    const { stdin } = render(<Confirm message="Sure?" onAnswer={(a) => answers.push(a)} />);
    await tick();
    stdin.write("y");
    stdin.write("\r");
    await tick();
    expect(answers).toEqual([true]);
  });

  it("defaults to no on Enter and ignores keys after answering", async () => {
    const answers: boolean[] = [];
    const { stdin } = render(<Confirm message="Sure?" onAnswer={(a) => answers.push(a)} />);
    await tick();
    stdin.write("x");
    await tick();
    expect(answers).toEqual([]);
    stdin.write("\r");
    await tick();
    stdin.write("y");
    await tick();
    expect(answers).toEqual([false]);
  });
});

describe("<TextPrompt>", () => {
  it("masks what is typed, handles backspace and submits on Enter", async () => {
    const values: (string | undefined)[] = [];
    const { stdin, lastFrame } = render(
      <TextPrompt label="API key:" mask onSubmit={(v) => values.push(v)} />,
    );
    await tick();
    stdin.write("wrn_abcX");
    await tick();
    stdin.write("\x7f");
    await tick();
    expect(lastFrame()).toContain("API key: •••••••");
    expect(lastFrame()).not.toContain("wrn_");
    stdin.write("\r");
    await tick();
    expect(values).toEqual(["wrn_abc"]);
  });

  it("keeps keys that arrive faster than renders (a paste, then Enter)", async () => {
    const values: (string | undefined)[] = [];
    const { stdin } = render(<TextPrompt label="Key:" onSubmit={(v) => values.push(v)} />);
    await tick();
    stdin.write("pasted");
    stdin.write("\r");
    stdin.write("\r");
    await tick();
    expect(values).toEqual(["pasted"]);
  });

  it("cancels on Escape", async () => {
    const values: (string | undefined)[] = [];
    const { stdin } = render(<TextPrompt label="Name:" onSubmit={(v) => values.push(v)} />);
    await tick();
    stdin.write("abc");
    await tick();
    stdin.write("\x1b");
    await tick();
    expect(values).toEqual([undefined]);
  });
});
