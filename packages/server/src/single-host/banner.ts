import type { BootstrapResult } from "./bootstrap.js";
import { ADMIN_EMAIL } from "./bootstrap.js";

/** The first run's credentials as plain lines (the password is never logged, only printed). */
export function credentialLines(boot: BootstrapResult, url: string): string[] {
  if (!boot.admin || !boot.config) return [];
  return [
    "Wrenn is set up (first run):",
    `  admin user: ${boot.admin.email}`,
    `  password:   ${boot.admin.password}   (shown once)`,
    `  API key:    ${boot.config.api_key}`,
    `  written to  ${boot.configPath} for the CLI and SDK; or export:`,
    `    export WRENN_API_URL=${url} WRENN_API_KEY=${boot.config.api_key}`,
  ];
}

/** What a person at a terminal sees once sandboxes can be created: where to go, how to sign in. */
export function readyBanner(url: string, boot: BootstrapResult | undefined): string {
  const bold = (s: string) =>
    process.stdout.isTTY && !process.env.NO_COLOR ? `\x1b[1m${s}\x1b[0m` : s;
  const signIn = boot?.admin
    ? `${boot.admin.email}  password ${bold(boot.admin.password)}  (shown once: keep it)`
    : `${ADMIN_EMAIL} with the password the first start printed`;
  const lines = [
    bold("Wrenn is ready"),
    `  Dashboard  ${bold(`${url}/`)}`,
    `  Sign in    ${signIn}`,
    `  API        ${url}/v1  (reference: ${url}/docs)`,
    ...(boot?.config
      ? [
          boot.admin
            ? `  API key    ${boot.config.api_key}  (also in ${boot.configPath}, read by the CLI and SDK)`
            : `  API key    in ${boot.configPath} (read by the CLI and SDK)`,
        ]
      : []),
  ];
  return `\n${lines.join("\n")}\n`;
}
