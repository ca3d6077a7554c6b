import { Snapshot, type SnapshotInfo } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { ago, table } from "../../services/format.js";

export default class SnapshotList extends ApiCommand<typeof SnapshotList> {
  static override summary = "List snapshots.";
  static override hiddenAliases = ["snapshot:ls"];
  static override enableJsonFlag = true;

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const snapshots: SnapshotInfo[] = [];
    for await (const s of Snapshot.list(await this.connection())) snapshots.push(s);
    if (this.jsonEnabled())
      return JSON.parse(JSON.stringify(snapshots)) as Record<string, unknown>[];
    if (snapshots.length === 0) {
      this.log("No snapshots. Make one with `wrenn snapshot create <sandbox-id> <name>`.");
      return undefined;
    }
    this.log(
      table(
        ["NAME", "TEMPLATE", "FROM SANDBOX", "VCPUS", "MEMORY", "CREATED"],
        snapshots.map((s) => [
          s.name,
          s.baseTemplate,
          s.sourceSandboxId ?? "-",
          String(s.vcpus),
          `${s.memoryMb} MiB`,
          ago(s.createdAt),
        ]),
      ),
    );
    return undefined;
  }
}
