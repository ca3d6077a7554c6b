import { Args, Flags } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach, sandboxJson } from "../../services/sandboxes.js";

export default class SandboxFork extends ApiCommand<typeof SandboxFork> {
  static override summary =
    "Fork a running sandbox: new sandboxes with its files (microVMs: also its memory and processes) as they are now. Prints their ids.";
  static override enableJsonFlag = true;
  static override examples = [
    "<%= config.bin %> sandbox fork k3x9q2m7v1b8n4c6z0ta",
    "for ID in $(<%= config.bin %> sandbox fork $SRC --count 3); do <%= config.bin %> exec $ID -- ls; done",
  ];
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };
  static override flags = {
    count: Flags.integer({
      char: "n",
      description: "How many sandboxes to make (1-10).",
      default: 1,
      min: 1,
      max: 10,
    }),
  };

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const source = await attach(this.args.id, await this.connection(), { resume: false });
    const forks = await source.fork(this.flags.count);
    if (this.jsonEnabled()) {
      return Promise.all(forks.map(async (f) => sandboxJson(await f.getInfo())));
    }
    for (const f of forks) this.log(f.sandboxId);
    return undefined;
  }
}
