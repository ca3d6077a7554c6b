import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class SnapshotCreate extends ApiCommand<typeof SnapshotCreate> {
  static override summary = "Freeze a sandbox's filesystem into a named snapshot.";
  static override description =
    "New sandboxes start from it with `wrenn sandbox create --snapshot <name>`. Processes are not kept.";
  static override enableJsonFlag = true;
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    name: Args.string({ description: "Snapshot name.", required: true }),
  };

  async run(): Promise<Record<string, unknown> | undefined> {
    const sandbox = await attach(this.args.id, await this.connection());
    const snapshot = await sandbox.createSnapshot(this.args.name);
    if (this.jsonEnabled()) return JSON.parse(JSON.stringify(snapshot)) as Record<string, unknown>;
    this.log(snapshot.name);
    return undefined;
  }
}
