import { Flags } from "@oclif/core";
import { Sandbox } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { parseDuration, parsePairs } from "../../services/format.js";
import { networkFlags, networkOptions } from "../../services/network.js";
import { sandboxJson } from "../../services/sandboxes.js";

export default class SandboxCreate extends ApiCommand<typeof SandboxCreate> {
  static override summary = "Create a sandbox and print its id.";
  static override enableJsonFlag = true;
  static override examples = [
    "<%= config.bin %> sandbox create",
    "<%= config.bin %> sandbox create --template base --memory 1024 --timeout 10m --metadata owner=alice",
    "ID=$(<%= config.bin %> sandbox create) && <%= config.bin %> exec $ID -- uname -a",
    "<%= config.bin %> sandbox create --runtime microvm",
    "<%= config.bin %> sandbox create --allow-out pypi.org --allow-out '*.pythonhosted.org' --deny-out 203.0.113.0/24",
    "<%= config.bin %> sandbox create --no-internet",
  ];
  static override flags = {
    template: Flags.string({
      char: "t",
      description: "Template to start from (default: the server's).",
      env: "WRENN_TEMPLATE",
    }),
    snapshot: Flags.string({
      description: "Snapshot to start from instead of a template.",
      env: "WRENN_SNAPSHOT",
      exclusive: ["template"],
    }),
    vcpus: Flags.integer({ description: "vCPUs.", min: 1, env: "WRENN_VCPUS" }),
    memory: Flags.integer({ description: "Memory in MiB.", min: 16, env: "WRENN_MEMORY_MB" }),
    disk: Flags.integer({ description: "Disk size in MiB.", min: 16, env: "WRENN_DISK_MB" }),
    timeout: Flags.string({
      description: "Idle time before the sandbox auto-pauses: 90, 30s, 5m, 1h; 0 never.",
      env: "WRENN_TIMEOUT",
    }),
    metadata: Flags.string({
      char: "m",
      description: "key=value label (repeatable).",
      multiple: true,
    }),
    runtime: Flags.string({
      description: "How the sandbox is isolated: namespace (default) or microvm (its own kernel).",
      env: "WRENN_RUNTIME",
    }),
    ...networkFlags,
    env: Flags.string({
      char: "e",
      description: "KEY=value environment variable for every command (repeatable).",
      multiple: true,
    }),
    "public-traffic": Flags.boolean({
      description:
        "Its ports answer anyone at their URL (default). --no-public-traffic: only requests with the e2b-traffic-access-token header (`wrenn sandbox url` prints it).",
      allowNo: true,
    }),
    "auto-resume": Flags.boolean({
      description: "A request to one of its ports while it is paused resumes it.",
    }),
  };

  async run(): Promise<Record<string, unknown> | undefined> {
    const { flags } = this;
    const sandbox = await Sandbox.create({
      ...(await this.connection()),
      ...(flags.template ? { template: flags.template } : {}),
      ...(flags.snapshot ? { snapshot: flags.snapshot } : {}),
      ...(flags.vcpus ? { vcpus: flags.vcpus } : {}),
      ...(flags.memory ? { memoryMb: flags.memory } : {}),
      ...(flags.disk ? { diskSizeMb: flags.disk } : {}),
      ...(flags.timeout !== undefined
        ? { timeoutMs: parseDuration(flags.timeout, "timeout") }
        : {}),
      ...(flags.metadata?.length ? { metadata: parsePairs(flags.metadata, "metadata") } : {}),
      ...(flags.env?.length ? { envs: parsePairs(flags.env, "env") } : {}),
      ...(flags.runtime ? { runtime: flags.runtime } : {}),
      ...networkOptions(flags),
      ...(flags["public-traffic"] !== undefined
        ? { allowPublicTraffic: flags["public-traffic"] }
        : {}),
      ...(flags["auto-resume"] ? { autoResume: true } : {}),
    });
    if (this.jsonEnabled()) {
      const token = sandbox.trafficAccessToken;
      return {
        ...sandboxJson(await sandbox.getInfo()),
        ...(token && { trafficAccessToken: token }),
      };
    }
    this.log(sandbox.sandboxId);
    return undefined;
  }
}
