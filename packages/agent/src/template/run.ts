import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { AgentError } from "../errors.js";

export interface RunOptions {
  /** Called with each line the command writes (stdout and stderr). */
  onLine?: (line: string) => void;
}

/** Runs a build step; resolves with its stdout, rejects with the end of its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      opts.onLine?.(line);
    };
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    child.once("error", (err) =>
      reject(new AgentError("internal", `${cmd} failed to start`, { cause: err })),
    );
    child.once("close", (code, signal) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new AgentError(
            "internal",
            `${cmd} ${args.slice(0, 3).join(" ")} failed (${signal ?? code}): ${tail.join("\n")}`,
          ),
        );
    });
  });
}
