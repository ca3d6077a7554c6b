import { Sandbox, TimeoutError } from "@wrenn/sdk";

// A code-execution tool for an AI agent. The model writes Python; the tool runs it in a sandbox
// and hands back what a model needs to read the outcome: stdout, stderr and the exit code.
// No model is called here: MODEL_TURNS stands in for the code a model would have written.

/** The tool as most LLM APIs describe one (name, description, JSON schema of the arguments). */
const runPythonTool = {
  name: "run_python",
  description:
    "Run a Python 3 program in an isolated Linux sandbox. Print what you want to see. " +
    "Files persist between calls in the same conversation.",
  parameters: {
    type: "object",
    properties: { code: { type: "string", description: "The complete Python program" } },
    required: ["code"],
  },
} as const;

interface ToolResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** How long model code may run; agents write infinite loops and wait for input that never comes. */
const TIME_LIMIT_MS = 5_000;

/** Runs model-written Python in `sandbox`; a failing program is a result, not an exception. */
async function runPython(sandbox: Sandbox, code: string): Promise<ToolResult> {
  // Written to a file rather than passed with -c: tracebacks then name real line numbers.
  await sandbox.files.write("/tmp/model_code.py", code);
  try {
    const result = await sandbox.commands.run("python3 /tmp/model_code.py", {
      cwd: "/home/user",
      throwOnError: false,
      timeoutMs: TIME_LIMIT_MS,
    });
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
  } catch (err) {
    // The sandbox killed it; the model is told so, in the terms of a shell's `timeout` (124).
    if (!(err instanceof TimeoutError)) throw err;
    return {
      stdout: "",
      stderr: `killed: ran longer than the ${TIME_LIMIT_MS / 1000} s limit`,
      exitCode: 124,
    };
  }
}

// Stand-ins for model output: a computation, a program that fails, one using an earlier call's
// file (one sandbox per conversation keeps state between tool calls), and one that never ends.
const MODEL_TURNS = [
  `
import math
primes = [n for n in range(2, 100) if all(n % d for d in range(2, math.isqrt(n) + 1))]
with open("primes.txt", "w") as f:
    f.write(",".join(map(str, primes)))
print(sum(primes))
`,
  `
values = [3, 0]
print(values[0] / values[1])
`,
  `
with open("primes.txt") as f:
    primes = [int(p) for p in f.read().split(",")]
print(len(primes), max(primes))
`,
  `
import time
while True:
    time.sleep(1)
`,
];

const sandbox = await Sandbox.create({ metadata: { purpose: "agent-tool-example" } });
try {
  for (const code of MODEL_TURNS) {
    const result = await runPython(sandbox, code);
    // What goes back to the model as the tool's answer.
    console.log(JSON.stringify({ tool: runPythonTool.name, result }));
  }
} finally {
  await sandbox.kill();
}
