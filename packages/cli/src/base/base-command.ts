import { Command, Errors, Flags, type Interfaces } from "@oclif/core";
import { describeError, type ErrorContext } from "../errors/index.js";

export type FlagsOf<T extends typeof Command> = Interfaces.InferredFlags<
  T["baseFlags"] & T["flags"]
>;
export type ArgsOf<T extends typeof Command> = Interfaces.InferredArgs<T["args"]>;

/**
 * Every command's parent: parses once, and owns the one error path — a short message and the
 * next step on stderr, a non-zero exit, the stack only with --debug.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    debug: Flags.boolean({
      description: "Print stack traces on errors.",
      env: "WRENN_DEBUG",
      helpGroup: "GLOBAL",
    }),
  };

  protected flags!: FlagsOf<T>;
  protected args!: ArgsOf<T>;
  /** Arguments past the declared ones (commands with `strict = false`). */
  protected rest: string[] = [];
  /** Filled in as the command learns it, so messages can say which server failed. */
  protected errorContext: ErrorContext = {};

  override async init(): Promise<void> {
    await super.init();
    const ctor = this.ctor as T;
    const { args, flags, argv } = await this.parse({
      flags: ctor.flags,
      baseFlags: ctor.baseFlags,
      args: ctor.args,
      strict: ctor.strict,
      enableJsonFlag: ctor.enableJsonFlag,
    }).catch((err: unknown) => {
      // Parsing ran: oclif's "did not parse its arguments" warning (shown when NODE_ENV is
      // development or test) would be wrong.
      this.parsed = true;
      // An argument's own check (`port` past 65535) throws a plain Error: a usage mistake too.
      if (err instanceof Errors.CLIError || !(err instanceof Error)) throw err;
      throw new Errors.CLIError(err.message, { exit: 2 });
    });
    this.flags = flags as FlagsOf<T>;
    this.args = args as ArgsOf<T>;
    this.rest = (argv as string[]).slice(Object.keys(ctor.args ?? {}).length);
  }

  override async catch(err: Error & { exitCode?: number }): Promise<void> {
    if (err instanceof Errors.ExitError) {
      process.exitCode = err.oclif.exit;
      return;
    }
    // Read by hand: the error may come from parsing itself, before `this.flags` exists.
    const debug =
      this.argv.includes("--debug") || /^(1|true|yes)$/i.test(process.env.WRENN_DEBUG ?? "");
    // Usage mistakes caught by oclif's parser (missing args, unknown flags).
    if (err instanceof Errors.CLIError) {
      process.exitCode = err.oclif.exit ?? 2;
      // oclif's own "See more help with --help" line is replaced by the exact command.
      const lines = err.message
        .split("\n")
        .filter((l) => l.trim() && !l.startsWith("See more help"));
      process.stderr.write(`Error: ${lines.join("\n  ")}\n`);
      process.stderr.write(`  → See \`wrenn ${this.id?.replaceAll(":", " ") ?? ""} --help\`.\n`);
      if (debug) process.stderr.write(`${err.stack}\n`);
      return;
    }
    const report = describeError(err, this.errorContext);
    process.exitCode = report.exitCode;
    process.stderr.write(`Error: ${report.message}\n`);
    if (report.hint) process.stderr.write(`  → ${report.hint}\n`);
    if (debug) process.stderr.write(`${err.stack ?? err}\n`);
    else if (report.code === "internal")
      process.stderr.write("  → Run again with --debug for the stack trace.\n");
  }
}
