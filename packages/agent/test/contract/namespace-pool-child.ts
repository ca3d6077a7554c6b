// Child process of the warm-pool restart test: fills a pool, claims one sandbox, reports the
// resource ids on stdout and waits to be killed with SIGKILL.
import { defaultEnvdDir } from "../../src/config/index.js";
import { silentLogger } from "../../src/logger/index.js";
import { NamespaceRuntime } from "../../src/runtime/index.js";

const [agentDir, id] = process.argv.slice(2) as [string, string];
const runtime = new NamespaceRuntime({
  agentDir,
  envdDir: defaultEnvdDir(),
  logger: silentLogger(),
  warmPool: [{ template: "test-minimal", size: 2, diskSizeMb: 64 }],
});
await runtime.adopt();
await runtime.warmPoolIdle();
await runtime.create({ id, template: "test-minimal", vcpus: 1, memoryMb: 256, diskSizeMb: 64 });
await new Promise((resolve) => setImmediate(resolve));
await runtime.warmPoolIdle();
process.stdout.write(`ready ${runtime.warmPoolSize}\n`);
setInterval(() => {}, 60_000);
