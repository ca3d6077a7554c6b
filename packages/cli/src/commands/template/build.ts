import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { DockerfileError, Template, type TemplateBuildEvent } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";

export default class TemplateBuild extends ApiCommand<typeof TemplateBuild> {
  static override summary = "Build a template from a Dockerfile.";
  static override description =
    "Takes FROM wrenn/<template> (or debian:bookworm for `base`), RUN, COPY/ADD of local files, ENV, WORKDIR, USER, ARG, and CMD/ENTRYPOINT as the start command. Each step is cached: a rebuild redoes only the steps from the first that changed. Sandboxes start from it with `wrenn sandbox create --template <name>`.";
  static override enableJsonFlag = true;
  static override flags = {
    file: Flags.string({ char: "f", description: "The Dockerfile.", default: "Dockerfile" }),
    name: Flags.string({ description: "Template name.", required: true }),
    "build-arg": Flags.string({ description: "NAME=value for an ARG.", multiple: true }),
    "ready-port": Flags.integer({
      description: "The start command is ready once this port answers.",
      min: 1,
      max: 65535,
    }),
    cpu: Flags.integer({ description: "vCPUs of the build and of its sandboxes.", min: 1 }),
    memory: Flags.integer({ description: "Memory in MiB.", min: 128 }),
    disk: Flags.integer({ description: "Disk size in MiB.", min: 128 }),
  };

  async run(): Promise<Record<string, unknown> | undefined> {
    const path = resolve(this.flags.file);
    const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new CliError(
        "not_found",
        `Cannot read ${path}: ${err.code ?? err.message}.`,
        "Pass the Dockerfile with -f.",
      );
    });
    const buildArgs = Object.fromEntries(
      (this.flags["build-arg"] ?? []).map((pair) => {
        const at = pair.indexOf("=");
        if (at <= 0)
          throw new CliError("invalid_argument", `--build-arg ${pair}: expected NAME=value.`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
    );
    let template: Template;
    try {
      template = Template.fromDockerfile(text, { contextDir: dirname(path), buildArgs });
    } catch (err) {
      if (err instanceof DockerfileError) {
        throw new CliError(
          "invalid_argument",
          `${this.flags.file}: ${err.message.replace(/^Dockerfile /, "")}.`,
        );
      }
      throw err;
    }
    const port = this.flags["ready-port"];
    if (port) {
      const start = template.steps.find((s) => s.type === "start");
      if (start?.type !== "start") {
        throw new CliError(
          "invalid_argument",
          "--ready-port needs a CMD or ENTRYPOINT in the Dockerfile.",
        );
      }
      start.ready = { port };
    }
    const quiet = this.jsonEnabled();
    const info = await Template.build(template, {
      ...(await this.connection()),
      name: this.flags.name,
      ...(this.flags.cpu ? { cpuCount: this.flags.cpu } : {}),
      ...(this.flags.memory ? { memoryMb: this.flags.memory } : {}),
      ...(this.flags.disk ? { diskSizeMb: this.flags.disk } : {}),
      onLog: quiet ? undefined : (event) => this.show(event),
    });
    if (quiet) return JSON.parse(JSON.stringify(info)) as Record<string, unknown>;
    this.log(`Built ${info.name} version ${info.version}`);
    return undefined;
  }

  private show(event: TemplateBuildEvent): void {
    if (event.type === "step") {
      this.log(
        `[${event.index + 1}/${event.total}] ${event.step}${event.cached ? " (cached)" : ""}`,
      );
    } else if (event.type === "log") {
      process.stderr.write(event.text);
    } else if (event.type === "info") {
      this.log(`  ${event.message}`);
    }
  }
}
