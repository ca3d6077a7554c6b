import { Template, type TemplateInfo } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { ago, formatBytes, table } from "../../services/format.js";

export default class TemplateList extends ApiCommand<typeof TemplateList> {
  static override summary = "List the team's built templates (every version).";
  static override hiddenAliases = ["template:ls"];
  static override enableJsonFlag = true;

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const templates: TemplateInfo[] = await Template.list(await this.connection());
    if (this.jsonEnabled())
      return JSON.parse(JSON.stringify(templates)) as Record<string, unknown>[];
    if (templates.length === 0) {
      this.log("No templates. Build one with `wrenn template build -f Dockerfile --name <name>`.");
      return undefined;
    }
    this.log(
      table(
        ["NAME", "VERSION", "BASE", "SIZE", "START COMMAND", "VCPUS", "MEMORY", "CREATED"],
        templates.map((t) => [
          t.name,
          String(t.version),
          t.base,
          t.sizeBytes === undefined ? "-" : formatBytes(t.sizeBytes),
          t.startCmd ?? "-",
          String(t.vcpus),
          `${t.memoryMb} MiB`,
          ago(t.createdAt),
        ]),
      ),
    );
    return undefined;
  }
}
