import { Flags } from "@oclif/core";
import { AuthenticationError } from "@wrenn/sdk";
import { BaseCommand } from "../base/index.js";
import { configPath, readConfig, writeConfig } from "../config/index.js";
import { CliError } from "../errors/index.js";
import { createE2bKey, describeIdentity, e2bExports, whoami } from "../services/auth.js";
import { checkServerUrl, DEFAULT_API_URL, trimSlash } from "../services/connection.js";
import { canPrompt, promptText } from "../ui/interactive.js";

export default class Login extends BaseCommand<typeof Login> {
  static override summary = "Check an API key against a server and save both for later commands.";
  static override examples = [
    "<%= config.bin %> login",
    "<%= config.bin %> login --api-url https://wrenn.example.com --api-key wrn_…",
    "<%= config.bin %> login --e2b-key --email me@example.com",
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
      exclusive: ["e2b-key"],
    }),
    "e2b-key": Flags.boolean({
      description:
        "Sign in with email and password, make a new e2b_… key (the form E2B's SDK takes), save it and print the E2B_* variables to export.",
    }),
    email: Flags.string({
      description: "Account email, for --e2b-key (asked for on a terminal when missing).",
      env: "WRENN_EMAIL",
    }),
    password: Flags.string({
      description: "Account password, for --e2b-key (asked for on a terminal when missing).",
      env: "WRENN_PASSWORD",
    }),
  };

  async run(): Promise<void> {
    const saved = await readConfig();
    const apiUrl = checkServerUrl(
      trimSlash(this.flags["api-url"] ?? saved.api_url ?? DEFAULT_API_URL),
      this.flags["api-url"] ? "--api-url / WRENN_API_URL" : `api_url in ${configPath()}`,
    );
    this.errorContext.apiUrl = apiUrl;
    if (this.flags["e2b-key"]) return this.loginWithE2bKey(apiUrl);
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

  /** `--e2b-key`: a new e2b_… key made with the account's password, saved and printed. */
  private async loginWithE2bKey(apiUrl: string): Promise<void> {
    const ask = async (flag: "email" | "password", label: string, mask: boolean) => {
      const given = this.flags[flag];
      if (given) return given;
      if (!canPrompt())
        throw new CliError(
          "missing_credentials",
          `No ${flag} given for --e2b-key.`,
          `Pass --${flag} or set WRENN_${flag.toUpperCase()} (no prompts without a terminal).`,
        );
      const typed = (await promptText(label, mask))?.trim();
      if (!typed) throw new CliError("missing_credentials", `No ${flag} entered; nothing saved.`);
      return typed;
    };
    const email = await ask("email", `Email for ${apiUrl}:`, false);
    const password = await ask("password", "Password:", true);
    const { key } = await createE2bKey(apiUrl, email, password).catch((err: unknown) => {
      if (!(err instanceof AuthenticationError)) throw err;
      throw new CliError(
        "bad_credentials",
        `The server at ${apiUrl} refused the email or password.`,
        "Check them; the first start prints the admin's (also in the server's data dir).",
      );
    });
    await writeConfig({ api_url: apiUrl, api_key: key });
    this.log(
      `Logged in to ${apiUrl} as ${email} with a new E2B-style key. Saved to ${configPath()}.`,
    );
    this.log("For code written for E2B's SDK, export (the key is not shown again):");
    this.log(e2bExports(apiUrl, key));
  }
}
