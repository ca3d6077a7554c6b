import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Flags } from "@oclif/core";
import { BaseCommand } from "../../base/index.js";
import { envWith, runServer } from "../../services/daemons.js";
import { checkLines, runDoctor } from "../../services/doctor.js";

export default class ServerStart extends BaseCommand<typeof ServerStart> {
  static override summary =
    "Run Wrenn on this host: the API server with its agent embedded (single-host mode).";
  static override description =
    "Needs root. The first run makes an admin account and writes the API URL and key to <data-dir>/config.json, which the CLI and SDK read (for the default data dir, ~/.wrenn). Stop it with Ctrl-C; sandboxes keep running and are adopted by the next start.";
  static override examples = [
    "sudo <%= config.bin %> server start",
    "sudo <%= config.bin %> server start --port 8080 --template test-minimal",
    "WRENN_DATABASE_URL=postgres://wrenn@db/wrenn <%= config.bin %> server start --no-embedded-agent",
  ];
  static override flags = {
    port: Flags.integer({
      char: "p",
      description: "Port to listen on (0: any free one).",
      env: "WRENN_PORT",
      min: 0,
      max: 65_535,
    }),
    host: Flags.string({
      description: "Address to listen on (default 127.0.0.1).",
      env: "WRENN_HOST",
    }),
    "data-dir": Flags.string({
      description: "State directory (default ~/.wrenn).",
      env: "WRENN_DATA_DIR",
    }),
    "database-url": Flags.string({
      description: "postgres:// URL (default: SQLite in the data dir).",
      env: "WRENN_DATABASE_URL",
    }),
    template: Flags.string({
      description: "Template new sandboxes get by default (default base).",
      env: "WRENN_DEFAULT_TEMPLATE",
    }),
    "embedded-agent": Flags.boolean({
      description:
        "Run an agent in this process (default). --no-embedded-agent: sandboxes run only on hosts that join with `wrenn host add`.",
      allowNo: true,
      env: "WRENN_EMBEDDED_AGENT",
    }),
    "log-level": Flags.string({
      description: "Log level.",
      env: "WRENN_LOG_LEVEL",
      options: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
    }),
  };

  async run(): Promise<void> {
    const f = this.flags;
    // On a terminal, the first start names what it checked on this host (`wrenn doctor` later).
    const dataDir = f["data-dir"] ?? join(homedir(), ".wrenn");
    if (process.stdout.isTTY && !existsSync(join(dataDir, "config.json"))) {
      for (const line of checkLines(await runDoctor(), false)) this.log(line);
      this.log("");
    }
    await runServer(
      envWith({
        WRENN_PORT: f.port,
        WRENN_HOST: f.host,
        WRENN_DATA_DIR: f["data-dir"],
        WRENN_DATABASE_URL: f["database-url"],
        WRENN_DEFAULT_TEMPLATE: f.template,
        WRENN_LOG_LEVEL: f["log-level"],
        WRENN_EMBEDDED_AGENT: f["embedded-agent"] === false ? "false" : undefined,
      }),
    );
  }
}
