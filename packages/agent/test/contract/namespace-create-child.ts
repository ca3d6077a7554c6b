// Child process of crashNamespaceCreate: one create, to be killed midway.
import { defaultEnvdDir } from "../../src/config/index.js";
import { silentLogger } from "../../src/logger/index.js";
import { NamespaceRuntime } from "../../src/runtime/index.js";

const [agentDir, id] = process.argv.slice(2) as [string, string];
const runtime = new NamespaceRuntime({
  agentDir,
  envdDir: defaultEnvdDir(),
  logger: silentLogger(),
});
await runtime.create({ id, template: "test-minimal", vcpus: 1, memoryMb: 256, diskSizeMb: 64 });
