// Ink and React load only when a prompt or progress bar is actually drawn: importing them costs
// more than the rest of a command's startup. No JSX here, so that not even React's JSX runtime
// loads with the commands that import this file.

import isInCi from "is-in-ci";

/** Prompts and progress draw on stderr so stdout stays clean for `ID=$(wrenn …)` and pipes. */
const options = { stdout: process.stderr, exitOnCtrlC: false, patchConsole: false } as const;

/**
 * Whether prompting is allowed at all: both ends must be a terminal, and not in CI, where Ink
 * draws only a component's last frame (a question would never show before its answer).
 */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !isInCi;
}

export async function confirm(message: string): Promise<boolean> {
  const [{ render }, { createElement }, { Confirm }] = await Promise.all([
    import("ink"),
    import("react"),
    import("./confirm.js"),
  ]);
  let yes = false;
  const app = render(
    createElement(Confirm, { message, onAnswer: (a: boolean) => (yes = a) }),
    options,
  );
  await app.waitUntilExit();
  return yes;
}

export async function promptText(label: string, mask = false): Promise<string | undefined> {
  const [{ render }, { createElement }, { TextPrompt }] = await Promise.all([
    import("ink"),
    import("react"),
    import("./text-prompt.js"),
  ]);
  let value: string | undefined;
  const app = render(
    createElement(TextPrompt, { label, mask, onSubmit: (v: string) => (value = v) }),
    options,
  );
  await app.waitUntilExit();
  return value;
}

export interface Progress {
  /** Bytes moved so far and what is moving now. */
  update(done: number, label: string): void;
  stop(): void;
}

/** An Ink progress bar redrawn ten times a second; a no-op when stderr is not a terminal. */
export async function startProgress(total: number): Promise<Progress> {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const [{ render }, { createElement }, { ProgressBar }] = await Promise.all([
    import("ink"),
    import("react"),
    import("./progress-bar.js"),
  ]);
  const started = Date.now();
  let done = 0;
  let label = "";
  const view = () =>
    createElement(ProgressBar, { label, done, total, elapsedMs: Date.now() - started });
  const app = render(view(), options);
  const timer = setInterval(() => app.rerender(view()), 100);
  return {
    update(bytes, current) {
      done = bytes;
      label = current;
    },
    stop() {
      clearInterval(timer);
      app.rerender(view());
      app.unmount();
    },
  };
}
