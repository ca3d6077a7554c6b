import { Sandbox } from "@wrenn/sdk";

// A command that takes a while and prints as it goes, on both streams.
const LONG_COMMAND = 'for i in 1 2 3 4 5; do echo "step $i of 5"; sleep 0.3; done; echo "done" >&2';

const sandbox = await Sandbox.create();
try {
  // 1. Callbacks: every chunk arrives while the command still runs; run() resolves at the end.
  const started = performance.now();
  let firstChunkMs: number | undefined;
  const result = await sandbox.commands.run(LONG_COMMAND, {
    onStdout: (text) => {
      firstChunkMs ??= performance.now() - started;
      process.stdout.write(`[stdout +${ms(started)}] ${text}`);
    },
    onStderr: (text) => process.stdout.write(`[stderr +${ms(started)}] ${text}`),
  });
  const totalMs = performance.now() - started;
  console.log(
    `callbacks: exit code ${result.exitCode}, first output after ${Math.round(firstChunkMs ?? totalMs)} ms, finished after ${Math.round(totalMs)} ms`,
  );

  // 2. A background command is a handle: iterate over its output, then wait for its result.
  const handle = await sandbox.commands.run(LONG_COMMAND, { background: true });
  console.log(`background: pid ${handle.pid}`);
  for await (const chunk of handle) process.stdout.write(`[${chunk.stream}] ${chunk.text()}`);
  const end = await handle.wait();
  console.log(`iteration: exit code ${end.exitCode}, ${end.stdout.split("\n").length - 1} lines`);
} finally {
  await sandbox.kill();
}

function ms(since: number): string {
  return `${Math.round(performance.now() - since)}ms`.padStart(6);
}
