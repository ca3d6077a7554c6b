import { Flags } from "@oclif/core";
import { BaseCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";
import { envWith, loadDotEnv, runAgent } from "../../services/daemons.js";

export default class AgentStart extends BaseCommand<typeof AgentStart> {
  static override summary = "Run a host agent alone, or as a host of a Wrenn fleet.";
  static override description =
    "Serves the agent RPC and the envd proxy. Needs root. With --server-url it joins that server: the first start registers with a one-time --registration-token (from `wrenn host add`) and keeps the host credentials in its state directory; later starts need no token. Without --server-url it runs stand-alone: beyond loopback, set --token so only the server can drive it. Reads .env from the working directory (or WRENN_ENV_FILE). Stop it with Ctrl-C; sandboxes keep running for the next start.";
  static override examples = [
    "sudo <%= config.bin %> agent start --server-url https://wrenn.example.com --registration-token <token> --advertise-url http://10.0.0.5:5007",
    "sudo <%= config.bin %> agent start --host 0.0.0.0 --token $(openssl rand -hex 32)",
  ];
  static override flags = {
    host: Flags.string({
      description: "Address to listen on (default 127.0.0.1; 0.0.0.0 with --server-url).",
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
      description: "Bearer token every request must carry (stand-alone mode).",
      env: "WRENN_AGENT_TOKEN",
    }),
    "warm-pool": Flags.string({
      description:
        "Ready sandboxes to keep: auto (default; follows the create rate), a count (0: none), or template=count,…",
      env: "WRENN_WARM_POOL",
    }),
    "server-url": Flags.string({
      description: "Wrenn server to join (its API URL). https, or http to a private address.",
      env: "WRENN_SERVER_URL",
    }),
    "registration-token": Flags.string({
      description: "One-time token from `wrenn host add` (first start only).",
      env: "WRENN_REGISTRATION_TOKEN",
      dependsOn: ["server-url"],
    }),
    "advertise-url": Flags.string({
      description: "URL the server reaches this agent at (default: the listen address).",
      env: "WRENN_AGENT_ADVERTISE_URL",
      dependsOn: ["server-url"],
    }),
    "server-ca": Flags.string({
      description: "PEM file of the CA the server's certificate must chain to.",
      env: "WRENN_SERVER_CA",
      dependsOn: ["server-url"],
    }),
    "log-level": Flags.string({ description: "Log level.", env: "WRENN_LOG_LEVEL" }),
  };

  override async init(): Promise<void> {
    // Before the flags are parsed: their env fallbacks may come from .env.
    await loadDotEnv();
    await super.init();
  }

  async run(): Promise<void> {
    const f = this.flags;
    if (f["server-url"] && f.token)
      throw new CliError(
        "invalid_argument",
        "--token is for a stand-alone agent; with --server-url the server's key is made at registration.",
      );
    await runAgent(
      envWith({
        WRENN_AGENT_HOST: f.host,
        WRENN_AGENT_PORT: f.port,
        WRENN_AGENT_DIR: f.dir,
        WRENN_AGENT_TOKEN: f.token,
        WRENN_WARM_POOL: f["warm-pool"],
        WRENN_SERVER_URL: f["server-url"],
        WRENN_REGISTRATION_TOKEN: f["registration-token"],
        WRENN_AGENT_ADVERTISE_URL: f["advertise-url"],
        WRENN_SERVER_CA: f["server-ca"],
        WRENN_LOG_LEVEL: f["log-level"],
      }),
      (url, hostId) =>
        this.log(
          hostId
            ? `wrenn agent listening on ${url}, host ${hostId} of ${f["server-url"]}`
            : `wrenn agent listening on ${url}`,
        ),
    );
  }
}
