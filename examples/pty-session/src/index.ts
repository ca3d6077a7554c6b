import { Sandbox } from "@wrenn/sdk";

// A scripted "user" at an interactive shell: type a line, wait for what it should print, go on.
// Everything the terminal showed is printed at the end.

const sandbox = await Sandbox.create();
try {
  const decoder = new TextDecoder();
  let screen = "";
  let changed: () => void = () => {};
  const terminal = await sandbox.pty.create({
    cols: 80,
    rows: 24,
    onData: (data) => {
      screen += decoder.decode(data, { stream: true });
      changed();
    },
  });
  console.log(`shell started in a pty, pid ${terminal.pid}`);

  /** Types a line, then waits until the terminal shows `expect` after what was there before. */
  const type = async (line: string, expect: RegExp) => {
    const from = screen.length;
    await terminal.sendInput(`${line}\n`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${expect} after typing ${JSON.stringify(line)}`)),
        10_000,
      );
      changed = () => {
        if (!expect.test(screen.slice(from))) return;
        clearTimeout(timer);
        resolve();
      };
      changed();
    });
  };

  // The echoed input holds "$((6*7))", not "42": matching "answer=42" proves the shell ran it.
  await type("echo answer=$((6*7))", /answer=42/);
  await type('echo "tty=$(tty)"', /tty=\/dev\/pts\/\d+/);
  await type('echo "size=$(stty size)"', /size=24 80/);
  await terminal.resize({ cols: 100, rows: 30 });
  await type('echo "size=$(stty size)"', /size=30 100/);
  await type("cd /tmp && echo here=$PWD", /here=\/tmp/);
  await terminal.sendInput("exit\n");
  const end = await terminal.wait();

  console.log("---- what the terminal showed (escape sequences removed) ----");
  console.log(stripAnsi(screen).replace(/\r/g, "").trimEnd());
  console.log("---- end ----");
  console.log(`shell exited with code ${end.exitCode}`);
} finally {
  await sandbox.kill();
}

/** Drops terminal escape sequences (colours, bracketed paste, window titles) for plain output. */
function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escape sequences start with ESC
  return text.replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]/g, "");
}
