import { Flags } from "@oclif/core";
import { BaseCommand } from "../base/index.js";
import { configPath, readConfig, writeConfig } from "../config/index.js";
import { CliError } from "../errors/index.js";
import { describeIdentity, whoami } from "../services/auth.js";
import { DEFAULT_API_URL, trimSlash } from "../services/connection.js";
import { canPrompt, promptText } from "../ui/interactive.js";

export default class Login extends BaseCommand<typeof Login> {
  static override summary = "Check an API key against a server and save both for later commands.";
  static override examples = [
    "<%= config.bin %> login",
    "<%= config.bin %> login --api-url https://wrenn.example.com --api-key wrn_…",
    "WRENN_API_KEY=wrn_… <%= config.bin %> login",
  ];
  static override flags = {
    "api-url": Flags.string({
      description: `Server URL (default: the saved one, else ${DEFAULT_API_URL}).`,
      env: "WRENN_API_URL",
    }),
    "api-key": Flags.string({
      description: "API key (asked for on a terminal when missing).",
      env: "WRENN_API_KEY",
    }),
  };

  async run(): Promise<void> {
    const saved = await readConfig();
    const apiUrl = trimSlash(this.flags["api-url"] ?? saved.api_url ?? DEFAULT_API_URL);
    this.errorContext.apiUrl = apiUrl;
    let apiKey = this.flags["api-key"];
    if (!apiKey) {
      if (!canPrompt())
        throw new CliError(
          "missing_api_key",
          "No API key given.",
          "Pass --api-key or set WRENN_API_KEY (no prompts without a terminal).",
        );
      apiKey = (await promptText(`API key for ${apiUrl}:`, true))?.trim();
      if (!apiKey) throw new CliError("missing_api_key", "No API key entered; nothing saved.");
    }
    const identity = await whoami({ apiUrl, apiKey });
    await writeConfig({ api_url: apiUrl, api_key: apiKey });
    this.log(`Logged in to ${apiUrl} as ${describeIdentity(identity)}. Saved to ${configPath()}.`);
  }
}
