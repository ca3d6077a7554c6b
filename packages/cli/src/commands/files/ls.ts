import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { formatBytes, table } from "../../services/format.js";
import { attach } from "../../services/sandboxes.js";

export default class FilesLs extends ApiCommand<typeof FilesLs> {
  static override summary = "List a directory in a sandbox.";
  static override enableJsonFlag = true;
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    path: Args.string({
      description: "Directory (default: the user's home).",
      default: "/home/user",
    }),
  };

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const sandbox = await attach(this.args.id, await this.connection());
    const entries = await sandbox.files.list(this.args.path);
    if (this.jsonEnabled()) return JSON.parse(JSON.stringify(entries)) as Record<string, unknown>[];
    this.log(
      table(
        ["MODE", "OWNER", "SIZE", "MODIFIED", "NAME"],
        entries.map((e) => [
          e.permissions ?? "",
          e.owner ?? "",
          e.type === "dir" ? "-" : formatBytes(e.size),
          e.modifiedTime ? e.modifiedTime.toISOString().slice(0, 19).replace("T", " ") : "",
          e.type === "dir"
            ? `${e.name}/`
            : e.type === "symlink" && e.symlinkTarget
              ? `${e.name} -> ${e.symlinkTarget}`
              : e.name,
        ]),
      ),
    );
    return undefined;
  }
}
