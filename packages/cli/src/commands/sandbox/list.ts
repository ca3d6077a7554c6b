import { Flags } from "@oclif/core";
import type { SandboxState } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { parsePairs } from "../../services/format.js";
import { listAll, sandboxJson, sandboxTable } from "../../services/sandboxes.js";

export default class SandboxList extends ApiCommand<typeof SandboxList> {
  static override summary = "List sandboxes.";
  static override hiddenAliases = ["sandbox:ls"];
  static override enableJsonFlag = true;
  static override examples = [
    "<%= config.bin %> sandbox list",
    "<%= config.bin %> sandbox list --state running --metadata owner=alice --json",
  ];
  static override flags = {
    state: Flags.string({
      char: "s",
      description: "Only sandboxes in this state (repeatable).",
      options: ["pending", "running", "paused", "stopped", "missing", "error"],
      multiple: true,
    }),
    metadata: Flags.string({
      char: "m",
      description: "Only sandboxes with this key=value (repeatable).",
      multiple: true,
    }),
  };

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const infos = await listAll(await this.connection(), {
      ...(this.flags.state?.length ? { state: this.flags.state as SandboxState[] } : {}),
      ...(this.flags.metadata?.length
        ? { metadata: parsePairs(this.flags.metadata, "metadata") }
        : {}),
    });
    if (this.jsonEnabled()) return infos.map(sandboxJson);
    if (infos.length === 0) this.log("No sandboxes. Create one with `wrenn sandbox create`.");
    else this.log(sandboxTable(infos));
    return undefined;
  }
}
