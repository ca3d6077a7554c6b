import { type Command, Flags } from "@oclif/core";
import { type Connection, resolveConnection } from "../services/connection.js";
import { BaseCommand } from "./base-command.js";

/** A command that talks to a Wrenn server: --api-url / --api-key, else the saved config. */
export abstract class ApiCommand<T extends typeof Command> extends BaseCommand<T> {
  static override baseFlags = {
    ...BaseCommand.baseFlags,
    "api-url": Flags.string({
      description:
        "Wrenn server URL (default: saved by `wrenn login`, else http://127.0.0.1:3000).",
      env: "WRENN_API_URL",
      helpGroup: "GLOBAL",
    }),
    "api-key": Flags.string({
      description: "API key (default: saved by `wrenn login`).",
      env: "WRENN_API_KEY",
      helpGroup: "GLOBAL",
    }),
  };

  private resolved: Connection | undefined;

  /** apiUrl/apiKey for SDK calls; resolved once. */
  protected async connection(): Promise<Connection> {
    if (!this.resolved) {
      const flags = this.flags as { "api-url"?: string; "api-key"?: string };
      this.resolved = await resolveConnection({
        apiUrl: flags["api-url"],
        apiKey: flags["api-key"],
      });
      this.errorContext.apiUrl = this.resolved.apiUrl;
    }
    return this.resolved;
  }
}
