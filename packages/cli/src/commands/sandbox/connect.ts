import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { runInteractive } from "../../services/exec.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxConnect extends ApiCommand<typeof SandboxConnect> {
  static override summary =
    "Open an interactive shell in a sandbox (same as `wrenn exec -it <id>`).";
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection());
    const code = await runInteractive(sandbox, undefined, {});
    if (code !== 0) this.exit(code);
  }
}
