import { Flags } from "@oclif/core";
import { BaseCommand } from "../../base/index.js";
import { envWith, runAgent } from "../../services/daemons.js";

export default class AgentStart extends BaseCommand<typeof AgentStart> {
  static override summary = "Run a host agent alone (for a server on another host).";
  static override description =
    "Serves the agent RPC and the envd proxy. Needs root. Beyond loopback, set --token so only the server can drive it. Stop it with Ctrl-C; sandboxes keep running for the next start.";
  static override examples = [
    "sudo <%= config.bin %> agent start --host 0.0.0.0 --token $(openssl rand -hex 32)",
  ];
  static override flags = {
    host: Flags.string({
      description: "Address to listen on (default 127.0.0.1).",
      env: "WRENN_AGENT_HOST",
    }),
    port: Flags.integer({
      char: "p",
      description: "Port (default 5007).",
      env: "WRENN_AGENT_PORT",
      min: 0,
      max: 65_535,
    }),
    dir: Flags.string({
      description: "State directory (default ~/.wrenn/agent).",
      env: "WRENN_AGENT_DIR",
    }),
    token: Flags.string({
      description: "Bearer token every request must carry.",
      env: "WRENN_AGENT_TOKEN",
    }),
    "warm-pool": Flags.string({
      description: "Ready sandboxes to keep: a count, or template=count,…",
      env: "WRENN_WARM_POOL",
    }),
    "server-url": Flags.string({
      description: "Control plane to register with (multi-host).",
      env: "WRENN_SERVER_URL",
    }),
    "registration-token": Flags.string({
      description: "One-time token from the server for registering (multi-host).",
      env: "WRENN_REGISTRATION_TOKEN",
      dependsOn: ["server-url"],
    }),
    "log-level": Flags.string({ description: "Log level.", env: "WRENN_LOG_LEVEL" }),
  };

  async run(): Promise<void> {
    const f = this.flags;
    if (f["server-url"])
      this.warn(
        "registration with a server is not available yet (multi-host mode): the agent runs stand-alone; add it to the server by its URL and --token.",
      );
    await runAgent(
      envWith({
        WRENN_AGENT_HOST: f.host,
        WRENN_AGENT_PORT: f.port,
        WRENN_AGENT_DIR: f.dir,
        WRENN_AGENT_TOKEN: f.token,
        WRENN_WARM_POOL: f["warm-pool"],
        WRENN_LOG_LEVEL: f["log-level"],
      }),
      (url) => this.log(`wrenn agent listening on ${url}`),
    );
  }
}
