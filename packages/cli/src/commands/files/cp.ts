import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";
import {
  download,
  parseLocation,
  planLocal,
  planRemote,
  upload,
} from "../../services/copy/index.js";
import { formatBytes } from "../../services/format.js";
import { attach } from "../../services/sandboxes.js";
import { startProgress } from "../../ui/interactive.js";

export default class FilesCp extends ApiCommand<typeof FilesCp> {
  static override summary = "Copy files and directory trees between here and a sandbox.";
  static override description =
    "One side is <id>:<path>. Directories are copied whole (like cp -r), streamed file by file; a progress bar shows on a terminal.";
  static override args = {
    src: Args.string({ description: "Source: a local path or <id>:<path>.", required: true }),
    dest: Args.string({ description: "Destination: a local path or <id>:<path>.", required: true }),
  };
  static override examples = [
    "<%= config.bin %> files cp ./project sbx1:/home/user/project",
    "<%= config.bin %> files cp sbx1:/var/log/app.log .",
  ];

  async run(): Promise<void> {
    const src = parseLocation(this.args.src);
    const dest = parseLocation(this.args.dest);
    if (src.kind === dest.kind)
      throw new CliError(
        "invalid_argument",
        src.kind === "local"
          ? "Both paths are local: one side must be <id>:<path>."
          : "Copying between sandboxes is not supported: one side must be local.",
        "Example: wrenn files cp ./dir sbx1:/home/user/dir",
      );
    const sandboxId =
      src.kind === "remote" ? src.sandboxId : dest.kind === "remote" ? dest.sandboxId : "";
    const sandbox = await attach(sandboxId, await this.connection());
    const plan =
      src.kind === "local" ? await planLocal(src.path) : await planRemote(sandbox, src.path);
    const progress = await startProgress(plan.totalBytes);
    let result: Awaited<ReturnType<typeof upload>>;
    try {
      result =
        src.kind === "local"
          ? await upload(sandbox, src.path, dest.path, plan, { onProgress: progress.update })
          : await download(sandbox, src.path, dest.path, plan, { onProgress: progress.update });
    } finally {
      progress.stop();
    }
    for (const path of result.skipped)
      this.warn(`skipped ${path}: not a regular file or directory`);
    if (process.stderr.isTTY)
      process.stderr.write(
        `Copied ${result.files} file(s), ${formatBytes(result.bytes)} to ${dest.kind === "remote" ? `${dest.sandboxId}:` : ""}${result.destination}\n`,
      );
  }
}
