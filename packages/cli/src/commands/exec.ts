import { Args, Flags } from "@oclif/core";
import { ApiCommand } from "../base/index.js";
import { CliError } from "../errors/index.js";
import { commandLine, runInteractive, runStreaming } from "../services/exec.js";
import { parsePairs } from "../services/format.js";
import { attach } from "../services/sandboxes.js";

export default class Exec extends ApiCommand<typeof Exec> {
  static override summary = "Run a command in a sandbox and exit with its exit code.";
  static override description = [
    "Output streams to stdout and stderr as it is produced. When stdin is not a terminal it is piped to the command. With -t (usually -it) you get an interactive terminal: raw keys, window resizes followed, the login shell when no command is given.",
    "One word after -- is shell code (`-- 'ls | wc -l'`); several are passed as words.",
  ].join("\n\n");
  static override strict = false;
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };
  static override examples = [
    "<%= config.bin %> exec sbx1 -- uname -a",
    "echo hi | <%= config.bin %> exec sbx1 -- cat",
    "<%= config.bin %> exec -it sbx1",
    "<%= config.bin %> exec -it sbx1 -- python3",
  ];
  static override flags = {
    interactive: Flags.boolean({
      char: "i",
      description: "Forward stdin even when it is a terminal.",
    }),
    tty: Flags.boolean({ char: "t", description: "Interactive terminal session (PTY, raw mode)." }),
    cwd: Flags.string({
      char: "w",
      description: "Working directory in the sandbox.",
      env: "WRENN_EXEC_CWD",
    }),
    user: Flags.string({
      char: "u",
      description: "User to run as (default: user; root on request).",
      env: "WRENN_EXEC_USER",
    }),
    env: Flags.string({
      char: "e",
      description: "KEY=value for the command (repeatable).",
      multiple: true,
      multipleNonGreedy: true,
    }),
  };

  async run(): Promise<void> {
    const words = this.rest;
    if (words.length === 0 && !this.flags.tty)
      throw new CliError(
        "invalid_argument",
        "No command given.",
        "Pass it after --: `wrenn exec <id> -- ls -la`, or open a shell with `wrenn exec -it <id>`.",
      );
    const options = {
      ...(this.flags.cwd ? { cwd: this.flags.cwd } : {}),
      ...(this.flags.user ? { user: this.flags.user } : {}),
      ...(this.flags.env?.length ? { envs: parsePairs(this.flags.env, "env") } : {}),
    };
    const sandbox = await attach(this.args.id, await this.connection());
    const code = this.flags.tty
      ? await runInteractive(sandbox, words.length ? commandLine(words) : undefined, options)
      : await runStreaming(sandbox, commandLine(words), {
          ...options,
          pipeStdin: this.flags.interactive || !process.stdin.isTTY,
        });
    if (code !== 0) this.exit(code);
  }
}
